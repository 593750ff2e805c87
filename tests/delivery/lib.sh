# lib.sh - shared helpers for the delivery tests (sourced, not run).
#
# Each test calls dlv_init NAME, which makes a work directory and arranges
# for every server it starts to be stopped on exit. Every check prints one
# "ok - ..." line; the first failure prints "FAIL - ..." and exits 1.
#
# Environment:
#   SCHEMAGATE_BIN       the schemagate binary to run (CTest passes the
#                        build's own); default: build one in /tmp/build-dlv-tests
#   SG_STATIC_BUILD_DIR  where static.sh builds the static binary
#   KEEP=1               keep the work directory
set -euo pipefail

DLV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DLV_HARNESS="$DLV_SRC/tests/harness"
DLV_PG_BIN=${SG_PG_BIN:-/usr/lib/postgresql/15/bin}
DLV_SERVERS=()
DLV_WORK=

say() { echo "$DLV_NAME: $*" >&2; }
ok() { echo "ok - $*"; }
fail() {
	echo "FAIL - $*"
	exit 1
}
# check DESCRIPTION COMMAND...: run COMMAND, print ok or fail.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

dlv_cleanup() {
	local rc=$? entry
	for entry in "${DLV_SERVERS[@]}"; do
		"$DLV_HARNESS/${entry%%:*}" stop "${entry#*:}" >/dev/null 2>&1 || true
	done
	if [[ -n "$DLV_WORK" && -z "${KEEP:-}" ]]; then
		rm -rf "$DLV_WORK"
	elif [[ -n "$DLV_WORK" ]]; then
		say "kept $DLV_WORK"
	fi
	if [[ $rc -eq 0 ]]; then echo "PASS $DLV_NAME"; else echo "FAILED $DLV_NAME (exit $rc)"; fi
	exit $rc
}

dlv_init() {
	DLV_NAME=$1
	# The servers run as the postgres/mysql accounts: they must reach it.
	DLV_WORK=$(mktemp -d "/tmp/sg-delivery-$DLV_NAME.XXXXXX")
	chmod 0755 "$DLV_WORK"
	trap dlv_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# The schemagate binary under test (dynamic is fine except for static.sh).
dlv_binary() {
	if [[ -n "${SCHEMAGATE_BIN:-}" ]]; then
		[[ -x "$SCHEMAGATE_BIN" ]] || fail "SCHEMAGATE_BIN=$SCHEMAGATE_BIN is not executable"
		echo "$SCHEMAGATE_BIN"
		return
	fi
	local build=/tmp/build-dlv-tests
	say "SCHEMAGATE_BIN unset: building $build/schemagate"
	cmake -S "$DLV_SRC" -B "$build" -DSG_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$build" -j2 --target schemagate >/dev/null || fail "building schemagate"
	echo "$build/schemagate"
}

dlv_helm() {
	"$DLV_SRC/tests/delivery/install-helm.sh" 2>/dev/null || fail "installing helm (tests/delivery/install-helm.sh)"
}

# Start the private PostgreSQL; exports SG_TEST_PG_URL, SG_TEST_PG_PORT.
dlv_start_pg() {
	local out
	out=$("$DLV_HARNESS/pg.sh" start "$DLV_WORK/pg") || fail "starting PostgreSQL (tests/harness/pg.sh)"
	eval "$out"
	DLV_SERVERS+=("pg.sh:$DLV_WORK/pg")
}

# Start the private MariaDB; exports SG_TEST_MYSQL_URL, DLV_MYSQL_PORT.
dlv_start_mariadb() {
	local out
	out=$("$DLV_HARNESS/mariadb.sh" start "$DLV_WORK/mariadb") || fail "starting MariaDB (tests/harness/mariadb.sh)"
	eval "$out"
	DLV_SERVERS+=("mariadb.sh:$DLV_WORK/mariadb")
	DLV_MYSQL_PORT=$(cat "$DLV_WORK/mariadb/port")
}

# dlv_psql DB SQL: run SQL as the superuser, print unaligned tuples.
dlv_psql() {
	PGPASSWORD=sg-test-pw "$DLV_PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$SG_TEST_PG_PORT" -U sg -d "$1" -c "$2"
}

dlv_mysql() {
	mariadb --no-defaults -h 127.0.0.1 -P "$DLV_MYSQL_PORT" -u sg -psg-test-pw -N -B -e "$1"
}

# dlv_fixtures DIR N: migrations 1..N (pair layout, with down scripts) in
# SQL that PostgreSQL, MariaDB and SQLite all accept.
dlv_fixtures() {
	local dir=$1 n=$2 i
	mkdir -p "$dir"
	for ((i = 1; i <= n; i++)); do
		printf 'CREATE TABLE dlv_t%d (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL);\n' "$i" \
			>"$dir/$(printf %04d "$i")_table_$i.up.sql"
		printf 'DROP TABLE dlv_t%d;\n' "$i" >"$dir/$(printf %04d "$i")_table_$i.down.sql"
	done
	chmod -R a+rX "$dir"
}
