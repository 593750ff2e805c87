#!/usr/bin/env bash
# tests/stress/run.sh - the long variants of the concurrency tests:
#   * tests/integration/test_chaos.c with SG_CHAOS_ROUNDS=10 (10 rounds of
#     20 instances x 20 migrations, 3 random SIGKILLs of the lock holder per
#     round, on PostgreSQL and MariaDB), plus the lease-lock tests;
#   * tests/integration/test_scale.c with SG_TEST_SCALE=200 (200 processes
#     against private servers with max_connections = 40, PgBouncer, SQLite).
#
#   tests/stress/run.sh                       # normal build in build-stress/
#   SG_CHAOS_SEED=12345 tests/stress/run.sh   # replay one chaos run
#   SG_CHAOS_LOCK=table tests/stress/run.sh   # chaos rounds on the lease lock
#   SG_STRESS_SANITIZE=1 tests/stress/run.sh  # ASan+UBSan build instead
#
# Needs what tests/run.sh needs (run tests/deps.sh once). Like tests/run.sh
# it starts one private PostgreSQL and one MariaDB (max_connections 300) in
# a temporary directory and stops them at the end; the 40-connection
# servers and PgBouncer are started by the tests themselves.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

JOBS=$(nproc)
if [ "${SG_STRESS_SANITIZE:-0}" = 1 ]; then
	BUILD=${SG_BUILD_DIR:-$ROOT/build-stress-asan}
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DSG_SANITIZE=ON >/dev/null
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
	BUILD=${SG_BUILD_DIR:-$ROOT/build-stress}
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target integration_test_chaos integration_test_scale

WORK=$(mktemp -d /tmp/schemagate-stress.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	bash tests/harness/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
	bash tests/harness/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

eval "$(bash tests/harness/pg.sh start "$WORK/pg")"
eval "$(bash tests/harness/mariadb.sh start "$WORK/mariadb")"
export TMPDIR="$WORK"
export CI=true   # a server that is missing is a failure, not a skip
export SG_CHAOS_ROUNDS=${SG_CHAOS_ROUNDS:-10}
export SG_TEST_SCALE=${SG_TEST_SCALE:-200}
echo "stress: SG_CHAOS_ROUNDS=$SG_CHAOS_ROUNDS SG_TEST_SCALE=$SG_TEST_SCALE SG_CHAOS_SEED=${SG_CHAOS_SEED:-random}" >&2

# One test at a time: the figures on stderr stay readable and the
# timings are not skewed by a neighbour.
rc=0
"$BUILD/integration_test_scale" --jobs 1 --verbose=0 || rc=1
"$BUILD/integration_test_chaos" --jobs 1 --verbose=0 || rc=1
exit $rc
