#!/usr/bin/env bash
# tests/fuzz/run.sh - build the libFuzzer targets and run each for SECONDS.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 30 (0: only replay the seeds and the regressions).
# TARGETs are the NAMEs of tests/fuzz/fuzz_NAME.c, all of them by default.
#
# Each target replays its seeds (corpus/NAME) and the inputs of findings
# already fixed (regressions/NAME), then fuzzes for SECONDS. New inputs
# go to $BUILD/corpus/NAME, kept between runs and never checked in. A
# crash, a sanitizer report or a broken property stops the target; the
# input is saved under $BUILD/artifacts/NAME/ and the script exits 1
# naming it and the command that reproduces it.
#
# BUILD is $SG_FUZZ_BUILD_DIR, by default build-fuzz in the source tree:
# a clang build with -DSG_FUZZ=ON, configured here when missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${SG_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}

seconds=${1:-30}
shift || true
case $seconds in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS] [TARGET...]" >&2
	exit 2
	;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in "$HERE"/fuzz_*.c; do
		name=$(basename "$src" .c)
		targets+=("${name#fuzz_}")
	done
fi
for t in "${targets[@]}"; do
	if [ ! -f "$HERE/fuzz_$t.c" ]; then
		echo "fuzz: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2
		exit 2
	fi
done

command -v clang >/dev/null || {
	echo "fuzz: clang is missing (bash tests/deps.sh installs it)" >&2
	exit 1
}

# One build at a time: CTest may start several targets' runs.
mkdir -p "$BUILD"
exec 9>"$BUILD/.fuzz-build.lock"
flock 9
# configured every time: a build directory from before a target was added
# learns of it
CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_FUZZ=ON -DSG_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"${SG_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz_}" >"$BUILD/fuzz-build.log" 2>&1 || {
	cat "$BUILD/fuzz-build.log" >&2
	exit 1
}
flock -u 9

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}

failed=0
for t in "${targets[@]}"; do
	bin="$BUILD/tests/fuzz/fuzz_$t"
	work="$BUILD/corpus/$t"
	art="$BUILD/artifacts/$t"
	log="$BUILD/fuzz-$t.log"
	mkdir -p "$work" "$art"
	dirs=("$work" "$HERE/corpus/$t")
	[ -d "$HERE/regressions/$t" ] && dirs+=("$HERE/regressions/$t")
	if [ "$seconds" -eq 0 ]; then
		limit=(-runs=0)
	else
		limit=(-max_total_time="$seconds")
	fi
	rc=0
	# -timeout: an input that takes 10 s is a hang; -rss_limit_mb: the
	# machine is shared
	(cd "$art" && "$bin" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art/" "${dirs[@]}") >"$log" 2>&1 || rc=$?
	# figures for the summary; a crashed run may lack some
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	if [ $rc -eq 0 ]; then
		echo "fuzz $t: ${seconds}s, ${runs:-?} inputs (${rate:-?}/s), coverage ${cov:-?}, corpus ${corp:-?}: ok"
		continue
	fi
	failed=1
	echo "fuzz $t: FAILED (exit $rc); the end of $log:" >&2
	tail -n 60 "$log" >&2
	crash=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
	if [ -n "$crash" ]; then
		echo "fuzz $t: the input is $crash" >&2
		echo "fuzz $t: reproduce with: $bin $crash" >&2
		echo "fuzz $t: once fixed, keep it: cp $crash tests/fuzz/regressions/$t/<what-it-found>" >&2
	fi
done
exit $failed
