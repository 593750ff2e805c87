#!/usr/bin/env bash
# run.sh - benchmark schemagate against dbmate, Alembic and the libpq floor.
#
#   bench/run.sh [--no-install] [--quick] [--keep] [--twice]
#
# Installs what it needs (apt: hyperfine, alembic, python3-psycopg2, time,
# the static-build packages; npm: dbmate into $BENCH_CACHE), builds
# schemagate (release + static) and bench/floor.c, starts a private
# PostgreSQL and MariaDB through tests/harness/, runs every case, prints a
# Markdown table and writes it to bench/RESULTS.md. See bench/README.md.
#
#   --no-install  do not call apt-get / npm (use what is there)
#   --quick       fewer runs, for trying the script itself (numbers are rough)
#   --keep        keep the work directory (logs of every instance)
#   --twice       the whole bench twice, back to back: RESULTS.md gets run 1's
#                 tables and the "Issue 24: two runs" table (a target counts
#                 when both runs meet it)
#
# Environment: BENCH_CACHE (~/.cache/schemagate-bench), BENCH_WORK (a new
# temp dir), SG_BIN / SG_STATIC_BIN (use these binaries instead of building),
# BENCH_OUT (bench/RESULTS.md), BENCH_RESULTS (copy the raw results there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
cache=${BENCH_CACHE:-$HOME/.cache/schemagate-bench}
out=${BENCH_OUT:-$here/RESULTS.md}
install=1
quick=0
keep=0
twice=0
args=("$@")
while [[ $# -gt 0 ]]; do
	case $1 in
	--no-install) install=0 ;;
	--quick) quick=1 ;;
	--keep) keep=1 ;;
	--twice) twice=1 ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

if [[ $twice -eq 1 ]]; then
	once=()
	for a in "${args[@]}"; do [[ $a == --twice ]] || once+=("$a"); done
	runs=$(mktemp -d /tmp/schemagate-bench-twice.XXXXXX)
	say "--twice: run 1 of 2"
	BENCH_RESULTS=$runs/1 BENCH_OUT=$runs/RESULTS-1.md "$0" "${once[@]}"
	say "--twice: run 2 of 2"
	BENCH_RESULTS=$runs/2 BENCH_OUT=$runs/RESULTS-2.md "$0" --no-install "${once[@]}"
	{
		python3 "$here/bench.py" report "$runs/1"
		python3 "$here/bench.py" two-runs "$runs/1" "$runs/2"
		if [[ -f $here/before-after.md ]]; then printf '\n'; cat "$here/before-after.md"; fi
	} >"$runs/RESULTS.md"
	if [[ $quick -eq 1 ]]; then
		say "--quick: not overwriting $out ($runs/RESULTS.md)"
	else
		cp "$runs/RESULTS.md" "$out"
		say "wrote $out"
	fi
	python3 "$here/bench.py" two-runs "$runs/1" "$runs/2"
	exit 0
fi

# ---- runs per case (hyperfine --runs / --warmup) ---------------------------
if [[ $quick -eq 1 ]]; then
	FAST=10 SLOW=3 VSLOW=2 WARM=1 RSS_RUNS=3 WAKE_ROUNDS=1 ROUNDS=1
else
	FAST=20 SLOW=10 VSLOW=5 WARM=2 RSS_RUNS=7 WAKE_ROUNDS=3 ROUNDS=4
fi
REPLICAS=50 REPLICA_MIGRATIONS=20 WAITERS=20 INSERTS=20000

start_time=$(date +%s)
work=${BENCH_WORK:-$(mktemp -d /tmp/schemagate-bench.XXXXXX)}
mkdir -p "$work"
chmod 755 "$work" # the harness runs the servers as postgres/mysql
res=$work/results
mkdir -p "$res"
meta=$res/meta.txt
: >"$meta"
note() { printf '%s=%s\n' "$1" "$2" >>"$meta"; }

pg_started=0
my_started=0
cleanup() {
	local rc=$?
	set +e
	[[ $pg_started -eq 1 ]] && "$src/tests/harness/pg.sh" stop "$work/pg" >/dev/null 2>&1
	[[ $my_started -eq 1 ]] && "$src/tests/harness/mariadb.sh" stop "$work/mariadb" >/dev/null 2>&1
	if [[ $keep -eq 1 || $rc -ne 0 ]]; then
		say "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. install -------------------------------------------------------------
APT_PKGS=(hyperfine alembic python3-psycopg2 python3-pymysql python3-sqlalchemy time sqlite3
	postgresql-15 mariadb-server mariadb-client
	build-essential cmake pkg-config file libpq-dev postgresql-server-dev-15 libmariadb-dev
	libsqlite3-dev libuv1-dev libssl-dev zlib1g-dev)
if [[ $install -eq 1 ]]; then
	missing=()
	for p in "${APT_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	# npm often comes with a nodejs from elsewhere; Debian's npm only if none
	command -v npm >/dev/null || missing+=(npm)
	if [[ ${#missing[@]} -gt 0 ]]; then
		[[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root or install them"
		say "apt-get install ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			say "apt-get install failed; the cases needing a missing tool are reported as not run"
	fi
fi
dbmate=$cache/node_modules/@dbmate/linux-x64/bin/dbmate
if [[ ! -x $dbmate && $install -eq 1 ]] && command -v npm >/dev/null; then
	say "npm install dbmate into $cache"
	mkdir -p "$cache"
	npm install --silent --no-audit --no-fund --prefix "$cache" dbmate >/dev/null 2>&1 ||
		say "npm install dbmate failed"
fi
command -v hyperfine >/dev/null || die "hyperfine is required (apt-get install hyperfine)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required (apt-get install time)"
PG_BIN=${SG_PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH=$PG_BIN:$PATH

have_dbmate=0
[[ -x $dbmate ]] && have_dbmate=1 || note skip.dbmate "dbmate not installed (npm install dbmate failed)"
have_alembic=0
alembic=$(command -v alembic || true)
if [[ -n $alembic ]] && "$(head -1 "$alembic" | sed 's/^#! *//; s/ .*//')" -c 'import psycopg2' 2>/dev/null; then
	have_alembic=1
else
	note skip.alembic "Alembic or psycopg2 not installed"
fi

# Run "$@" only when the peer is there (a plain `[[ ]] && cmd` would trip set -e
# as the last command of a loop or function).
dbm() { [[ $have_dbmate -eq 1 ]] || return 0; "$@"; }
alb() { [[ $have_alembic -eq 1 ]] || return 0; "$@"; }
fls() { [[ $have_floor_static -eq 1 ]] || return 0; "$@"; }

# ---- 2. build ---------------------------------------------------------------
bindir=$work/bin
mkdir -p "$bindir"
# one pair of build directories per source tree: CMake refuses a build
# directory configured from another checkout
tree=$(printf '%s' "$src" | cksum | cut -d' ' -f1)
if [[ -n ${SG_BIN:-} ]]; then
	sg_dyn=$SG_BIN
else
	say "building schemagate (Release) in $cache/build-$tree"
	cmake -S "$src" -B "$cache/build-$tree" -DCMAKE_BUILD_TYPE=Release -DSG_TESTS=OFF >"$work/build.log" 2>&1 &&
		cmake --build "$cache/build-$tree" -j"$(nproc)" --target schemagate >>"$work/build.log" 2>&1 ||
		{ cat "$work/build.log" >&2; die "build failed"; }
	sg_dyn=$cache/build-$tree/schemagate
fi
if [[ -n ${SG_STATIC_BIN:-} ]]; then
	sg=$SG_STATIC_BIN
else
	say "building static schemagate (MinSizeRel) in $cache/build-static-$tree"
	if bash "$src/container/build-static.sh" --build "$cache/build-static-$tree" --max-size 999999999 \
		>"$work/build-static.log" 2>&1; then
		sg=$cache/build-static-$tree/schemagate
	else
		tail -5 "$work/build-static.log" >&2
		say "static build failed: the dynamic binary stands in for it"
		sg=$sg_dyn
		note static.failed 1
	fi
fi
say "building bench/floor.c"
cc -O2 -o "$bindir/floor-dyn" "$here/floor.c" $(pkg-config --cflags --libs libpq libcrypto)
pglib=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
[[ -f $pglib/libpgcommon.a ]] || pglib=/usr/lib/postgresql/15/lib
have_floor_static=0
# Same archives and the same GSSAPI/LDAP stubs as the static schemagate.
if cc -O2 -o "$bindir/floor" "$here/floor.c" -I"$(pg_config --includedir)" -static \
	"$(pg_config --libdir)/libpq.a" "$pglib/libpgcommon.a" "$pglib/libpgport.a" \
	"$src/src/static/gss_ldap_stubs.c" -lssl -lcrypto -lz -lpthread >"$work/floor-static.log" 2>&1; then
	have_floor_static=1
else
	note skip.floor "static libpq archives missing (postgresql-server-dev-15)"
fi

# ---- 3. machine and versions --------------------------------------------------
note date "$(date -u '+%Y-%m-%d %H:%M UTC')"
note cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
note nproc "$(nproc)"
note mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
note kernel "$(uname -sr)"
note os "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
note v.schemagate "$("$sg" --version 2>&1 | head -1) (git $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo ?))"
dbm note v.dbmate "$("$dbmate" --version 2>&1 | head -1)"
if [[ $have_alembic -eq 1 ]]; then
	note v.alembic "$(alembic --version 2>&1 | head -1)"
	note v.sqlalchemy "$("$(head -1 "$alembic" | sed 's/^#! *//; s/ .*//')" -c 'import sqlalchemy, psycopg2, sys; print("SQLAlchemy", sqlalchemy.__version__, "/ psycopg2", psycopg2.__version__.split()[0], "/ Python", sys.version.split()[0])')"
fi
note v.postgres "$("$PG_BIN/postgres" --version)"
note v.mariadb "$(/usr/sbin/mariadbd --version 2>/dev/null | sed 's/^.*Ver //' || echo '?')"
note v.sqlite "$(pkg-config --modversion sqlite3 2>/dev/null || echo '?')"
note v.hyperfine "$(hyperfine --version)"
note size.schemagate "$(stat -c %s "$sg")"
note size.schemagate-dyn "$(stat -c %s "$sg_dyn")"
dbm note size.dbmate "$(stat -c %s "$dbmate")"
[[ -f $out ]] || true

# ---- 4. servers and migrations ---------------------------------------------------
say "starting PostgreSQL"
pg_started=1
eval "$(SG_PG_MAX_CONNECTIONS=300 "$src/tests/harness/pg.sh" start "$work/pg")"
have_mariadb=0
say "starting MariaDB"
my_started=1
if myenv=$("$src/tests/harness/mariadb.sh" start "$work/mariadb"); then
	eval "$myenv"
	have_mariadb=1
else
	note skip.mariadb "MariaDB did not start"
fi

pg_base="postgresql://sg:sg-test-pw@127.0.0.1:$SG_TEST_PG_PORT"
pgurl() { echo "$pg_base/$1?sslmode=disable"; }
alurl() { echo "postgresql+psycopg2://sg:sg-test-pw@127.0.0.1:$SG_TEST_PG_PORT/$1?sslmode=disable"; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$(pgurl postgres)" "$@" >/dev/null; }
# A shell command: a fresh, empty database $1. The previous one is renamed
# out of the way, not dropped: on this host's unjournaled ext4, a drop
# right before the timed run left ~3,300 recently deleted inodes that
# every file the run creates must scan past (quadratic in the migrations,
# the same for every tool; see "Growth 1,000 / 100" in before-after.md).
# The renamed databases go with the bench's server at the end.
pg_fresh_cmd() {
	echo "if psql -X -q -tA '$(pgurl postgres)' -c \"SELECT 1 FROM pg_database WHERE datname = '$1'\" | grep -q 1; then" \
		"psql -X -q -v ON_ERROR_STOP=1 '$(pgurl postgres)' -c \"ALTER DATABASE $1 RENAME TO ${1}_gone_\$(date +%s%N)\" >/dev/null; fi;" \
		"psql -X -q -v ON_ERROR_STOP=1 '$(pgurl postgres)' -c 'CREATE DATABASE $1' >/dev/null"
}
pg_fresh() { sh -c "$(pg_fresh_cmd "$1")"; }
# The renamed databases, once their cases are done, dropped; then every
# dirty page on disk (sync), so their writeback does not land in the
# next cases' fsyncs (MariaDB's and SQLite's fresh applies wait on them).
pg_bury() {
	local db
	psql -X -q -tA "$(pgurl postgres)" -c "SELECT datname FROM pg_database WHERE datname LIKE '%\\_gone\\_%'" |
		while read -r db; do psql_admin -c "DROP DATABASE \"$db\" WITH (FORCE)"; done
	sync
}

if [[ $have_mariadb -eq 1 ]]; then
	my_port=${SG_TEST_MYSQL_URL##*:}
	my_port=${my_port%%/*}
	myurl() { echo "mysql://sg:sg-test-pw@127.0.0.1:$my_port/$1"; }
	my_fresh_cmd() {
		echo "mariadb --no-defaults -h 127.0.0.1 -P $my_port -u sg -psg-test-pw -e 'DROP DATABASE IF EXISTS $1; CREATE DATABASE $1'"
	}
fi

say "generating migrations"
gen=$work/gen
python3 "$here/bench.py" gen tables 100 "$gen/m100" --alembic "$gen/a100"
python3 "$here/bench.py" gen tables 1000 "$gen/m1000" --alembic "$gen/a1000"
# the same 100 again, for the SQLite floor: the sqlite3 client's script
python3 "$here/bench.py" gen tables 100 "$gen/m100-lite" --sqlite-floor "$gen/sqlite-floor.sql"
python3 "$here/bench.py" gen counter $REPLICA_MIGRATIONS "$gen/r" --alembic "$gen/ar"
python3 "$here/bench.py" gen wake 1 "$gen/w"
python3 "$here/bench.py" gen inserts $INSERTS "$gen/ins"

sgq=(-q)
# hyperfine wrapper: hf CASE TOOL RUNS WARMUP PREPARE COMMAND...
hf() {
	local case=$1 tool=$2 runs=$3 warm=$4 prep=$5
	shift 5
	local json=$res/${case}_$tool${ROUND:+.r$ROUND}.json
	local args=(-N --style none --runs "$runs" --warmup "$warm" --export-json "$json")
	if [[ -n $prep ]]; then
		printf '%s\n' "set -e" "$prep" >"$work/prep-${case}_$tool.sh"
		args+=(--prepare "sh $work/prep-${case}_$tool.sh")
	fi
	say "$case: $tool ($runs runs${ROUND:+, round $ROUND})"
	if ! hyperfine "${args[@]}" -n "$tool" -- "$(printf '%q ' "$@")" >"$work/hf-${case}_$tool.log" 2>&1; then
		rm -f "$json"
		note "skip.$case.$tool" "failed: $(grep -m1 -v '^ *$' "$work/hf-${case}_$tool.log" | cut -c1-150)"
		say "$case: $tool failed (see the table)"
	fi
}

# ---- 5. PostgreSQL no-op start -------------------------------------------------
say "PostgreSQL: preparing the no-op databases"
pg_fresh noop_sg
"$sg" --database-url "$(pgurl noop_sg)" --dir "$gen/m100" "${sgq[@]}" up
if [[ $have_dbmate -eq 1 ]]; then
	pg_fresh noop_dbmate
	"$dbmate" --url "$(pgurl noop_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate >/dev/null
fi
if [[ $have_alembic -eq 1 ]]; then
	pg_fresh noop_alembic
	alembic -c "$gen/a100/alembic.ini" -x url="$(alurl noop_alembic)" upgrade head >/dev/null 2>&1 ||
		{ have_alembic=0; note skip.alembic "alembic upgrade failed"; }
fi
# Fast cases run in interleaved rounds, so a burst of noise on this shared
# machine hits every tool alike instead of one tool's whole series.
pg_noop_round() {
	hf pg_noop schemagate $FAST $WARM "" "$sg" --database-url "$(pgurl noop_sg)" --dir "$gen/m100" -q up
	hf pg_noop schemagate-dyn $FAST $WARM "" "$sg_dyn" --database-url "$(pgurl noop_sg)" --dir "$gen/m100" -q up
	fls hf pg_noop floor $FAST $WARM "" "$bindir/floor" "$(pgurl noop_sg)"
	hf pg_noop floor-dyn $FAST $WARM "" "$bindir/floor-dyn" "$(pgurl noop_sg)"
	dbm hf pg_noop dbmate $FAST $WARM "" "$dbmate" --url "$(pgurl noop_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate
}
rounds() { # rounds CASE FUNCTION: run FUNCTION $ROUNDS times, merge the exports
	local case=$1 r
	for r in $(seq "$ROUNDS"); do ROUND=$r "$2"; done
	python3 "$here/bench.py" merge "$res" "$case"
}
rounds pg_noop pg_noop_round
# How the no-op start scales: the same with 1,000 migrations applied.
say "PostgreSQL: preparing the 1,000-migration no-op databases"
pg_fresh noop1000_sg
"$sg" --database-url "$(pgurl noop1000_sg)" --dir "$gen/m1000" -q up
if [[ $have_dbmate -eq 1 ]]; then
	pg_fresh noop1000_dbmate
	"$dbmate" --url "$(pgurl noop1000_dbmate)" --migrations-dir "$gen/m1000" --no-dump-schema migrate >/dev/null
fi
pg_noop1000_round() {
	hf pg_noop1000 schemagate $FAST $WARM "" "$sg" --database-url "$(pgurl noop1000_sg)" --dir "$gen/m1000" -q up
	hf pg_noop1000 schemagate-dyn $FAST $WARM "" "$sg_dyn" --database-url "$(pgurl noop1000_sg)" --dir "$gen/m1000" -q up
	# lint reads and checks the same directory for every engine, offline
	hf pg_noop1000 schemagate-lint $FAST $WARM "" "$sg" --dir "$gen/m1000" -q lint
	fls hf pg_noop1000 floor $FAST $WARM "" "$bindir/floor" "$(pgurl noop1000_sg)"
	hf pg_noop1000 floor-dyn $FAST $WARM "" "$bindir/floor-dyn" "$(pgurl noop1000_sg)"
	# what reading and hashing every file adds to the floor
	fls hf pg_noop1000 floor-read $FAST $WARM "" "$bindir/floor" --read "$gen/m1000" "$(pgurl noop1000_sg)"
	dbm hf pg_noop1000 dbmate $FAST $WARM "" "$dbmate" --url "$(pgurl noop1000_dbmate)" --migrations-dir "$gen/m1000" --no-dump-schema migrate
}
ROUNDS=$((ROUNDS > 1 ? 2 : 1)) rounds pg_noop1000 pg_noop1000_round
alb hf pg_noop alembic $SLOW 1 "" alembic -c "$gen/a100/alembic.ini" -x url="$(alurl noop_alembic)" upgrade head

# ---- 6. memory -------------------------------------------------------------------
say "peak RSS"
note rss.runs $RSS_RUNS
rss() { python3 "$here/bench.py" rss "$res/rss_$1.json" $RSS_RUNS -- "${@:2}" || note "skip.rss.$1" "failed"; }
rss schemagate "$sg" --database-url "$(pgurl noop_sg)" --dir "$gen/m100" -q up
rss schemagate-dyn "$sg_dyn" --database-url "$(pgurl noop_sg)" --dir "$gen/m100" -q up
fls rss floor "$bindir/floor" "$(pgurl noop_sg)"
rss floor-dyn "$bindir/floor-dyn" "$(pgurl noop_sg)"
dbm rss dbmate "$dbmate" --url "$(pgurl noop_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate
alb rss alembic alembic -c "$gen/a100/alembic.ini" -x url="$(alurl noop_alembic)" upgrade head

# ---- 7. PostgreSQL fresh apply ------------------------------------------------------
for n in 100 1000; do
	if [[ $n -eq 100 ]]; then runs=$SLOW; else runs=$VSLOW; fi
	hf pg_apply$n schemagate $runs 1 "$(pg_fresh_cmd apply_sg)" \
		"$sg" --database-url "$(pgurl apply_sg)" --dir "$gen/m$n" -q up
	fls hf pg_apply$n floor-apply $runs 1 "$(pg_fresh_cmd apply_floor)" \
		"$bindir/floor" --apply "$gen/m$n" "$(pgurl apply_floor)"
	dbm hf pg_apply$n dbmate $runs 1 "$(pg_fresh_cmd apply_dbmate)" \
		"$dbmate" --url "$(pgurl apply_dbmate)" --migrations-dir "$gen/m$n" --no-dump-schema migrate
	alb hf pg_apply$n alembic $VSLOW 1 "$(pg_fresh_cmd apply_alembic)" \
		alembic -c "$gen/a$n/alembic.ini" -x url="$(alurl apply_alembic)" upgrade head
done
pg_bury

# ---- 8. replicas at once ---------------------------------------------------------
note replicas.n $REPLICAS
note replicas.migrations $REPLICA_MIGRATIONS
counter_prep="$(pg_fresh_cmd replicas) && psql -X -q -v ON_ERROR_STOP=1 '$(pgurl replicas)' -c 'CREATE TABLE bench_counter (version int NOT NULL)' >/dev/null"
# The single-instance baseline for "last exit <= single apply + 0.5 s".
hf pg_apply_replicas schemagate $SLOW 1 "$counter_prep" \
	"$sg" --database-url "$(pgurl replicas)" --dir "$gen/r" -q up
count_sql="SELECT count(*), count(DISTINCT version) FROM bench_counter"
replicas() { # replicas TOOL COMMAND...
	local tool=$1
	shift
	say "replicas: $REPLICAS × $tool"
	sh -c "$counter_prep"
	python3 "$here/bench.py" replicas $REPLICAS "$res/replicas_$tool.json" "$work/logs/replicas-$tool" \
		--after "psql -X -A -t -q '$(pgurl replicas)' -c '$count_sql'" -- "$@"
}
# The floor of this case: 50 bare libpq connections + one query, at once.
replicas floor "$bindir/floor-dyn" "$(pgurl replicas)" "SELECT count(*) FROM bench_counter"
replicas schemagate "$sg" --database-url "$(pgurl replicas)" --dir "$gen/r" up
dbm replicas dbmate "$dbmate" --url "$(pgurl replicas)" --migrations-dir "$gen/r" --no-dump-schema migrate
alb replicas alembic alembic -c "$gen/ar/alembic.ini" -x url="$(alurl replicas)" upgrade head

# ---- 9. wake-up latency ------------------------------------------------------------
# The same harness on every engine: a winner holds the lock for ~2 s, the
# waiters start meanwhile; each waiter's exit - the winner's last statement.
note wake.waiters $WAITERS
wake() { # wake ENGINE URL PREPARE
	say "wake-up latency, $1: $WAKE_ROUNDS rounds × $WAITERS waiters"
	python3 "$here/bench.py" wake "$res/wake_$1.json" "$work/logs/wake-$1" --db "$2" \
		--rounds $WAKE_ROUNDS --waiters $WAITERS --prepare "$3" \
		-- "$sg" --database-url "$2" --dir "$gen/w" up ||
		note "skip.wake_$1" "the wake-up harness failed (run with --keep and see logs/wake-$1)"
}
wake postgres "$(pgurl wake)" "$(pg_fresh_cmd wake)"
if [[ $have_mariadb -eq 1 ]]; then
	wake mariadb "$(myurl wake)" "$(my_fresh_cmd wake)"
else
	note skip.wake_mariadb "MariaDB did not start"
fi
mkdir -p "$work/sqlite"
wake sqlite "sqlite:$work/sqlite/wake.db" "rm -f $work/sqlite/wake.db"

# ---- 10. MariaDB and SQLite ------------------------------------------------------------
pg_bury
if [[ $have_mariadb -eq 1 ]]; then
	say "MariaDB"
	for d in noop_sg noop_dbmate; do sh -c "$(my_fresh_cmd $d)"; done
	"$sg" --database-url "$(myurl noop_sg)" --dir "$gen/m100" -q up
	dbm "$dbmate" --url "$(myurl noop_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate >/dev/null
	my_noop_round() {
		hf mariadb_noop schemagate $FAST $WARM "" "$sg" --database-url "$(myurl noop_sg)" --dir "$gen/m100" -q up
		dbm hf mariadb_noop dbmate $FAST $WARM "" "$dbmate" --url "$(myurl noop_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate
	}
	rounds mariadb_noop my_noop_round
	hf mariadb_apply100 schemagate $VSLOW 1 "$(my_fresh_cmd apply_sg)" \
		"$sg" --database-url "$(myurl apply_sg)" --dir "$gen/m100" -q up
	dbm hf mariadb_apply100 dbmate $VSLOW 1 "$(my_fresh_cmd apply_dbmate)" \
		"$dbmate" --url "$(myurl apply_dbmate)" --migrations-dir "$gen/m100" --no-dump-schema migrate
fi

say "SQLite"
lite=$work/sqlite
mkdir -p "$lite"
"$sg" --database-url "sqlite:$lite/noop_sg.db" --dir "$gen/m100" -q up
dbm "$dbmate" --url "sqlite:$lite/noop_dbmate.db" --migrations-dir "$gen/m100" --no-dump-schema migrate >/dev/null
lite_noop_round() {
	hf sqlite_noop schemagate $FAST $WARM "" "$sg" --database-url "sqlite:$lite/noop_sg.db" --dir "$gen/m100" -q up
	dbm hf sqlite_noop dbmate $FAST $WARM "" "$dbmate" --url "sqlite:$lite/noop_dbmate.db" --migrations-dir "$gen/m100" --no-dump-schema migrate
}
rounds sqlite_noop lite_noop_round
hf sqlite_apply100 schemagate $SLOW 1 "rm -f $lite/apply_sg.db" \
	"$sg" --database-url "sqlite:$lite/apply_sg.db" --dir "$gen/m100" -q up
dbm hf sqlite_apply100 dbmate $SLOW 1 "rm -f $lite/apply_dbmate.db" \
	"$dbmate" --url "sqlite:$lite/apply_dbmate.db" --migrations-dir "$gen/m100" --no-dump-schema migrate
# the floor: the sqlite3 client, same file settings (neither changes the
# journal mode or synchronous), each migration + one history INSERT in
# its own BEGIN ... COMMIT
hf sqlite_apply100 sqlite3 $SLOW 1 "rm -f $lite/apply_floor.db" \
	sqlite3 "$lite/apply_floor.db" ".read $gen/sqlite-floor.sql"
note v.sqlite3 "$(sqlite3 --version | cut -d' ' -f1)"

# ---- 11. a data migration: single-row INSERTs ------------------------------------------
# One migration of $INSERTS INSERTs into a table created beforehand, fresh
# database each run, against each engine's own client applying the same
# statements in one transaction on one connection.
note inserts.n $INSERTS
pg_rows_prep="$(pg_fresh_cmd bulk_rows) && psql -X -q -v ON_ERROR_STOP=1 '$(pgurl bulk_rows)' -f '$gen/ins/table.sql'"
hf pg_inserts schemagate $VSLOW 1 "$pg_rows_prep" "$sg" --database-url "$(pgurl bulk_rows)" --dir "$gen/ins/migrations" -q up
note inserts.rows.postgres "$(psql -X -A -t -q "$(pgurl bulk_rows)" -c 'SELECT count(*) FROM bench_rows' 2>&1 | head -1)"
hf pg_inserts psql $VSLOW 1 "$pg_rows_prep" psql -X -q -1 -v ON_ERROR_STOP=1 -f "$gen/ins/inserts.sql" "$(pgurl bulk_rows)"
if [[ $have_mariadb -eq 1 ]]; then
	my_client=(mariadb --no-defaults -h 127.0.0.1 -P "$my_port" -u sg -psg-test-pw)
	my_rows_prep="$(my_fresh_cmd bulk_rows) && ${my_client[*]} bulk_rows -e 'source $gen/ins/table.sql'"
	hf mariadb_inserts schemagate $VSLOW 1 "$my_rows_prep" "$sg" --database-url "$(myurl bulk_rows)" --dir "$gen/ins/migrations" -q up
	note inserts.rows.mariadb "$("${my_client[@]}" -N -B bulk_rows -e 'SELECT count(*) FROM bench_rows' 2>&1 | head -1)"
	hf mariadb_inserts mariadb $VSLOW 1 "$my_rows_prep" "${my_client[@]}" bulk_rows -e "source $gen/ins/inserts.tx.sql"
fi

# ---- 12. report ------------------------------------------------------------------
note elapsed $(($(date +%s) - start_time))
python3 "$here/bench.py" report "$res" "$here/before-after.md" >"$work/RESULTS.md"
[[ -z ${BENCH_RESULTS:-} ]] || { mkdir -p "$BENCH_RESULTS" && cp -r "$res/." "$BENCH_RESULTS/"; }
if [[ $quick -eq 1 ]]; then
	say "--quick: not overwriting $out"
else
	cp "$work/RESULTS.md" "$out"
	say "wrote $out"
fi
cat "$work/RESULTS.md"
