#!/usr/bin/env bash
# Register this instance's webhook with Telegram (setWebhook) using curl only; the same as
# `subgpt webhook set`, for when the binary is not at hand.
#   set-webhook.sh [--drop-pending] [--env FILE]
# Reads TELEGRAM_BOT_TOKEN, WEBHOOK_URL, WEBHOOK_SECRET and TELEGRAM_API_URL from the
# environment, else from the instance's .env (parsed, never executed). The token never
# appears in the output nor on a command line (`ps`): curl gets the URL on a file descriptor.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

drop=false
while (($# > 0)); do
	case $1 in
	--drop-pending) drop=true ;;
	--env)
		[[ -n ${2:-} ]] || die_usage "set-webhook.sh [--drop-pending] [--env FILE]"
		ENV_FILE=$2
		shift
		;;
	-h | --help)
		echo "usage: set-webhook.sh [--drop-pending] [--env FILE]   (default env file: $ENV_FILE)"
		exit 0
		;;
	*) die_usage "set-webhook.sh [--drop-pending] [--env FILE]   (unknown argument: $1)" ;;
	esac
	shift
done
[[ -f $ENV_FILE ]] || warn "no $ENV_FILE: reading the environment only"
command -v curl >/dev/null 2>&1 || die "curl is not installed (apt-get install curl)"

token=$(cfg TELEGRAM_BOT_TOKEN)
hook_url=$(cfg WEBHOOK_URL)
secret=$(cfg WEBHOOK_SECRET)
api=$(cfg TELEGRAM_API_URL https://api.telegram.org)
api=${api%/}

[[ -n $token ]] || die "TELEGRAM_BOT_TOKEN is not set (in $ENV_FILE or the environment)"
# Checked so that the token can go into curl's config below without any escaping.
[[ $token =~ ^[0-9]+:[A-Za-z0-9_-]+$ ]] || die "TELEGRAM_BOT_TOKEN does not look like a bot token (digits:letters)"
[[ -n $hook_url ]] || die "WEBHOOK_URL is not set (the public https:// URL Telegram posts to)"
[[ $hook_url == https://* ]] || warn "WEBHOOK_URL=$hook_url is not https://; Telegram will refuse it"
[[ $hook_url != *[[:cntrl:]]* ]] || die "WEBHOOK_URL contains control characters"
[[ -n $secret ]] || die "WEBHOOK_SECRET is not set (1-256 characters of A-Z a-z 0-9 _ -)"
[[ $secret =~ ^[A-Za-z0-9_-]{1,256}$ ]] || die "WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"
[[ $api =~ ^https?://[^[:space:]\"\\]+$ ]] || die "TELEGRAM_API_URL=$api is not an http(s) URL"

# The JSON body, built by a real JSON encoder when one is available; values are handed over
# in the environment, not on the command line.
build_body() {
	if command -v jq >/dev/null 2>&1; then
		SW_URL=$hook_url SW_SECRET=$secret SW_DROP=$drop jq -cn '
			{url: env.SW_URL, secret_token: env.SW_SECRET,
			 allowed_updates: ["message", "chat_member", "my_chat_member"]}
			+ (if env.SW_DROP == "true" then {drop_pending_updates: true} else {} end)'
	elif command -v python3 >/dev/null 2>&1; then
		SW_URL=$hook_url SW_SECRET=$secret SW_DROP=$drop python3 -c '
import json, os
body = {"url": os.environ["SW_URL"], "secret_token": os.environ["SW_SECRET"],
        "allowed_updates": ["message", "chat_member", "my_chat_member"]}
if os.environ["SW_DROP"] == "true":
    body["drop_pending_updates"] = True
print(json.dumps(body))'
	else
		# The secret is [A-Za-z0-9_-] (checked above) and the URL has no control characters:
		# escaping \ and " is all JSON needs.
		local u=${hook_url//\\/\\\\}
		u=${u//\"/\\\"}
		printf '{"url":"%s","secret_token":"%s","allowed_updates":["message","chat_member","my_chat_member"]%s}\n' \
			"$u" "$secret" "$([[ $drop == true ]] && printf ',"drop_pending_updates":true')"
	fi
}

body=$(build_body) || die "could not build the JSON body"
redacted="$api/bot<redacted>/setWebhook"
msg "setWebhook via $redacted: url=$hook_url, allowed_updates=message,chat_member,my_chat_member, drop_pending_updates=$drop"

errfile=$(mktemp)
trap 'rm -f -- "$errfile"' EXIT
rc=0
answer=$(printf '%s' "$body" | curl -sS --fail-with-body --max-time 30 \
	-H 'Content-Type: application/json' --data-binary @- \
	-K <(printf 'url = "%s/bot%s/setWebhook"\n' "$api" "$token") 2>"$errfile") || rc=$?
err=$(<"$errfile")
err=${err//"$token"/<redacted>}
answer=${answer//"$token"/<redacted>}
if ((rc != 0)); then
	printf 'subgpt: error: POST %s failed (curl exit %s): %s\n' "$redacted" "$rc" "$err" >&2
	[[ -z $answer ]] || printf 'Telegram answered: %s\n' "$answer" >&2
	exit 1
fi
printf 'Telegram answered: %s\n' "$answer"
if [[ ! $answer =~ \"ok\"[[:space:]]*:[[:space:]]*true ]]; then
	die "Telegram did not accept the webhook (see its answer above)"
fi
msg "webhook set; check it with: subgpt webhook info"
