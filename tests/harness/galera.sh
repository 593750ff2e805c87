#!/bin/sh
# galera.sh - a private three-node MariaDB Galera cluster on loopback, for
# the Galera tests (Debian's mariadb-server and galera-4).
#
#   eval "$(tests/harness/galera.sh start DIR)"   # prints export lines
#   tests/harness/galera.sh kill DIR N            # SIGKILL node N's mariadbd
#   tests/harness/galera.sh rejoin DIR N          # start node N again, wait until Synced
#   tests/harness/galera.sh stop DIR
#
# Node N lives in DIR/nodeN (data, socket, error log) with its own client,
# gcomm, IST and SST ports on 127.0.0.1. Each data directory is made with
# mariadb-install-db --wsrep-on=OFF; node 1 bootstraps the cluster
# (--wsrep-new-cluster) and creates the user 'sg' / 'sg-test-pw' with every
# privilege, which reaches the others with their state transfer (rsync);
# nodes 2 and 3 then join one after the other. Row-based binlog and
# innodb_autoinc_lock_mode=2, as Galera requires. As root the servers run
# as the mysql account, as tests/harness/mariadb.sh does.
# Only the export lines go to stdout; progress and errors go to stderr.
set -eu

die() {
	echo "galera.sh: $*" >&2
	exit 1
}

usage() {
	die "usage: galera.sh start|stop DIR, galera.sh kill|rejoin DIR N"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
PATH=$PATH:/usr/sbin:/usr/bin
provider=${SG_GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
for tool in mariadbd mariadb-install-db mariadb-admin mariadb wsrep_sst_rsync rsync; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (install mariadb-server, galera-4, rsync)"
done
[ -f "$provider" ] || die "$provider not found (install galera-4)"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_user() {
	if [ "$(id -u)" -ne 0 ]; then
		id -un
	elif id mysql >/dev/null 2>&1 && runuser -u mysql -- test -x "$dir" 2>/dev/null; then
		echo mysql
	else
		echo root
	fi
}

admin() {
	n=$1
	shift
	mariadb --no-defaults --protocol=socket -S "$dir/node$n/mysqld.sock" -u "$(id -un)" "$@"
}

wait_synced() {
	n=$1
	i=0
	until [ "$(admin "$n" -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; do
		i=$((i + 1))
		if [ $i -gt 1800 ] || ! kill -0 "$(cat "$dir/node$n/mysqld.launcher")" 2>/dev/null; then
			echo "---- $dir/node$n/error.log" >&2
			tail -n 60 "$dir/node$n/error.log" >&2 2>/dev/null || true
			die "node $n did not reach Synced"
		fi
		sleep 0.1
	done
}

start_node() {
	n=$1
	shift
	d=$dir/node$n
	echo "galera.sh: starting node $n on 127.0.0.1:$(cat "$d/port") (gcomm $(cat "$d/gcomm"))" >&2
	mariadbd --no-defaults --user="$user" --datadir="$d/data" \
		--socket="$d/mysqld.sock" --port="$(cat "$d/port")" --bind-address=127.0.0.1 \
		--pid-file="$d/mysqld.pid" --log-error="$d/error.log" --tmpdir="$d/tmp" \
		--max-connections=300 --skip-name-resolve \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=32M \
		--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 --performance-schema=OFF \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		--binlog-format=ROW --innodb-autoinc-lock-mode=2 --default-storage-engine=InnoDB \
		--wsrep-on=ON --wsrep-provider="$provider" --wsrep-cluster-name=sg_test \
		--wsrep-cluster-address="gcomm://$peers" --wsrep-node-name="node$n" \
		--wsrep-node-address="127.0.0.1:$(cat "$d/gcomm")" \
		--wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$(cat "$d/gcomm");ist.recv_addr=127.0.0.1:$(cat "$d/ist");gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S" \
		--wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$(cat "$d/sst")" \
		"$@" </dev/null >/dev/null 2>&1 &
	echo $! >"$d/mysqld.launcher"
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ! -e "$dir/node1/mysqld.pid" ] || die "$dir/node1/mysqld.pid exists: a cluster may already run there"
	user=$(server_user)
	peers=
	for n in 1 2 3; do
		d=$dir/node$n
		mkdir -p "$d/data" "$d/tmp"
		for what in port gcomm ist sst; do
			[ -f "$d/$what" ] || free_port >"$d/$what"
		done
		peers="$peers${peers:+,}127.0.0.1:$(cat "$d/gcomm")"
		[ "$user" = "$(id -un)" ] || chown -R "$user" "$d"
		if [ ! -d "$d/data/mysql" ]; then
			TMPDIR="$d/tmp" mariadb-install-db --no-defaults --wsrep-on=OFF --user="$user" \
				--datadir="$d/data" --skip-test-db --auth-root-authentication-method=socket \
				>"$d/install.log" 2>&1 || { cat "$d/install.log" >&2; die "mariadb-install-db failed"; }
		fi
	done
	[ "$user" = "$(id -un)" ] || chown -R "$user" "$dir"

	start_node 1 --wsrep-new-cluster
	wait_synced 1
	admin 1 <<-'EOF' || die "could not create the test user"
		CREATE USER IF NOT EXISTS 'sg'@'%' IDENTIFIED BY 'sg-test-pw';
		CREATE USER IF NOT EXISTS 'sg'@'localhost' IDENTIFIED BY 'sg-test-pw';
		GRANT ALL PRIVILEGES ON *.* TO 'sg'@'%' WITH GRANT OPTION;
		GRANT ALL PRIVILEGES ON *.* TO 'sg'@'localhost' WITH GRANT OPTION;
	EOF
	for n in 2 3; do
		start_node "$n"
		wait_synced "$n"
	done
	size=$(admin 1 -N -e "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)
	[ "$size" = 3 ] || die "the cluster has $size nodes, not 3"
	echo "galera.sh: cluster of 3 ready ($dir/node*/error.log)" >&2
	echo "export SG_TEST_GALERA_DIR=$dir"
	for n in 1 2 3; do
		echo "export SG_TEST_GALERA_URL$n=mysql://sg:sg-test-pw@127.0.0.1:$(cat "$dir/node$n/port")/"
	done
}

stop_node() {
	d=$dir/node$1
	pid=
	[ -f "$d/mysqld.pid" ] && pid=$(cat "$d/mysqld.pid")
	[ -n "$pid" ] || { [ -f "$d/mysqld.launcher" ] && pid=$(cat "$d/mysqld.launcher"); } || true
	[ ! -S "$d/mysqld.sock" ] || admin "$1" -e "SHUTDOWN" >/dev/null 2>&1 || true
	if [ -n "$pid" ]; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$d/mysqld.pid" "$d/mysqld.launcher" "$d/mysqld.sock"
}

case $cmd in
start) start ;;
stop)
	[ -d "$dir" ] || die "$dir does not exist"
	dir=$(cd "$dir" && pwd)
	for n in 3 2 1; do
		[ ! -d "$dir/node$n" ] || stop_node "$n"
	done
	echo "galera.sh: stopped" >&2
	;;
kill)
	[ $# -eq 3 ] || usage
	d=$dir/node$3
	pid=$(cat "$d/mysqld.pid" 2>/dev/null || cat "$d/mysqld.launcher")
	kill -9 "$pid"
	;;
rejoin)
	# a killed node comes back and catches up (IST or SST) before we return
	[ $# -eq 3 ] || usage
	dir=$(cd "$dir" && pwd)
	user=$(server_user)
	peers=
	for n in 1 2 3; do
		peers="$peers${peers:+,}127.0.0.1:$(cat "$dir/node$n/gcomm")"
	done
	stop_node "$3"
	start_node "$3"
	wait_synced "$3"
	;;
*) usage ;;
esac
