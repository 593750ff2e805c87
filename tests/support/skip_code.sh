#!/bin/sh
# skip_code.sh BINARY - a Criterion executable whose tests need a server
# (SG_TEST_MYSQL_URL) exits 77 without it, so ctest lists it as Skipped
# (sgmain.c), and exits 1 under CI=true, where a missing server fails.
bin=$1
unset SG_TEST_MYSQL_URL SG_TEST_PG_URL CI
"$bin" >/dev/null 2>&1
status=$?
if [ $status -ne 77 ]; then
	echo "without its server $bin exited $status, not 77 (skipped)" >&2
	exit 1
fi
CI=true "$bin" >/dev/null 2>&1
status=$?
if [ $status -ne 1 ]; then
	echo "under CI=true without its server $bin exited $status, not 1 (failed)" >&2
	exit 1
fi
echo "skipped: exit 77; CI=true: exit 1"
