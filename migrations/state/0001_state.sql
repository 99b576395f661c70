-- The service's own durable state (STATE_DB_PATH). Never the usage database.

-- Accepted updates that are not finished yet. A row is deleted (secure_delete) as soon as its
-- update is handled, so message text waits here only until it is answered.
CREATE TABLE inbox (
    update_id   INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    body        BLOB NOT NULL,            -- the update as JSON
    accepted_at INTEGER NOT NULL,         -- unix milliseconds
    attempts    INTEGER NOT NULL DEFAULT 0,
    response_id TEXT                      -- responses mode: the response being produced
);
CREATE INDEX inbox_user ON inbox (user_id, update_id);

-- update_ids accepted in the last 24 h: Telegram re-delivers on errors and time-outs.
CREATE TABLE seen (
    update_id INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL            -- unix milliseconds
) WITHOUT ROWID;
CREATE INDEX seen_at ON seen (at);

-- Per-user conversation state (conversation ids, chat-mode histories), keyed like the kv.
CREATE TABLE user_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER                    -- unix milliseconds; NULL = never
) WITHOUT ROWID;
