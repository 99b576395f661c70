-- Part of migration 0003, and all of `subgpt analytics rebuild`: the roll-ups recomputed from
-- the raw rows, so a file that drifted before the triggers existed is repaired.
DELETE FROM usage_user_daily;
DELETE FROM usage_daily;
DELETE FROM usage_user;

INSERT INTO usage_user_daily (user_id, request_date, requests, tokens, cost_micro_usd, costed)
SELECT user_id, request_date, COUNT(*), SUM(tokens_used), coalesce(SUM(cost_micro_usd), 0), COUNT(cost_micro_usd)
FROM user_analytics
GROUP BY user_id, request_date;

INSERT INTO usage_daily (request_date, requests, users, tokens, cost_micro_usd, costed)
SELECT request_date, SUM(requests), COUNT(*), SUM(tokens), SUM(cost_micro_usd), SUM(costed)
FROM usage_user_daily
GROUP BY request_date;

INSERT INTO usage_user (user_id, username, requests, tokens, first_date, last_date, cost_micro_usd, costed)
SELECT d.user_id,
       (SELECT r.username FROM user_analytics AS r
        WHERE r.user_id = d.user_id AND r.username IS NOT NULL
        ORDER BY r.id DESC LIMIT 1),
       SUM(d.requests), SUM(d.tokens), MIN(d.request_date), MAX(d.request_date),
       SUM(d.cost_micro_usd), SUM(d.costed)
FROM usage_user_daily AS d
GROUP BY d.user_id;
