#!/bin/sh
# pg.sh - a private, throw-away PostgreSQL 15 server for the integration tests.
#
#   eval "$(tests/harness/pg.sh start DIR)"   # prints export lines
#   tests/harness/pg.sh stop DIR               # leaves DIR for the caller
#
# The server lives entirely in DIR (data directory, unix socket, log),
# listens on 127.0.0.1 only, and requires scram-sha-256 passwords over TCP.
# Roles: superuser 'sg' / 'sg-test-pw', and a plain role 'sg_app' /
# 'sg-app-pw' for tests that need one. Tests create their own databases.
# Only the export lines go to stdout; progress and errors go to stderr.
#
# Environment:
#   SG_PG_PORT             port to listen on (default: a free one)
#   SG_PG_MAX_CONNECTIONS  max_connections (default 300)
#   SG_PG_LISTEN           listen_addresses, loopback only (default 127.0.0.1;
#                          pg_ha.sh adds ::1 for the IPv6 URL tests)
#   SG_PG_BIN              server binaries (default /usr/lib/postgresql/15/bin)
set -eu

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: pg.sh start|stop DIR"
cmd=$1
dir=$2
bin=${SG_PG_BIN:-/usr/lib/postgresql/15/bin}
for tool in initdb pg_ctl pg_isready psql; do
	[ -x "$bin/$tool" ] || die "$bin/$tool not found (install postgresql-15)"
done

free_port() {
	# Ask the kernel: bind port 0 and report what it chose.
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $(( ( $(od -An -N2 -tu2 /dev/urandom) % 20000 ) + 20000 ))
}

# initdb and postgres refuse to run as root: use the postgres account then.
as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

show_log_and_die() {
	echo "---- $dir/server.log" >&2
	tail -n 50 "$dir/server.log" >&2 2>/dev/null || true
	die "$*"
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ! -e "$dir/data/postmaster.pid" ] || die "$dir/data/postmaster.pid exists: a server may already run there (stop it first)"
	port=${SG_PG_PORT:-$(free_port)}
	maxconn=${SG_PG_MAX_CONNECTIONS:-300}
	listen=${SG_PG_LISTEN:-127.0.0.1}
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user"
		chown postgres "$dir"
		# the postgres user must be able to reach DIR through its parents
		runuser -u postgres -- test -x "$dir" || die "user postgres cannot enter $dir"
	fi

	if [ ! -f "$dir/data/PG_VERSION" ]; then
		echo "pg.sh: initialising $dir/data" >&2
		printf '%s\n' 'sg-test-pw' >"$dir/pwfile"
		[ "$(id -u)" -ne 0 ] || chown postgres "$dir/pwfile"
		as_server "$bin/initdb" -D "$dir/data" -U sg --pwfile="$dir/pwfile" \
			--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
			--no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
		rm -f "$dir/pwfile"
	fi

	echo "pg.sh: starting PostgreSQL on 127.0.0.1:$port (max_connections $maxconn)" >&2
	# fsync off and no full-page writes: the tests need speed, not durability.
	as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -s -w -t 30 \
		-o "-c listen_addresses='$listen' -p $port -k $dir -c max_connections=$maxconn \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
-c shared_buffers=32MB -c max_locks_per_transaction=128 \
-c log_min_messages=warning -c lc_messages=C" start >/dev/null 2>&1 ||
		show_log_and_die "pg_ctl start failed"

	i=0
	until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres; do
		i=$((i + 1))
		[ $i -le 300 ] || show_log_and_die "server did not become ready"
		sleep 0.1
	done

	PGPASSWORD=sg-test-pw "$bin/psql" -X -q -v ON_ERROR_STOP=1 \
		"host=127.0.0.1 port=$port user=sg dbname=postgres" >/dev/null <<-'EOF' ||
		DO $$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sg_app') THEN
				CREATE ROLE sg_app LOGIN PASSWORD 'sg-app-pw';
			END IF;
		END $$;
	EOF
		show_log_and_die "could not create the test roles"
	echo "$port" >"$dir/port"
	echo "pg.sh: ready ($dir/server.log)" >&2
	echo "export SG_TEST_PG_URL=postgres://sg:sg-test-pw@127.0.0.1:$port/postgres"
	echo "export SG_TEST_PG_BIN=$bin"
	echo "export SG_TEST_PG_PORT=$port"
}

stop() {
	[ -d "$dir" ] || die "$dir does not exist"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_server "$bin/pg_ctl" -D "$dir/data" -s -m fast -w -t 10 stop >/dev/null 2>&1 ||
			as_server "$bin/pg_ctl" -D "$dir/data" -s -m immediate -w -t 10 stop >/dev/null 2>&1 ||
			die "could not stop the server in $dir"
	fi
	echo "pg.sh: stopped" >&2
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: pg.sh start|stop DIR" ;;
esac
