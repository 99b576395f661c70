#!/usr/bin/env bash
# Static checks of deploy/ and nginx/, run by the project's tests:
#   1. shellcheck (all severities) on deploy/*.sh and the shell scripts in scripts/
#   2. the management scripts are executable
#   3. systemd-analyze verify on deploy/*.service and *.timer, when systemd-analyze exists
#   4. nginx -t on nginx/subgpt.conf, inside a throw-away nginx.conf with a self-signed
#      certificate; everything it writes stays in a temp dir
# Prints one line per check; exits 1 if any failed, naming it.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/subgpt-check.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
failed=()

ok() { printf 'ok    %s\n' "$*"; }
skip() { printf 'skip  %s\n' "$*"; }
fail() {
	printf 'FAIL  %s\n' "$1"
	failed+=("$1")
	shift
	(($# == 0)) || printf '%s\n' "$@" | sed 's/^/      /'
	return 0
}

check_shellcheck() {
	local f first
	local -a files=()
	for f in "$ROOT"/deploy/*.sh "$ROOT"/scripts/*; do
		[[ -f $f ]] || continue
		if [[ $f == *.sh ]]; then
			files+=("$f")
		else
			IFS= read -r first <"$f" || true
			[[ $first =~ ^#!.*[/[:space:]](ba|da|k)?sh([[:space:]]|$) ]] && files+=("$f")
		fi
	done
	if ! command -v shellcheck >/dev/null 2>&1; then
		fail "shellcheck: not installed (apt-get install shellcheck)"
		return
	fi
	local out
	if out=$(cd -- "$ROOT" && shellcheck -x "${files[@]#"$ROOT"/}" 2>&1); then
		ok "shellcheck: ${#files[@]} files clean"
	else
		fail "shellcheck: warnings in the scripts" "$out"
	fi
}

check_executable() {
	local f bad=()
	for f in "$ROOT"/deploy/*.sh; do
		[[ ${f##*/} == lib.sh || -x $f ]] || bad+=("${f#"$ROOT"/}")
	done
	if ((${#bad[@]} == 0)); then
		ok "deploy scripts are executable"
	else
		fail "not executable (chmod +x; git update-index --chmod=+x): ${bad[*]}"
	fi
}

# verify needs ExecStart to exist: it runs against copies whose ExecStart names a stub. The
# User= account need not exist for verify. The timer is checked with its service beside it.
check_systemd() {
	local unit name out rc
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		skip "systemd-analyze verify: systemd-analyze not installed"
		return
	fi
	mkdir -p -- "$TMP/unit"
	printf '#!/bin/sh\nexit 0\n' >"$TMP/unit/subgpt"
	chmod +x -- "$TMP/unit/subgpt"
	for unit in "$ROOT"/deploy/*.service "$ROOT"/deploy/*.timer; do
		[[ -f $unit ]] || continue
		name=${unit##*/}
		if [[ $name == *.service ]] && ! grep -q '^ExecStart=/opt/subgpt/subgpt ' "$unit"; then
			fail "systemd unit $name: no 'ExecStart=/opt/subgpt/subgpt …' line"
			continue
		fi
		sed "s#^ExecStart=/opt/subgpt/subgpt #ExecStart=$TMP/unit/subgpt #" "$unit" >"$TMP/unit/$name"
	done
	for unit in "$TMP"/unit/*.service "$TMP"/unit/*.timer; do
		[[ -f $unit ]] || continue
		name=${unit##*/}
		# Lines about other units (pulled in by Wants=/After=) are the host's business, not ours.
		rc=0
		out=$(cd -- "$TMP/unit" && systemd-analyze verify "$unit" 2>&1) || rc=$?
		if ((rc == 0)) && ! grep -q 'subgpt' <<<"$out"; then
			ok "systemd-analyze verify deploy/$name"
		else
			fail "systemd-analyze verify deploy/$name (exit $rc)" "$out"
		fi
	done
}

check_nginx() {
	local conf=$ROOT/nginx/subgpt.conf d=$TMP/nginx out
	if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
		fail "nginx -t: nginx not installed (apt-get install nginx-light or nginx)"
		return
	fi
	command -v openssl >/dev/null 2>&1 || { fail "nginx -t: openssl not installed"; return; }
	mkdir -p -- "$d"
	if ! out=$(openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-keyout "$d/key.pem" -out "$d/cert.pem" 2>&1); then
		fail "nginx -t: could not make a self-signed certificate" "$out"
		return
	fi
	sed -e "s#/etc/letsencrypt/live/[^/;]*/fullchain\.pem#$d/cert.pem#g" \
		-e "s#/etc/letsencrypt/live/[^/;]*/privkey\.pem#$d/key.pem#g" \
		-e "s#/etc/letsencrypt/live/[^/;]*/chain\.pem#$d/cert.pem#g" "$conf" >"$d/subgpt.conf"
	if grep -qE '^[^#]*/etc/' "$d/subgpt.conf"; then
		fail "nginx -t: nginx/subgpt.conf names paths under /etc/ that this check cannot substitute" \
			"$(grep -nE '^[^#]*/etc/' "$d/subgpt.conf")"
		return
	fi
	# nginx -t does not bind the listen ports; all paths it may write are in $d.
	cat >"$d/nginx.conf" <<-CONF
		worker_processes 1;
		pid $d/nginx.pid;
		error_log $d/error.log;
		events { worker_connections 64; }
		http {
		    access_log $d/access.log;
		    client_body_temp_path $d/client_body;
		    proxy_temp_path $d/proxy;
		    fastcgi_temp_path $d/fastcgi;
		    uwsgi_temp_path $d/uwsgi;
		    scgi_temp_path $d/scgi;
		    include $d/subgpt.conf;
		}
	CONF
	local nginx_bin
	nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
	if out=$("$nginx_bin" -t -q -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" 2>&1); then
		ok "nginx -t nginx/subgpt.conf"
	else
		fail "nginx -t nginx/subgpt.conf" "$out"
	fi
}

check_shellcheck
check_executable
check_systemd
check_nginx

if ((${#failed[@]} > 0)); then
	printf '\ncheck.sh: %d check(s) failed:\n' "${#failed[@]}" >&2
	printf '  - %s\n' "${failed[@]}" >&2
	exit 1
fi
printf '\ncheck.sh: all checks passed\n'
