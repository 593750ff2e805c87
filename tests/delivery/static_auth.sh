#!/usr/bin/env bash
# static_auth.sh - MySQL/MariaDB authentication plugins in the static binary.
#
# The static binary links MariaDB Connector/C built by
# container/build-static.sh with caching_sha2_password and client_ed25519
# compiled in, and refuses to dlopen() anything else (src/static/no_dlopen.c):
# loading a shared plugin into a static binary used to crash it.
#
#   - MariaDB, a user IDENTIFIED VIA ed25519 (INSTALL SONAME 'auth_ed25519'):
#     up and verify exit 0; a wrong password exits 5, no crash.
#   - MySQL 8's caching_sha2_password, served by mysql8_auth_server.py in
#     front of the private MariaDB: the first login takes the full exchange
#     (RSA public key, encrypted password), the next ones the cached fast
#     path; a wrong password exits 5.
#   - A server asking for a plugin that is not built in ("dialog", whose
#     Debian shared object is on this machine): exit 5 naming the reason,
#     where the binary used to crash with SIGSEGV.
# The dynamic build runs the same logins, as the reference.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init static_auth

build=${SG_STATIC_BUILD_DIR:-/tmp/build-static}
"$DLV_SRC/container/build-static.sh" --build "$build" >/dev/null || fail "container/build-static.sh"
# Both are read as ${!kind} below.
# shellcheck disable=SC2034
static="$build/schemagate"
# shellcheck disable=SC2034
dynamic=$(dlv_binary)
command -v openssl >/dev/null || fail "openssl is missing (apt-get install openssl)"

dlv_fixtures "$DLV_WORK/migrations" 2
dlv_start_mariadb
dlv_mysql "INSTALL SONAME 'auth_ed25519'"

# sg BINARY URL COMMAND: schemagate with the fixtures; stderr to a log the
# checks can read, exit status kept.
sg() {
	local bin=$1 url=$2
	shift 2
	env -i DATABASE_URL="$url" SCHEMAGATE_DIR="$DLV_WORK/migrations" SCHEMAGATE_CONNECT_TIMEOUT=5s \
		MARIADB_PLUGIN_DIR="$plugin_dir" "$bin" "$@" 2>"$DLV_WORK/last.log"
}
# Debian's shared plugins: the static binary is pointed at them on purpose,
# since loading one of them is what used to crash it.
plugin_dir=/usr/lib/x86_64-linux-gnu/libmariadb3/plugin
check "Debian's shared client plugins are on this machine ($plugin_dir)" \
	test -f "$plugin_dir/client_ed25519.so" -a -f "$plugin_dir/dialog.so"

for kind in static dynamic; do
	bin=${!kind}
	db=dlv_ed_$kind
	dlv_mysql "CREATE DATABASE $db; CREATE USER ed_$kind@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw-$kind');
		GRANT ALL ON $db.* TO ed_$kind@'%'"
	url="mysql://ed_$kind:ed-pw-$kind@127.0.0.1:$DLV_MYSQL_PORT/$db"
	check "$kind: ed25519 user: up exits 0" sg "$bin" "$url" up
	check "$kind: ed25519 user: 2 migrations recorded" \
		test "$(dlv_mysql "SELECT count(*) FROM $db.schemagate_migrations")" = 2
	check "$kind: ed25519 user: verify exits 0" sg "$bin" "$url" verify
	rc=0
	sg "$bin" "mysql://ed_$kind:wrong@127.0.0.1:$DLV_MYSQL_PORT/$db" verify || rc=$?
	check "$kind: ed25519 user, wrong password: exit 5, not a crash (exit $rc)" test "$rc" -eq 5
	check "$kind: ed25519 user, wrong password: access denied" grep -q 'Access denied' "$DLV_WORK/last.log"
done

# ---- caching_sha2_password, as MySQL 8.4 asks for it by default
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DLV_WORK/key.pem" 2>/dev/null
openssl pkey -in "$DLV_WORK/key.pem" -pubout -out "$DLV_WORK/key.pem.pub"
# start_auth_server NAME ARGS...: mysql8_auth_server.py in front of MariaDB;
# sets PORT and LOG.
start_auth_server() {
	local name=$1
	shift
	LOG="$DLV_WORK/$name.log"
	rm -f "$DLV_WORK/$name.port"
	python3 "$DLV_SRC/tests/delivery/mysql8_auth_server.py" --backend "127.0.0.1:$DLV_MYSQL_PORT" \
		--backend-user sg:sg-test-pw --key "$DLV_WORK/key.pem" --port-file "$DLV_WORK/$name.port" \
		"$@" >"$LOG" 2>&1 &
	DLV_PIDS+=($!)
	for _ in $(seq 100); do
		[[ -s "$DLV_WORK/$name.port" ]] && break
		kill -0 "$!" 2>/dev/null || { cat "$LOG"; fail "mysql8_auth_server.py exited"; }
		sleep 0.1
	done
	PORT=$(cat "$DLV_WORK/$name.port")
}

for kind in static dynamic; do
	bin=${!kind}
	db=dlv_sha2_$kind
	dlv_mysql "CREATE DATABASE $db"
	# A new server per binary: its cache starts empty, like a fresh MySQL.
	start_auth_server "sha2-$kind" --user "app8:app8-pw-$kind"
	url="mysql://app8:app8-pw-$kind@127.0.0.1:$PORT/$db"
	check "$kind: caching_sha2_password: up exits 0" sg "$bin" "$url" up
	check "$kind: caching_sha2_password: the first login took the full RSA exchange" \
		grep -qx 'full-auth ok user=app8 via=rsa' "$LOG"
	check "$kind: caching_sha2_password: 2 migrations recorded" \
		test "$(dlv_mysql "SELECT count(*) FROM $db.schemagate_migrations")" = 2
	before=$(grep -c '^fast-auth ok' "$LOG" || true)
	check "$kind: caching_sha2_password: verify exits 0" sg "$bin" "$url" verify
	check "$kind: caching_sha2_password: verify logged in by the cached fast path" \
		test "$(grep -c '^fast-auth ok' "$LOG")" -gt "$before"
	rc=0
	sg "$bin" "mysql://app8:wrong@127.0.0.1:$PORT/$db" verify || rc=$?
	check "$kind: caching_sha2_password, wrong password: exit 5 (exit $rc)" test "$rc" -eq 5
	check "$kind: caching_sha2_password, wrong password: denied after the full exchange" \
		grep -qx 'full-auth denied user=app8 via=rsa' "$LOG"
done

# ---- a plugin that is not built in
start_auth_server dialog --user app8:x --switch-to dialog
rc=0
sg "$static" "mysql://app8:x@127.0.0.1:$PORT/dlv_sha2_static" verify || rc=$?
echo "static, server asks for dialog: exit $rc: $(tail -n1 "$DLV_WORK/last.log")"
check "static: a server asking for the dialog plugin: exit 5, not a crash (exit $rc)" test "$rc" -eq 5
check "static: ... with the reason: dynamic loading is not available" \
	grep -q 'Plugin dialog could not be loaded: dynamic loading is not available in the static schemagate build' \
	"$DLV_WORK/last.log"
