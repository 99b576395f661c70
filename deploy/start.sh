#!/usr/bin/env bash
# Start this instance's `subgpt serve` in the background (hosts without systemd), then wait
# for its /healthz: the answer counts only while the started process itself listens on the
# BIND_ADDR port. Exit 0 when it answers; else print the end of the log, stop what was
# started, exit 1. Refuses (exit 1) when the instance is already running.
#   START_TIMEOUT_SECS  how long to wait for /healthz (default 20)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

take_lock ctl
if pid=$(current_pid); then
	die "already running (pid $pid, instance $INSTANCE); use restart.sh to restart"
fi
others=$(unmanaged_pids | tr '\n' ' ')
if [[ -n $others ]]; then
	die "a subgpt serve not started by these scripts already runs in $INSTANCE (pid ${others% }; systemd?); not starting a second one"
fi
[[ -f $BIN && -x $BIN ]] || die "no executable binary: neither $INSTANCE/subgpt nor $INSTANCE/target/release/subgpt"
[[ -f $ENV_FILE ]] || warn "no $ENV_FILE: configuration comes from the environment only"

timeout=$(cfg_uint START_TIMEOUT_SECS 20)
url=$(health_url)
mkdir -p -- "$RUN_DIR" "$LOG_DIR" "$INSTANCE/data"
cd -- "$INSTANCE"
printf '=== %s start.sh: starting %s serve\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BIN" >>"$LOG_FILE"
# setsid: a session of its own, so the terminal or CI job that ran start.sh going away
# does not take it down; without job control the child is no group leader, so setsid
# does not fork and $! is subgpt's own PID.
nohup setsid "$BIN" serve >>"$LOG_FILE" 2>&1 </dev/null {LOCK_FD}>&- &
pid=$!
printf '%s\n' "$pid" >"$PID_FILE.tmp"
mv -f -- "$PID_FILE.tmp" "$PID_FILE"
msg "started pid $pid in $INSTANCE; waiting up to ${timeout}s for $url"

port=$(bind_port)
deadline=$((SECONDS + timeout))
while :; do
	if ! pid_exists "$pid"; then
		rm -f -- "$PID_FILE"
		printf 'subgpt: error: exited during start-up; last lines of %s:\n' "$LOG_FILE" >&2
		log_tail 30 >&2
		exit 1
	fi
	# Only our own process's answer counts: it must hold the listening socket itself.
	if pid_listens_on "$pid" "$port"; then
		if answer=$(health_check "$url"); then
			msg "running (pid $pid): /healthz answered ${answer:-200}; log: $LOG_FILE"
			exit 0
		fi
	elif health_check "$url" >/dev/null; then
		answer="something else answers on port $port, not pid $pid (another bot or an old copy on the same BIND_ADDR?)"
	else
		answer="pid $pid is not listening on port $port yet"
	fi
	if ((SECONDS >= deadline)); then
		printf 'subgpt: error: %s did not answer within %ss (%s); last lines of %s:\n' \
			"$url" "$timeout" "${answer//$'\n'/; }" "$LOG_FILE" >&2
		log_tail 30 >&2
		msg "stopping pid $pid, which did not become healthy" >&2
		stop_pid "$pid" 10
		rm -f -- "$PID_FILE"
		exit 1
	fi
	sleep 0.25
done
