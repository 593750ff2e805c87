#!/bin/sh
# pgbouncer.sh - a private PgBouncer in transaction mode in front of the
# private PostgreSQL of tests/harness/pg.sh.
#
#   eval "$(tests/harness/pgbouncer.sh start DIR)"   # prints export lines
#   tests/harness/pgbouncer.sh stop DIR
#
# Transaction pooling is what breaks session features (advisory locks,
# LISTEN, session settings): a client's consecutive transactions may run on
# different server connections. The tests use it to prove that
# --lock=table works through a pooler and --lock=auto refuses loudly.
#
# Every database name is forwarded to the server (a `*` wildcard entry), so
# a test creates its database on the server and connects through PgBouncer
# with the same name. Clients authenticate with scram-sha-256 as sg /
# sg-test-pw (the harness's PostgreSQL superuser); PgBouncer logs in to the
# server with the same credentials from its userlist.
# Only the export lines go to stdout; progress and errors go to stderr.
#
# Environment:
#   SG_TEST_PG_PORT          port of the PostgreSQL server (required; pg.sh
#                            start prints it)
#   SG_PGBOUNCER_PORT        port to listen on (default: a free one)
#   SG_PGBOUNCER_DB          database name for the printed URL (default postgres)
#   SG_PGBOUNCER_POOL_SIZE   default_pool_size (default 10)
#   SG_PGBOUNCER_ROUND_ROBIN 1: server_round_robin = 1 (FIFO: a client's
#                            next transaction goes to the server
#                            connection idle longest, not the one it just
#                            used) with min_pool_size = 2 (default 0:
#                            PgBouncer's LIFO)
set -eu

die() {
	echo "pgbouncer.sh: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: pgbouncer.sh start|stop DIR"
cmd=$1
dir=$2
bouncer=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)

free_port() {
	# Ask the kernel: bind port 0 and report what it chose.
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $(( ( $(od -An -N2 -tu2 /dev/urandom) % 20000 ) + 20000 ))
}

# PgBouncer refuses to run as root: use the postgres account then.
as_bouncer() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	[ -x "$bouncer" ] || die "pgbouncer not found (install the pgbouncer package)"
	[ -n "${SG_TEST_PG_PORT:-}" ] || die "SG_TEST_PG_PORT is not set (eval the output of pg.sh start first)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ! -e "$dir/pgbouncer.pid" ] || die "$dir/pgbouncer.pid exists: a pgbouncer may already run there (stop it first)"
	port=${SG_PGBOUNCER_PORT:-$(free_port)}
	db=${SG_PGBOUNCER_DB:-postgres}
	pool=${SG_PGBOUNCER_POOL_SIZE:-10}
	rr=${SG_PGBOUNCER_ROUND_ROBIN:-0}
	minpool=0
	[ "$rr" = 1 ] && minpool=2

	# The userlist holds the plain password: PgBouncer needs it to answer
	# the server's SCRAM challenge on the client's behalf.
	printf '"sg" "sg-test-pw"\n' >"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<-EOF
		[databases]
		* = host=127.0.0.1 port=$SG_TEST_PG_PORT

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $port
		unix_socket_dir =
		auth_type = scram-sha-256
		auth_file = $dir/userlist.txt
		pool_mode = transaction
		max_client_conn = 500
		default_pool_size = $pool
		min_pool_size = $minpool
		server_round_robin = $rr
		max_db_connections = 0
		server_login_retry = 1
		ignore_startup_parameters = extra_float_digits,options
		pidfile = $dir/pgbouncer.pid
		logfile = $dir/pgbouncer.log
		log_connections = 0
		log_disconnections = 0
		admin_users = sg
	EOF
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user"
		chown postgres "$dir" "$dir/userlist.txt" "$dir/pgbouncer.ini"
		runuser -u postgres -- test -x "$dir" || die "user postgres cannot enter $dir"
	fi
	chmod 600 "$dir/userlist.txt"

	echo "pgbouncer.sh: starting PgBouncer on 127.0.0.1:$port -> 127.0.0.1:$SG_TEST_PG_PORT (transaction pooling, pool $pool)" >&2
	as_bouncer "$bouncer" -d "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1 ||
		{ cat "$dir/start.log" "$dir/pgbouncer.log" >&2 2>/dev/null; die "pgbouncer did not start"; }

	# Ready when it accepts a login and forwards a query to the server.
	i=0
	psql=${SG_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/psql
	until PGPASSWORD=sg-test-pw "$psql" -X -q -t -c 'SELECT 1' \
		"host=127.0.0.1 port=$port user=sg dbname=postgres" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			tail -n 30 "$dir/pgbouncer.log" >&2 2>/dev/null || true
			die "pgbouncer did not answer on port $port"
		fi
		sleep 0.1
	done
	echo "$port" >"$dir/port"
	echo "pgbouncer.sh: ready ($dir/pgbouncer.log)" >&2
	echo "export SG_TEST_PGBOUNCER_URL=postgres://sg:sg-test-pw@127.0.0.1:$port/$db"
	echo "export SG_TEST_PGBOUNCER_PORT=$port"
}

stop() {
	[ -d "$dir" ] || die "$dir does not exist"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pgbouncer.pid" ]; then
		pid=$(cat "$dir/pgbouncer.pid")
		kill -INT "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$dir/pgbouncer.pid"
	fi
	echo "pgbouncer.sh: stopped" >&2
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: pgbouncer.sh start|stop DIR" ;;
esac
