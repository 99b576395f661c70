#!/usr/bin/env bash
# Update this instance to a new binary, keeping a way back.
#   update.sh NEW_BINARY   install NEW_BINARY (built elsewhere)
#   update.sh              build from the sources in the instance: cargo build --release --locked
# Steps: back up the binary, .env and the databases (an online copy made by the installed
# binary's `subgpt backup`, or by sqlite3 when that binary predates it) into backups/<timestamp>/ (the newest BACKUPS_KEEP=5 are kept),
# install or build, (re)start — also when it was stopped — and wait for /healthz. If the new
# version does not come up, everything is restored — the databases too, since the new binary
# may have migrated them past what the old one accepts — and the old version is started
# again; the script exits 1. The databases as the failed version left them are kept aside in
# backups/<timestamp>/rolled-back/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	printf 'usage: update.sh [NEW_BINARY]   (without NEW_BINARY, %s/Cargo.toml is built)\n' "$INSTANCE" >&2
	exit 2
}

# install_binary SRC: replace $BIN by SRC with a rename, so the running process keeps its
# old file and nothing ever sees a half-written binary.
install_binary() {
	mkdir -p -- "$(dirname -- "$BIN")"
	cp -- "$1" "$BIN.new.$$"
	chmod 755 -- "$BIN.new.$$"
	mv -f -- "$BIN.new.$$" "$BIN"
}

# sqlite3_backup DIR: the online copy for an installed binary older than `subgpt backup`,
# with sqlite3's own backup API (the file names are those `subgpt backup` uses).
sqlite3_backup() {
	local dir=$1 pair live out
	command -v sqlite3 >/dev/null 2>&1 ||
		die "the installed binary has no \`backup\` command and sqlite3 is not installed (apt-get install sqlite3); nothing was changed"
	mkdir -p -- "$dir"
	for pair in "$usage_db:user_analytics.db" "$state_db:state.db"; do
		live=${pair%:*}
		[[ -f $live ]] || continue
		# .backup takes its file name as a quoted argument: ' inside it is doubled.
		if ! out=$(sqlite3 -readonly "$live" ".backup '${dir//\'/\'\'}/${pair##*:}'" 2>&1); then
			rm -rf -- "$backup"
			die "could not back up $live with sqlite3; nothing was changed: $out"
		fi
		msg "  $live -> $dir/${pair##*:} (sqlite3 .backup)"
	done
}

# Run start/stop without our lock fd, so the started server does not hold it forever.
ctl() { "$SCRIPT_DIR/$1.sh" {LOCK_FD}>&-; }

new=
case ${1:-} in
-h | --help) usage ;;
'') [[ -f $INSTANCE/Cargo.toml ]] || usage ;;
*)
	(($# == 1)) || usage
	new=$1
	[[ -f $new && -x $new ]] || die "$new is not an executable file"
	new=$(cd -P -- "$(dirname -- "$new")" && pwd -P)/$(basename -- "$new")
	[[ $new != "$BIN" ]] || die "$new is the installed binary itself"
	version=$("$new" --version 2>&1) || die "$new --version failed: $version"
	msg "new binary: $new ($version)"
	;;
esac
take_lock update

backup=$INSTANCE/backups/$(date -u +%Y%m%dT%H%M%S.%3NZ)
[[ ! -e $backup ]] || backup=$backup-$$
mkdir -p -- "$backup"
had_bin=no
if [[ -f $BIN ]]; then
	cp -p -- "$BIN" "$backup/subgpt"
	had_bin=yes
fi
[[ ! -f $ENV_FILE ]] || cp -p -- "$ENV_FILE" "$backup/.env"
msg "backup of the current binary and .env: $backup"

# The databases, copied online by the installed binary (consistent while it serves).
usage_db=$(db_path ANALYTICS_DB_PATH ./data/user_analytics.db)
state_db=$(db_path STATE_DB_PATH ./data/state.db)
db_snapshot=
if [[ $had_bin == yes && -f $usage_db ]]; then
	if "$BIN" backup --help >/dev/null 2>&1; then
		if ! out=$(cd -- "$INSTANCE" && "$BIN" backup --out "$backup/db" 2>&1); then
			rm -rf -- "$backup"
			die "could not back up the databases; nothing was changed: ${out//$'\n'/; }"
		fi
		printf '%s\n' "$out" | sed 's/^/  /'
	else
		sqlite3_backup "$backup/db/sqlite3"
	fi
	for d in "$backup"/db/*/; do
		db_snapshot=${d%/}
	done
	[[ -n $db_snapshot && -f $db_snapshot/user_analytics.db ]] ||
		die "the database backup in $backup/db is incomplete; nothing was changed"
fi

# Keep the newest BACKUPS_KEEP backups (default 5), this one included; the names sort by
# time. Only directories named like ours are touched (not e.g. a daily `backup --out`).
keep=$(cfg_uint BACKUPS_KEEP 5)
older=()
for d in "$INSTANCE"/backups/[0-9]*T*Z*/; do
	[[ -d $d ]] || continue
	[[ ${d%/} == "$backup" ]] || older+=("${d%/}")
done
if ((${#older[@]} > keep - 1)); then
	rm -rf -- "${older[@]:0:${#older[@]}-(keep > 0 ? keep - 1 : 0)}"
fi

if [[ -n $new ]]; then
	install_binary "$new"
else
	command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH; build elsewhere and run: update.sh NEW_BINARY"
	msg "building: cargo build --release --locked (in $INSTANCE)"
	(cd -- "$INSTANCE" && cargo build --release --locked) ||
		die "build failed; nothing was changed (the running instance is untouched)"
	if [[ $BIN != "$INSTANCE/target/release/subgpt" ]]; then
		install_binary "$INSTANCE/target/release/subgpt"
	fi
fi
msg "installed $BIN; restarting"

if ctl stop && ctl start; then
	msg "update done; rollback, if ever needed: update.sh $backup/subgpt"
	exit 0
fi

msg "the new version did not come up: rolling back to $backup" >&2
ctl stop || true
if [[ -n $db_snapshot ]]; then
	# The file the failed version left (WAL included) goes aside, never away.
	mkdir -p -- "$backup/rolled-back"
	for pair in "$usage_db:user_analytics.db" "$state_db:state.db"; do
		live=${pair%:*}
		copy=$db_snapshot/${pair##*:}
		for f in "$live" "$live-wal" "$live-shm" "$live-journal"; do
			[[ ! -e $f ]] || mv -f -- "$f" "$backup/rolled-back/"
		done
		if [[ -f $copy ]]; then
			cp -p -- "$copy" "$live.restore.$$"
			mv -f -- "$live.restore.$$" "$live"
			msg "restored $live from $copy" >&2
		fi
	done
fi
if [[ $had_bin == yes ]]; then
	install_binary "$backup/subgpt"
else
	warn "there was no binary before this update: nothing to restore"
fi
[[ ! -f $backup/.env ]] || cp -p -- "$backup/.env" "$ENV_FILE"
if ctl start; then
	msg "rolled back: the previous version runs again" >&2
else
	msg "the rollback did not come up either; see logs.sh" >&2
fi
exit 1
