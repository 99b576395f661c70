#!/usr/bin/env bash
# Show this instance's log: the last 100 lines, or -n N lines; -f / --follow keeps following.
#   logs.sh            logs.sh -f            logs.sh -n 500 -f
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

lines=100
follow=()
while (($# > 0)); do
	case $1 in
	-f | --follow) follow=(-F) ;;
	-n | --lines)
		[[ ${2:-} =~ ^[0-9]+$ ]] || die_usage "logs.sh [-n LINES] [-f]"
		lines=$2
		shift
		;;
	-h | --help)
		printf 'usage: logs.sh [-n LINES] [-f]   (log: %s)\n' "$LOG_FILE"
		exit 0
		;;
	*) die_usage "logs.sh [-n LINES] [-f]" ;;
	esac
	shift
done
if [[ ! -e $LOG_FILE ]]; then
	((${#follow[@]} > 0)) || die "no log yet: $LOG_FILE"
	msg "no log yet; waiting for $LOG_FILE" >&2
fi
exec tail -n "$lines" "${follow[@]}" -- "$LOG_FILE"
