-- What each answer cost, and roll-ups that stay equal to the raw rows whoever writes them.

-- SPEC §6: all nullable, so rows written by others (the Python bot, sqlite3) stay valid.
ALTER TABLE user_analytics ADD COLUMN input_tokens INTEGER;
ALTER TABLE user_analytics ADD COLUMN output_tokens INTEGER;
ALTER TABLE user_analytics ADD COLUMN cached_input_tokens INTEGER;
ALTER TABLE user_analytics ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE user_analytics ADD COLUMN model TEXT;
ALTER TABLE user_analytics ADD COLUMN cost_micro_usd INTEGER;

-- Cost in the roll-ups: the sum of the known costs, and how many rows had one, so that a group
-- where no row has a cost reads as unknown (NULL), never as $0.
ALTER TABLE usage_daily ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN costed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_user ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_user ADD COLUMN costed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_user_daily ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_user_daily ADD COLUMN costed INTEGER NOT NULL DEFAULT 0;

-- The triggers live in the file, so they run for every writer: this service, the Python bot
-- still writing to an adopted file, an operator with sqlite3. Each roll-up row is updated in
-- place, and inserted only when that update found none (`changes()` inside a trigger counts the
-- trigger's own previous statement): one index seek per roll-up in the common case. They use no
-- UPSERT (SQLite 3.24+), so an older SQLite can still open the file, and no INSERT that can
-- conflict, so an outer `INSERT OR REPLACE` (whose conflict policy would override the trigger's)
-- changes nothing here.

CREATE TRIGGER usage_rollups_insert AFTER INSERT ON user_analytics
BEGIN
    UPDATE usage_user_daily
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used,
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL)
    WHERE user_id = NEW.user_id AND request_date = NEW.request_date;
    INSERT INTO usage_user_daily (user_id, request_date, requests, tokens, cost_micro_usd, costed)
    SELECT NEW.user_id, NEW.request_date, 1, NEW.tokens_used, coalesce(NEW.cost_micro_usd, 0),
           NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;

    -- changes() is now 1 exactly when this was the user's first request of the day.
    UPDATE usage_daily
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used, users = users + changes(),
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL)
    WHERE request_date = NEW.request_date;
    INSERT INTO usage_daily (request_date, requests, users, tokens, cost_micro_usd, costed)
    SELECT NEW.request_date, 1, 1, NEW.tokens_used, coalesce(NEW.cost_micro_usd, 0),
           NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;

    UPDATE usage_user
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used,
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL),
        first_date = min(first_date, NEW.request_date),
        last_date = max(last_date, NEW.request_date),
        -- The latest non-null username wins, as in the raw-row queries (an insert with an
        -- explicit, older id does not overwrite a newer name).
        username = CASE
            WHEN NEW.username IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM user_analytics
                WHERE user_id = NEW.user_id AND id > NEW.id AND username IS NOT NULL)
            THEN NEW.username ELSE username END
    WHERE user_id = NEW.user_id;
    INSERT INTO usage_user (user_id, username, requests, tokens, first_date, last_date, cost_micro_usd, costed)
    SELECT NEW.user_id, NEW.username, 1, NEW.tokens_used, NEW.request_date, NEW.request_date,
           coalesce(NEW.cost_micro_usd, 0), NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;
END;

CREATE TRIGGER usage_rollups_delete AFTER DELETE ON user_analytics
BEGIN
    UPDATE usage_user_daily
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL)
    WHERE user_id = OLD.user_id AND request_date = OLD.request_date;
    DELETE FROM usage_user_daily
    WHERE user_id = OLD.user_id AND request_date = OLD.request_date AND requests <= 0;

    UPDATE usage_daily
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        users = users - NOT EXISTS (SELECT 1 FROM usage_user_daily
                                    WHERE user_id = OLD.user_id AND request_date = OLD.request_date),
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL)
    WHERE request_date = OLD.request_date;
    DELETE FROM usage_daily WHERE request_date = OLD.request_date AND requests <= 0;

    -- First and last day come back from the user's day rows (primary-key range, so cheap);
    -- the username from their latest remaining row that has one.
    UPDATE usage_user
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL),
        first_date = coalesce((SELECT min(request_date) FROM usage_user_daily WHERE user_id = OLD.user_id), first_date),
        last_date = coalesce((SELECT max(request_date) FROM usage_user_daily WHERE user_id = OLD.user_id), last_date),
        username = (SELECT r.username FROM user_analytics AS r
                    WHERE r.user_id = OLD.user_id AND r.username IS NOT NULL ORDER BY r.id DESC LIMIT 1)
    WHERE user_id = OLD.user_id;
    DELETE FROM usage_user WHERE user_id = OLD.user_id AND requests <= 0;
END;

-- An update is the old row taken out and the new one put in (its date, user, tokens or cost
-- may all have changed). Both halves are spelled out, as a trigger cannot call another.
CREATE TRIGGER usage_rollups_update AFTER UPDATE ON user_analytics
BEGIN
    UPDATE usage_user_daily
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL)
    WHERE user_id = OLD.user_id AND request_date = OLD.request_date;
    DELETE FROM usage_user_daily
    WHERE user_id = OLD.user_id AND request_date = OLD.request_date AND requests <= 0;

    UPDATE usage_daily
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        users = users - NOT EXISTS (SELECT 1 FROM usage_user_daily
                                    WHERE user_id = OLD.user_id AND request_date = OLD.request_date),
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL)
    WHERE request_date = OLD.request_date;
    DELETE FROM usage_daily WHERE request_date = OLD.request_date AND requests <= 0;

    -- First and last day come back from the user's day rows (primary-key range, so cheap);
    -- the username from their latest remaining row that has one.
    UPDATE usage_user
    SET requests = requests - 1, tokens = tokens - OLD.tokens_used,
        cost_micro_usd = cost_micro_usd - coalesce(OLD.cost_micro_usd, 0),
        costed = costed - (OLD.cost_micro_usd IS NOT NULL),
        first_date = coalesce((SELECT min(request_date) FROM usage_user_daily WHERE user_id = OLD.user_id), first_date),
        last_date = coalesce((SELECT max(request_date) FROM usage_user_daily WHERE user_id = OLD.user_id), last_date),
        username = (SELECT r.username FROM user_analytics AS r
                    WHERE r.user_id = OLD.user_id AND r.username IS NOT NULL ORDER BY r.id DESC LIMIT 1)
    WHERE user_id = OLD.user_id;
    DELETE FROM usage_user WHERE user_id = OLD.user_id AND requests <= 0;

    UPDATE usage_user_daily
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used,
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL)
    WHERE user_id = NEW.user_id AND request_date = NEW.request_date;
    INSERT INTO usage_user_daily (user_id, request_date, requests, tokens, cost_micro_usd, costed)
    SELECT NEW.user_id, NEW.request_date, 1, NEW.tokens_used, coalesce(NEW.cost_micro_usd, 0),
           NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;

    -- changes() is now 1 exactly when this was the user's first request of the day.
    UPDATE usage_daily
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used, users = users + changes(),
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL)
    WHERE request_date = NEW.request_date;
    INSERT INTO usage_daily (request_date, requests, users, tokens, cost_micro_usd, costed)
    SELECT NEW.request_date, 1, 1, NEW.tokens_used, coalesce(NEW.cost_micro_usd, 0),
           NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;

    UPDATE usage_user
    SET requests = requests + 1, tokens = tokens + NEW.tokens_used,
        cost_micro_usd = cost_micro_usd + coalesce(NEW.cost_micro_usd, 0),
        costed = costed + (NEW.cost_micro_usd IS NOT NULL),
        first_date = min(first_date, NEW.request_date),
        last_date = max(last_date, NEW.request_date),
        -- The latest non-null username wins, as in the raw-row queries (an insert with an
        -- explicit, older id does not overwrite a newer name).
        username = CASE
            WHEN NEW.username IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM user_analytics
                WHERE user_id = NEW.user_id AND id > NEW.id AND username IS NOT NULL)
            THEN NEW.username ELSE username END
    WHERE user_id = NEW.user_id;
    INSERT INTO usage_user (user_id, username, requests, tokens, first_date, last_date, cost_micro_usd, costed)
    SELECT NEW.user_id, NEW.username, 1, NEW.tokens_used, NEW.request_date, NEW.request_date,
           coalesce(NEW.cost_micro_usd, 0), NEW.cost_micro_usd IS NOT NULL
    WHERE changes() = 0;
END;
