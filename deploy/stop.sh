#!/usr/bin/env bash
# Stop this instance's subgpt: SIGTERM (it drains in-flight answers, writes the pending usage
# rows and exits 0); wait for the drain (SHUTDOWN_DRAIN_SECS), the final flush (up to 10 s)
# and 5 s more, then SIGKILL as a last resort, saying so. Exit 0 also when not running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

take_lock ctl
if ! pid=$(current_pid); then
	msg "not running (instance $INSTANCE); nothing to stop"
	exit 0
fi
drain=$(cfg_uint SHUTDOWN_DRAIN_SECS 30)
# subgpt's own bound on writing the last usage rows after the drain (Running::drain).
flush=10
msg "stopping pid $pid (SIGTERM; waiting up to $((drain + flush + 5))s for the drain and the final usage flush)"
stop_pid "$pid" $((drain + flush + 5))
rm -f -- "$PID_FILE"
msg "stopped (instance $INSTANCE)"
