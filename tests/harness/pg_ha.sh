#!/bin/sh
# pg_ha.sh - a private PostgreSQL 15 primary and a hot standby streaming
# from it, on loopback, for the tests of failover and standbys.
#
#   eval "$(tests/harness/pg_ha.sh start DIR)"  # prints export lines
#   tests/harness/pg_ha.sh promote DIR          # the standby becomes a primary
#   tests/harness/pg_ha.sh kill-primary DIR     # pg_ctl stop -m immediate
#   tests/harness/pg_ha.sh reset DIR            # a fresh pair on the same ports
#   tests/harness/pg_ha.sh stop DIR
#
# The primary is tests/harness/pg.sh's server in DIR/primary (same roles,
# same settings); the standby is made from it with pg_basebackup -R
# -X stream (so primary_conninfo and standby.signal are written for us)
# into DIR/standby and started by pg.sh on a port of its own. promote and
# kill-primary leave DIR/diverged behind: the next reset starts over from
# initdb (the old primary cannot follow the new one without pg_rewind).
# Only the export lines go to stdout.
set -eu

die() {
	echo "pg_ha.sh: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: pg_ha.sh start|stop|promote|kill-primary|reset DIR"
cmd=$1
dir=$2
here=$(cd "$(dirname "$0")" && pwd)
bin=${SG_PG_BIN:-/usr/lib/postgresql/15/bin}

as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" -ne 0 ] || chown postgres "$dir"
	# the ports of an earlier start (reset keeps them: URLs stay valid)
	pport=$(cat "$dir/primary.port" 2>/dev/null || true)
	sport=$(cat "$dir/standby.port" 2>/dev/null || true)
	# ::1 too where the machine has it (the [::1]:port URL tests)
	listen=127.0.0.1
	! grep -q '^00000000000000000000000000000001' /proc/net/if_inet6 2>/dev/null || listen=127.0.0.1,::1
	SG_PG_LISTEN=$listen SG_PG_PORT=$pport bash "$here/pg.sh" start "$dir/primary" >/dev/null
	pport=$(cat "$dir/primary/port")
	echo "$pport" >"$dir/primary.port"

	if [ ! -f "$dir/standby/data/PG_VERSION" ]; then
		mkdir -p "$dir/standby"
		[ "$(id -u)" -ne 0 ] || chown postgres "$dir/standby"
		echo "pg_ha.sh: pg_basebackup from 127.0.0.1:$pport into $dir/standby/data" >&2
		as_server env PGPASSWORD=sg-test-pw "$bin/pg_basebackup" -h 127.0.0.1 -p "$pport" -U sg \
			-D "$dir/standby/data" -R -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1 ||
			{ cat "$dir/basebackup.log" >&2; die "pg_basebackup failed"; }
	fi
	SG_PG_LISTEN=$listen SG_PG_PORT=$sport bash "$here/pg.sh" start "$dir/standby" >/dev/null
	sport=$(cat "$dir/standby/port")
	echo "$sport" >"$dir/standby.port"
	# the standby is streaming: a row written on the primary shows there
	i=0
	until [ "$(PGPASSWORD=sg-test-pw "$bin/psql" -X -At \
		"host=127.0.0.1 port=$sport user=sg dbname=postgres" \
		-c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null)" = 1 ]; do
		i=$((i + 1))
		[ $i -le 300 ] || die "the standby on port $sport is not streaming (see $dir/standby/server.log)"
		sleep 0.1
	done
	echo "pg_ha.sh: primary 127.0.0.1:$pport, standby 127.0.0.1:$sport streaming" >&2
	echo "export SG_TEST_PG_HA_DIR=$dir"
	echo "export SG_TEST_PG_HA_PRIMARY_PORT=$pport"
	echo "export SG_TEST_PG_HA_STANDBY_PORT=$sport"
	[ "$listen" = 127.0.0.1 ] || echo "export SG_TEST_PG_HA_IPV6=1"
}

stop() {
	[ -d "$dir" ] || die "$dir does not exist"
	dir=$(cd "$dir" && pwd)
	for node in standby primary; do
		[ ! -d "$dir/$node" ] || bash "$here/pg.sh" stop "$dir/$node" 2>/dev/null || true
	done
	echo "pg_ha.sh: stopped" >&2
}

case $cmd in
start) start ;;
stop) stop ;;
promote)
	touch "$dir/diverged"
	as_server "$bin/pg_ctl" -D "$dir/standby/data" -s -w -t 60 promote >/dev/null ||
		die "pg_ctl promote failed"
	;;
kill-primary)
	touch "$dir/diverged"
	as_server "$bin/pg_ctl" -D "$dir/primary/data" -s -m immediate -w -t 30 stop >/dev/null ||
		die "could not stop the primary"
	;;
reset)
	stop
	dir=$(cd "$dir" && pwd)
	rm -rf "$dir/primary" "$dir/standby" "$dir/diverged"
	start >/dev/null
	;;
*) die "usage: pg_ha.sh start|stop|promote|kill-primary|reset DIR" ;;
esac
