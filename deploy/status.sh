#!/usr/bin/env bash
# Is this instance running? PID, uptime, memory, /healthz, and the last warnings/errors of
# its log. Exit 0 running, 3 stopped (LSB).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# uptime_of PID: seconds since the process started, from /proc (no procps needed).
uptime_of() {
	local stat hz now
	local -a f
	IFS= read -r stat <"/proc/$1/stat" || return 1
	read -ra f <<<"${stat##*) }"
	# f[0] is field 3 (state); starttime is field 22, in clock ticks since boot.
	hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
	read -r now _ </proc/uptime
	echo $((${now%.*} - f[19] / hz))
}

human_duration() {
	local s=$1
	if ((s >= 86400)); then
		printf '%dd %02dh %02dm\n' $((s / 86400)) $((s % 86400 / 3600)) $((s % 3600 / 60))
	else
		printf '%02dh %02dm %02ds\n' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
	fi
}

recent_problems() {
	local found
	[[ -s $LOG_FILE ]] || return 0
	found=$(tail -n 500 -- "$LOG_FILE" | grep -iE 'error|warn' | tail -n 10) || true
	if [[ -n $found ]]; then
		printf '  recent warnings/errors (%s):\n' "$LOG_FILE"
		printf '%s\n' "$found" | cut -c1-300 | sed 's/^/    /'
	fi
}

if pid=$(current_pid); then
	echo "subgpt is running"
	echo "  instance: $INSTANCE"
	echo "  pid:      $pid"
	if secs=$(uptime_of "$pid" 2>/dev/null); then
		echo "  uptime:   $(human_duration "$secs")"
	fi
	rss=$(awk '/^VmRSS:/ { print $2 " " $3 }' "/proc/$pid/status" 2>/dev/null) || rss=
	echo "  memory:   ${rss:-unknown} RSS"
	url=$(health_url)
	if answer=$(health_check "$url"); then
		echo "  healthz:  ok ($url answered: $answer)"
	else
		echo "  healthz:  FAILING ($url: ${answer//$'\n'/; })"
	fi
	recent_problems
	exit 0
fi
echo "subgpt is stopped"
echo "  instance: $INSTANCE"
others=$(unmanaged_pids | tr '\n' ' ')
if [[ -n $others ]]; then
	echo "  note:     pid ${others% } runs subgpt serve in this directory without these scripts (systemd? see systemctl status subgpt)"
fi
recent_problems
exit 3
