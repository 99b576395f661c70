#!/usr/bin/env bash
# Stop this instance's subgpt: SIGTERM (it drains in-flight answers and exits 0), wait up to
# SHUTDOWN_DRAIN_SECS + 5 s, then SIGKILL as a last resort. Exit 0 also when not running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

take_lock ctl
if ! pid=$(current_pid); then
	msg "not running (instance $INSTANCE); nothing to stop"
	exit 0
fi
drain=$(cfg_uint SHUTDOWN_DRAIN_SECS 30)
msg "stopping pid $pid (SIGTERM; waiting up to $((drain + 5))s for the drain)"
stop_pid "$pid" $((drain + 5))
rm -f -- "$PID_FILE"
msg "stopped (instance $INSTANCE)"
