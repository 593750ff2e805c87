#!/bin/sh
# tests/support/valgrind.sh - schemagate under valgrind, two ways:
#
#   valgrind.sh --suite TEST_EXECUTABLE [ARGS...]
#       run a Criterion test executable with every schemagate process it
#       starts under valgrind (the CTest test valgrind_sqlite, label
#       valgrind); fails when the tests fail or when valgrind reported
#       anything in any process;
#   valgrind.sh SCHEMAGATE ARGS...
#       the wrapper itself (SG_TEST_BINARY_WRAPPER, tests/support/sgtest.c).
#
# valgrind --error-exitcode=1, with definite leaks counted as errors. Each
# process writes its report to $SG_VALGRIND_LOG_DIR/vg.PID.log; -q leaves a
# log empty unless valgrind found something, so a non-empty log fails the
# run even where the test expected exit 1 (the code valgrind exits with).
# A PROGRAM after "--" is exec'd as itself (--trace-children=no).
# SG_TEST_SLOWDOWN=10 stretches the tests' waits and wall-clock bounds.
set -eu

if [ "${1:-}" = --suite ]; then
	shift
	command -v valgrind >/dev/null || {
		echo "valgrind.sh: valgrind is missing (bash tests/deps.sh installs it)" >&2
		exit 1
	}
	logs=$(mktemp -d "${TMPDIR:-/tmp}/sg-valgrind.XXXXXX")
	rc=0
	SG_TEST_BINARY_WRAPPER=$(cd "$(dirname "$0")" && pwd)/valgrind.sh SG_VALGRIND_LOG_DIR=$logs \
		SG_TEST_SLOWDOWN=${SG_TEST_SLOWDOWN:-10} "$@" || rc=$?
	runs=$(find "$logs" -type f | wc -l)
	bad=$(find "$logs" -type f -size +0)
	if [ -n "$bad" ]; then
		for f in $bad; do
			echo "---- valgrind: $f" >&2
			cat "$f" >&2
		done
		echo "valgrind: reports from $(echo "$bad" | wc -l) of $runs schemagate processes" >&2
		rc=1
	elif [ "$runs" -eq 0 ]; then
		echo "valgrind: no schemagate process ran under valgrind" >&2
		rc=1
	else
		echo "valgrind: $runs schemagate processes, nothing reported"
	fi
	rm -rf "$logs"
	exit $rc
fi

: "${SG_VALGRIND_LOG_DIR:?set SG_VALGRIND_LOG_DIR to a directory for the reports}"
exec valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --num-callers=30 \
	--log-file="$SG_VALGRIND_LOG_DIR/vg.%p.log" "$@"
