#!/usr/bin/env bash
# tests/stress/history_model.sh - the long run of history_model
# (tests/integration/test_history_model.c): SG_MODEL_STEPS random steps
# (default 5000) per engine (SQLite, PostgreSQL, MariaDB), each a fresh seed
# unless SG_MODEL_SEED is given; the seed is printed, and every failure
# message repeats it with the step and the log of the run.
#
#   tests/stress/history_model.sh                     # 5000 steps per engine
#   SG_MODEL_SEED=12345 tests/stress/history_model.sh # replay one run
#   SG_MODEL_ENGINES=sqlite tests/stress/history_model.sh
#   SG_STRESS_SANITIZE=1 tests/stress/history_model.sh  # ASan+UBSan build
#
# Starts one private PostgreSQL and one MariaDB in a temporary directory
# and stops them at the end (needs what tests/run.sh needs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

if [ "${SG_STRESS_SANITIZE:-0}" = 1 ]; then
	BUILD=${SG_BUILD_DIR:-$ROOT/build-stress-asan}
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DSG_SANITIZE=ON >/dev/null
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
	BUILD=${SG_BUILD_DIR:-$ROOT/build-stress}
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target integration_test_history_model

WORK=$(mktemp -d /tmp/schemagate-model.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	bash tests/harness/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
	bash tests/harness/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

eval "$(bash tests/harness/pg.sh start "$WORK/pg")"
eval "$(bash tests/harness/mariadb.sh start "$WORK/mariadb")"
mkdir -m 1777 "$WORK/tmp"
export TMPDIR="$WORK/tmp"
export CI=true   # a server that is missing is a failure, not a skip
export SG_MODEL_STEPS=${SG_MODEL_STEPS:-5000}

rc=0
# a name that matches no test would run nothing and pass
for engine in ${SG_MODEL_ENGINES:-sqlite postgres mariadb}; do
	case $engine in
	sqlite | postgres | mariadb) ;;
	*) echo "history_model.sh: unknown engine '$engine' in SG_MODEL_ENGINES (sqlite, postgres, mariadb; separated by spaces)" >&2; exit 2 ;;
	esac
done
for engine in ${SG_MODEL_ENGINES:-sqlite postgres mariadb}; do
	"$BUILD/integration_test_history_model" --jobs 1 --verbose=0 --filter "history_model/$engine" || rc=1
done
exit $rc
