# shellcheck shell=bash disable=SC2034 # (the variables set here are used by the scripts)
# Shared by the management scripts in this directory; sourced, never run.
#
# The one rule that makes several bots on one host safe: a script acts only on the
# process named in THIS instance's PID file, and only after checking that the process
# is alive, runs `subgpt serve`, and has the instance directory as its working directory.

set -euo pipefail

SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)

msg() { printf 'subgpt: %s\n' "$*"; }
warn() { printf 'subgpt: warning: %s\n' "$*" >&2; }
die() {
	printf 'subgpt: error: %s\n' "$*" >&2
	exit 1
}
# Bad usage exits 2, like subgpt itself.
die_usage() {
	printf 'subgpt: usage: %s\n' "$*" >&2
	exit 2
}

# The instance directory: $SUBGPT_HOME if set; else the parent of this directory when it
# holds the binary or the sources (scripts in <instance>/deploy/); else this directory
# (scripts copied straight into <instance>/).
resolve_instance() {
	local parent
	if [[ -n ${SUBGPT_HOME:-} ]]; then
		INSTANCE=$(cd -P -- "$SUBGPT_HOME" 2>/dev/null && pwd -P) ||
			die "SUBGPT_HOME=$SUBGPT_HOME is not a directory"
		return
	fi
	parent=$(cd -P -- "$SCRIPT_DIR/.." && pwd -P)
	if [[ -f $parent/subgpt && -x $parent/subgpt ]] || [[ -f $parent/Cargo.toml ]]; then
		INSTANCE=$parent
	else
		INSTANCE=$SCRIPT_DIR
	fi
}

resolve_instance
ENV_FILE=$INSTANCE/.env
RUN_DIR=$INSTANCE/run
PID_FILE=$RUN_DIR/subgpt.pid
LOG_DIR=$INSTANCE/logs
LOG_FILE=$LOG_DIR/subgpt.log
if [[ -f $INSTANCE/subgpt && -x $INSTANCE/subgpt ]]; then
	BIN=$INSTANCE/subgpt
else
	BIN=$INSTANCE/target/release/subgpt
fi

# dotenv_get FILE KEY: print the value of the first KEY=VALUE line of FILE (the first one
# wins, as with dotenvy). The file is parsed, never executed: optional `export `, quotes
# stripped, ` # comment` after an unquoted value dropped. Returns 1 when KEY is absent.
dotenv_get() {
	local file=$1 key=$2 line v
	local re_line='^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$'
	local re_dq='^"(.*)"[[:space:]]*$'
	local re_sq="^'(.*)'[[:space:]]*\$"
	[[ -r $file ]] || return 1
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		[[ $line =~ $re_line ]] || continue
		[[ ${BASH_REMATCH[2]} == "$key" ]] || continue
		v=${BASH_REMATCH[3]}
		if [[ $v =~ $re_dq ]] || [[ $v =~ $re_sq ]]; then
			v=${BASH_REMATCH[1]}
		else
			v=${v%%[[:space:]]#*}
			v=${v%"${v##*[![:space:]]}"}
		fi
		printf '%s\n' "$v"
		return 0
	done <"$file"
	return 1
}

# cfg KEY DEFAULT: the value subgpt itself would see: the real environment wins, then
# ./.env of the instance, then the default.
cfg() {
	local key=$1 default=${2-}
	if [[ -n ${!key+x} ]]; then
		printf '%s\n' "${!key}"
	elif ! dotenv_get "$ENV_FILE" "$key"; then
		printf '%s\n' "$default"
	fi
}

# cfg_uint KEY DEFAULT: like cfg, but a non-negative integer (falls back to DEFAULT).
cfg_uint() {
	local v
	v=$(cfg "$1" "$2")
	if [[ ! $v =~ ^[0-9]+$ ]]; then
		warn "$1=$v is not a whole number of seconds; using $2"
		v=$2
	fi
	printf '%s\n' "$((10#$v))"
}

# pid_exists PID: the process exists and is not a zombie.
pid_exists() {
	local stat
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# is_our_process PID: alive, working directory = this instance, and running `subgpt serve`.
# Reading another user's /proc/PID/cwd needs privileges: unreadable means "not ours".
is_our_process() {
	local pid=$1 cwd exe arg0 arg is_serve=1
	local -a argv=()
	pid_exists "$pid" || return 1
	cwd=$(readlink -- "/proc/$pid/cwd" 2>/dev/null) || return 1
	[[ $cwd == "$INSTANCE" ]] || return 1
	{ mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
	((${#argv[@]} > 0)) || return 1
	for arg in "${argv[@]:1}"; do
		[[ $arg == serve ]] && is_serve=0
	done
	((is_serve == 0)) || return 1
	# After update.sh replaced the binary, the old process's exe reads "... (deleted)".
	exe=$(readlink -- "/proc/$pid/exe" 2>/dev/null) || exe=
	exe=${exe% (deleted)}
	arg0=${argv[0]}
	# A wrapper script installed as `subgpt` runs as `sh <instance>/subgpt serve`.
	[[ ${exe##*/} == subgpt || ${arg0##*/} == subgpt || ${argv[1]##*/} == subgpt ]]
}

# current_pid: print the PID of this instance's running subgpt and return 0; return 1 when
# it is not running. A PID file naming anything else is stale: it is removed, with a message.
current_pid() {
	local pid
	[[ -f $PID_FILE ]] || return 1
	pid=$(tr -d '[:space:]' 2>/dev/null <"$PID_FILE") || pid=
	if [[ $pid =~ ^[0-9]+$ ]] && is_our_process "$pid"; then
		printf '%s\n' "$pid"
		return 0
	fi
	if [[ -z $pid ]]; then
		msg "removing empty PID file $PID_FILE" >&2
	elif pid_exists "$pid"; then
		msg "removing stale PID file $PID_FILE: pid $pid is not this instance's subgpt (left alone)" >&2
	else
		msg "removing stale PID file $PID_FILE: pid $pid is not running" >&2
	fi
	rm -f -- "$PID_FILE"
	return 1
}

# unmanaged_pids: `subgpt serve` processes working in this instance directory that the PID
# file does not name (started by hand, or by systemd). Best effort: needs /proc access.
unmanaged_pids() {
	local d pid
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $pid == "$$" ]] && continue
		# -ef (same inode) is a builtin test: cheap enough to run over every process.
		[[ $d/cwd -ef $INSTANCE ]] 2>/dev/null || continue
		is_our_process "$pid" && printf '%s\n' "$pid"
	done
	return 0
}

# take_lock NAME: serialise the start/stop (or the updates) of this instance; the fd is
# left in LOCK_FD. A child that outlives the script must not inherit it: run it with
# {LOCK_FD}>&-. Best effort when flock(1) is missing.
take_lock() {
	mkdir -p -- "$RUN_DIR"
	exec {LOCK_FD}>"$RUN_DIR/$1.lock"
	command -v flock >/dev/null 2>&1 || return 0
	flock -n "$LOCK_FD" || die "another $1 of this instance ($INSTANCE) is in progress"
}

# health_url: http://BIND_ADDR/healthz, a wildcard bind address replaced by loopback.
health_url() {
	local addr host port
	addr=$(cfg BIND_ADDR 127.0.0.1:8080)
	port=${addr##*:}
	host=${addr%:*}
	case $host in
	'' | 0.0.0.0) host=127.0.0.1 ;;
	'[::]') host='[::1]' ;;
	esac
	printf 'http://%s:%s/healthz\n' "$host" "$port"
}

# bind_port: the port of BIND_ADDR.
bind_port() {
	local addr
	addr=$(cfg BIND_ADDR 127.0.0.1:8080)
	printf '%s\n' "${addr##*:}"
}

# listening_inodes PORT: inodes of the TCP sockets listening on PORT (IPv4 and IPv6), from
# /proc/net (no ss/netstat needed).
listening_inodes() {
	local hex
	hex=$(printf '%04X' "$1")
	# Columns: sl local_address rem_address st ... inode (10th); st 0A = LISTEN.
	awk -v port="$hex" '$4 == "0A" { n = split($2, a, ":"); if (a[n] == port) print $10 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null || true
}

# pid_listens_on PID PORT: PID itself holds a socket listening on PORT. A /healthz answer
# counts only then: another process on the port (an old copy, another bot) must not pass
# for the one just started.
pid_listens_on() {
	local pid=$1 inode fd link
	local -A wanted=()
	for inode in $(listening_inodes "$2"); do
		wanted[$inode]=1
	done
	((${#wanted[@]} > 0)) || return 1
	for fd in "/proc/$pid/fd/"*; do
		link=$(readlink -- "$fd" 2>/dev/null) || continue
		[[ $link == socket:\[*\] ]] || continue
		inode=${link#socket:[}
		inode=${inode%]}
		[[ -n ${wanted[$inode]:-} ]] && return 0
	done
	return 1
}

# health_check: 0 when /healthz answers 200; the body or the error is printed.
health_check() {
	local url=$1 hostport host port
	if command -v curl >/dev/null 2>&1; then
		curl --noproxy '*' -g -fsS --connect-timeout 1 --max-time 2 -- "$url" 2>&1
		return
	fi
	# No curl: a plain HTTP/1.0 request over bash's /dev/tcp, in a subshell so that a
	# refused connection cannot take the script down.
	hostport=${url#http://}
	hostport=${hostport%%/*}
	port=${hostport##*:}
	host=${hostport%:*}
	host=${host#[}
	host=${host%]}
	(
		exec 7<>"/dev/tcp/$host/$port" || exit 1
		printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&7
		status=
		IFS= read -r -t 2 status <&7 || true
		while IFS= read -r -t 2 line <&7; do
			[[ $line == $'\r' || -z $line ]] && break
		done
		line=
		IFS= read -r -t 2 line <&7 || true
		printf '%s\n' "${line%$'\r'}"
		[[ $status =~ ^HTTP/[0-9.]+\ 200 ]]
	) 2>&1
}

# stop_pid PID TIMEOUT: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL as a last resort.
stop_pid() {
	local pid=$1 timeout=$2 deadline
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + timeout))
	while is_our_process "$pid" && ((SECONDS < deadline)); do
		sleep 0.2
	done
	if is_our_process "$pid"; then
		warn "pid $pid still running after ${timeout}s; sending SIGKILL (answers in flight and usage rows not yet written may be lost; see logs.sh)"
		kill -KILL "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 10))
		while pid_exists "$pid" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		pid_exists "$pid" && die "pid $pid survived SIGKILL"
	fi
	return 0
}

# db_path KEY DEFAULT: a database path from the configuration, absolute (relative paths are
# relative to the instance, where subgpt runs).
db_path() {
	local p
	p=$(cfg "$1" "$2")
	[[ $p == /* ]] || p=$INSTANCE/${p#./}
	printf '%s\n' "$p"
}

# log_tail N: the last N lines of the log, indented.
log_tail() {
	if [[ -s $LOG_FILE ]]; then
		tail -n "$1" -- "$LOG_FILE" | sed 's/^/    /'
	else
		printf '    (log %s is empty or missing)\n' "$LOG_FILE"
	fi
}
