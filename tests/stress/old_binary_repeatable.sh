#!/usr/bin/env bash
# old_binary_repeatable.sh - what a schemagate built before repeatable
# migrations does with a database that has a repeatable row (README
# "Repeatable migrations", older binaries): every command that migrates
# refuses (exit 4, naming the R__ row), `repair R__x` is a usage error, and
# nothing in the database changes. SQLite only: the rows are the same on
# every engine, and so is the older binary's reading of them.
#
# Usage: tests/stress/old_binary_repeatable.sh [BUILD_DIR] [OLD_COMMIT]
# BUILD_DIR holds today's schemagate (default build); OLD_COMMIT is a
# commit before repeatable migrations (default 00a9bde), built once in a
# git worktree under $TMPDIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NEW="$ROOT/${1:-build}/schemagate"
OLD_COMMIT=${2:-00a9bde}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-old-repeatable.XXXXXX")
trap 'git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD_COMMIT" >/dev/null 2>&1
cmake -S "$WORK/old" -B "$WORK/old/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
nice -n 10 cmake --build "$WORK/old/build" -j2 --target schemagate >/dev/null
OLD="$WORK/old/build/schemagate"

mkdir "$WORK/m"
printf 'CREATE TABLE t (a INTEGER);\n' >"$WORK/m/0001_t.up.sql"
printf 'DROP TABLE t;\n' >"$WORK/m/0001_t.down.sql"
printf 'DROP VIEW IF EXISTS v;\nCREATE VIEW v AS SELECT a FROM t;\n' >"$WORK/m/R__v.sql"
export DATABASE_URL="sqlite://$WORK/db.sqlite"
"$NEW" up --dir "$WORK/m" >/dev/null 2>&1

snapshot() { sqlite3 "$WORK/db.sqlite" 'SELECT * FROM schemagate_migrations ORDER BY version; SELECT sql FROM sqlite_master ORDER BY name'; }
before=$(snapshot)
fail=0
for cmd in up verify wait rollback down "status --check"; do
	set +e
	# shellcheck disable=SC2086
	err=$("$OLD" $cmd --dir "$WORK/m" --timeout 5s 2>&1 >/dev/null)
	rc=$?
	set -e
	if [ "$rc" -ne 4 ] || ! grep -q 'R__v' <<<"$err"; then
		echo "FAIL: the older binary's $cmd: exit $rc, want 4 naming R__v: $err" >&2
		fail=1
	fi
done
set +e
"$OLD" repair R__v --reverted --dir "$WORK/m" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "FAIL: the older binary's repair R__v: exit $rc, want 2" >&2; fail=1; }
if [ "$(snapshot)" != "$before" ]; then
	echo "FAIL: the older binary changed the database" >&2
	fail=1
fi
[ "$fail" -eq 0 ] && echo "ok: $OLD_COMMIT refuses the repeatable row (exit 4) and changes nothing"
exit "$fail"
