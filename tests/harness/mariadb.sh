#!/bin/sh
# mariadb.sh - a private, throw-away MariaDB server for the integration tests.
#
#   eval "$(tests/harness/mariadb.sh start DIR)"   # prints export lines
#   tests/harness/mariadb.sh stop DIR
#
# The server lives entirely in DIR (data, socket, pid, error log), listens on
# 127.0.0.1 only, and has a user 'sg' with password 'sg-test-pw' and every
# privilege. Tests create their own databases. Only the export lines go to
# stdout; progress and errors go to stderr.
#
# Environment: SG_MARIADB_PORT (default: a free port),
# SG_MARIADB_MAX_CONNECTIONS (default 300).
set -eu

die() {
	echo "mariadb.sh: $*" >&2
	exit 1
}

usage() {
	die "usage: mariadb.sh start|stop DIR"
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

for tool in mariadbd mariadb-install-db mariadb-admin mariadb; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
		die "$tool not found (install mariadb-server 10.11)"
done
PATH=$PATH:/usr/sbin

free_port() {
	# Ask the kernel: bind port 0 and report what it chose.
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $(( ( $(od -An -N2 -tu2 /dev/urandom) % 20000 ) + 20000 ))
}

# mariadbd refuses to run as root unless told to; when we are root, run it
# as the unprivileged mysql account if that account exists and can reach
# DIR, else fall back to --user=root (a scratch server in a container).
server_user() {
	if [ "$(id -u)" -ne 0 ]; then
		id -un
	elif id mysql >/dev/null 2>&1 && runuser -u mysql -- test -x "$dir" 2>/dev/null; then
		echo mysql
	else
		echo root
	fi
}

client() {
	mariadb --no-defaults --protocol=socket -S "$dir/mysqld.sock" -u "$(id -un)" "$@"
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ! -e "$dir/mysqld.pid" ] || die "$dir/mysqld.pid exists: a server may already run there (stop it first)"
	port=${SG_MARIADB_PORT:-$(free_port)}
	maxconn=${SG_MARIADB_MAX_CONNECTIONS:-300}
	user=$(server_user)
	mkdir -p "$dir/data" "$dir/tmp"
	[ "$user" = "$(id -un)" ] || chown -R "$user" "$dir"

	if [ ! -d "$dir/data/mysql" ]; then
		echo "mariadb.sh: initialising $dir/data" >&2
		# the bootstrap server writes temporary files: keep them in our
		# own tmp, not in a caller's TMPDIR the server user cannot write
		TMPDIR="$dir/tmp" mariadb-install-db --no-defaults --user="$user" --datadir="$dir/data" \
			--skip-test-db --auth-root-authentication-method=socket \
			>"$dir/install.log" 2>&1 ||
			{ cat "$dir/install.log" >&2; die "mariadb-install-db failed"; }
	fi

	echo "mariadb.sh: starting mariadbd on 127.0.0.1:$port" >&2
	# Small InnoDB settings: the tests need speed, not durability.
	mariadbd --no-defaults --user="$user" --datadir="$dir/data" \
		--socket="$dir/mysqld.sock" --port="$port" --bind-address=127.0.0.1 \
		--pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --tmpdir="$dir/tmp" \
		--max-connections="$maxconn" --skip-name-resolve \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=32M \
		--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
		--sync-binlog=0 --skip-log-bin --performance-schema=OFF \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		</dev/null >/dev/null 2>&1 &
	echo $! >"$dir/mysqld.launcher"

	i=0
	until mariadb-admin --no-defaults --protocol=socket -S "$dir/mysqld.sock" \
		-u "$(id -un)" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$(cat "$dir/mysqld.launcher")" 2>/dev/null; then
			echo "---- $dir/error.log" >&2
			cat "$dir/error.log" >&2 2>/dev/null || true
			rm -f "$dir/mysqld.launcher"
			die "mariadbd did not answer (see the error log above)"
		fi
		sleep 0.1
	done

	client <<-'EOF' || die "could not create the test user"
		CREATE USER IF NOT EXISTS 'sg'@'%' IDENTIFIED BY 'sg-test-pw';
		CREATE USER IF NOT EXISTS 'sg'@'localhost' IDENTIFIED BY 'sg-test-pw';
		GRANT ALL PRIVILEGES ON *.* TO 'sg'@'%' WITH GRANT OPTION;
		GRANT ALL PRIVILEGES ON *.* TO 'sg'@'localhost' WITH GRANT OPTION;
		FLUSH PRIVILEGES;
	EOF
	echo "$port" >"$dir/port"
	echo "mariadb.sh: ready ($dir/error.log)" >&2
	echo "export SG_TEST_MYSQL_URL=mysql://sg:sg-test-pw@127.0.0.1:$port/"
	echo "export SG_TEST_MYSQL_SOCKET=$dir/mysqld.sock"
}

stop() {
	[ -d "$dir" ] || die "$dir does not exist"
	dir=$(cd "$dir" && pwd)
	pid=
	[ -f "$dir/mysqld.pid" ] && pid=$(cat "$dir/mysqld.pid")
	[ -n "$pid" ] || { [ -f "$dir/mysqld.launcher" ] && pid=$(cat "$dir/mysqld.launcher"); } || true
	if [ -S "$dir/mysqld.sock" ]; then
		mariadb-admin --no-defaults --protocol=socket -S "$dir/mysqld.sock" \
			-u "$(id -un)" shutdown >/dev/null 2>&1 || true
	fi
	if [ -n "$pid" ]; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "mariadb.sh: mariadbd $pid ignored shutdown; killing it" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$dir/mysqld.pid" "$dir/mysqld.launcher" "$dir/mysqld.sock"
	echo "mariadb.sh: stopped" >&2
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
