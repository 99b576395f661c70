-- wrk script: POSTs distinct private-message updates to the webhook, spread over 1,000 users.
-- Measures the ack path (secret, parse, dedup, queue); the answers run after each 200.
--   wrk -t2 -c64 -d10s -s benches/webhook.lua http://127.0.0.1:18080/webhook
-- with the service's WEBHOOK_SECRET in the environment as WEBHOOK_SECRET.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = tid * 100000000
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("WEBHOOK_SECRET") or "try_secret"

function request()
  counter = counter + 1
  local user = 1000 + (counter % 1000)
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"date":0,"text":"load test %d",' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"Load","username":"load%d"},' ..
    '"chat":{"id":%d,"type":"private"}}}', counter, counter, counter, user, user, user)
  return wrk.format(nil, nil, nil, body)
end
