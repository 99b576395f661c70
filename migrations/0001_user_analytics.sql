-- One row per answered message: who, which day, how many tokens. Never what was written.
CREATE TABLE user_analytics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    username TEXT,
    request_date DATE NOT NULL,      -- 'YYYY-MM-DD' in ANALYTICS_TIMEZONE
    tokens_used INTEGER NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_user_analytics_user_id ON user_analytics (user_id);
CREATE INDEX idx_user_analytics_request_date ON user_analytics (request_date);
CREATE INDEX idx_user_analytics_user_date ON user_analytics (user_id, request_date);
