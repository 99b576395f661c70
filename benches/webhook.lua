-- wrk script: POSTs distinct updates to the webhook, each with its own update_id, spread over
-- 1,000 users. CHAT=private (default) sends private messages: the ack path (secret, parse,
-- dedup, inbox commit), answers run after each 200. CHAT=group sends group messages, which
-- the bot ignores: the ingest path alone (`examples/load.rs ingest` runs this against
-- `subgpt serve` and `examples/bare_webhook.rs` side by side).
--   WEBHOOK_SECRET=... wrk -t2 -c64 -d10s -s benches/webhook.lua http://127.0.0.1:18080/webhook
--   CHAT=group UPDATE_ID_BASE=5000000000 WEBHOOK_SECRET=... wrk -t2 -c64 -d10s -s benches/webhook.lua ...
-- UPDATE_ID_BASE keeps ids unique across runs (each thread counts up from base + tid * 1e8).
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = (tonumber(os.getenv("UPDATE_ID_BASE")) or 0) + tid * 100000000
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("WEBHOOK_SECRET") or "try_secret"

local group = os.getenv("CHAT") == "group"

function request()
  counter = counter + 1
  local user = 1000 + (counter % 1000)
  local chat
  if group then
    chat = string.format('{"id":-100%d,"type":"supergroup","title":"Load group"}', user)
  else
    chat = string.format('{"id":%d,"type":"private"}', user)
  end
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"date":1760000000,"text":"load test %d",' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"Load","username":"load%d"},"chat":%s}}',
    counter, counter, counter, user, user, chat)
  return wrk.format(nil, nil, nil, body)
end

-- One machine-readable line for examples/load.rs (latency in microseconds).
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "WRK requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, errors,
    latency:percentile(50), latency:percentile(99), latency.max))
end
