#!/usr/bin/env bash
# Restart this instance: stop.sh, then start.sh (which waits for /healthz).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

"$SCRIPT_DIR/stop.sh"
exec "$SCRIPT_DIR/start.sh"
