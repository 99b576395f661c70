-- Roll-ups of user_analytics, so the bot's limit check and the viewer never scan the raw rows.
-- The writer updates them in the same transaction as each batch of raw rows.

-- One row per day: answers, distinct users, tokens.
CREATE TABLE usage_daily (
    request_date TEXT PRIMARY KEY,
    requests INTEGER NOT NULL,
    users INTEGER NOT NULL,
    tokens INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per user: all-time totals, the latest known username, first and last active day.
CREATE TABLE usage_user (
    user_id INTEGER PRIMARY KEY,
    username TEXT,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    first_date TEXT NOT NULL,
    last_date TEXT NOT NULL
);

-- One row per user and day: the daily-limit lookup, distinct users per day, per-user breakdowns.
CREATE TABLE usage_user_daily (
    user_id INTEGER NOT NULL,
    request_date TEXT NOT NULL,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (user_id, request_date)
) WITHOUT ROWID;

CREATE INDEX idx_usage_user_daily_date ON usage_user_daily (request_date);

-- Backfill from rows written before this migration (an adopted database, or one at version 1).
INSERT INTO usage_user_daily (user_id, request_date, requests, tokens)
SELECT user_id, request_date, COUNT(*), SUM(tokens_used)
FROM user_analytics
GROUP BY user_id, request_date;

INSERT INTO usage_daily (request_date, requests, users, tokens)
SELECT request_date, SUM(requests), COUNT(*), SUM(tokens)
FROM usage_user_daily
GROUP BY request_date;

INSERT INTO usage_user (user_id, username, requests, tokens, first_date, last_date)
SELECT d.user_id,
       (SELECT r.username FROM user_analytics AS r
        WHERE r.user_id = d.user_id AND r.username IS NOT NULL
        ORDER BY r.id DESC LIMIT 1),
       SUM(d.requests), SUM(d.tokens), MIN(d.request_date), MAX(d.request_date)
FROM usage_user_daily AS d
GROUP BY d.user_id;
