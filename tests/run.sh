#!/usr/bin/env bash
# tests/run.sh - the whole test suite, from a fresh Debian machine:
#   1. installs what it needs (tests/deps.sh),
#   2. builds twice: normal, and with AddressSanitizer + UBSan,
#   3. starts a private PostgreSQL 15 and MariaDB 10.11 on loopback in a
#      temporary directory, a PostgreSQL primary with a streaming standby
#      (tests/harness/pg_ha.sh) and a three-node Galera cluster
#      (tests/harness/galera.sh),
#   4. runs every CTest label (unit, integration, delivery, fuzz,
#      valgrind) on the normal build, and unit, integration and the
#      delivery tests that run the dynamic binary (compose, helm_run,
#      metrics: label delivery_dynamic) on the sanitizer build; the fuzz
#      label runs each libFuzzer target for 30 s (tests/fuzz/run.sh, which
#      builds its own clang tree, build-fuzz); the valgrind label runs the
#      SQLite integration test with every schemagate process under valgrind,
#   5. stops the servers.
# Under CI=true a server that does not start is a failure, never a skip.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash tests/deps.sh

JOBS=$(nproc)
BUILD=${SG_BUILD_DIR:-$ROOT/build}
ASAN_BUILD=${SG_ASAN_BUILD_DIR:-$ROOT/build-asan}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$JOBS"
if [ "${SG_SKIP_ASAN:-0}" != 1 ]; then
	cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DSG_SANITIZE=ON >/dev/null
	cmake --build "$ASAN_BUILD" -j"$JOBS"
fi

WORK=$(mktemp -d /tmp/schemagate-tests.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	bash tests/harness/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
	bash tests/harness/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
	bash tests/harness/pg_ha.sh stop "$WORK/pg_ha" >/dev/null 2>&1 || true
	bash tests/harness/galera.sh stop "$WORK/galera" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

eval "$(bash tests/harness/pg.sh start "$WORK/pg")"
eval "$(bash tests/harness/mariadb.sh start "$WORK/mariadb")"
# a primary and a streaming standby (tests/integration/test_postgres_ha.c)
eval "$(bash tests/harness/pg_ha.sh start "$WORK/pg_ha")"
# three MariaDB Galera nodes (tests/integration/test_galera.c); about a minute
eval "$(bash tests/harness/galera.sh start "$WORK/galera")"
# scratch space for the tests; servers running as other users write here too
mkdir -m 1777 "$WORK/tmp"
export TMPDIR="$WORK/tmp"

labels=${SG_TEST_LABELS:-unit|integration|delivery|fuzz|valgrind}
ctest --test-dir "$BUILD" -L "$labels" --output-on-failure
if [ "${SG_SKIP_ASAN:-0}" != 1 ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	ctest --test-dir "$ASAN_BUILD" -L "unit|integration|delivery_dynamic" --output-on-failure
fi
