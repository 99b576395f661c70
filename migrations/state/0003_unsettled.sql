-- Answers cut off in `responses` mode whose final usage OpenAI has not settled yet: the cancel
-- failed, or OpenAI may still finish the response after all. The usage row waits here (ids and
-- token counts only, never text) until `GET /responses/{id}` shows how the response ended,
-- then it goes to the usage database with OpenAI's figures.
CREATE TABLE unsettled (
    response_id TEXT PRIMARY KEY,
    usage_row   TEXT NOT NULL,            -- the usage row as far as it is known, JSON
    due_at      INTEGER NOT NULL,         -- unix milliseconds: the next look
    looks       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
