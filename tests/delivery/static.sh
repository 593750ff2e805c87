#!/usr/bin/env bash
# static.sh - the static binary and the scratch image's root filesystem.
#
# Builds with container/build-static.sh (the Dockerfile's builder recipe),
# then runs the binary with chroot in an otherwise empty root holding only
# /etc/hosts, which maps db.schemagate.test to 127.0.0.1: PostgreSQL is
# reached BY HOST NAME, then MariaDB, then SQLite. Finally the staged image
# root filesystem runs read-only as uid 65532, like the FROM scratch image
# with readOnlyRootFilesystem: true. Needs root (chroot, mount).
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init static

[[ $(id -u) -eq 0 ]] || fail "static.sh needs root for chroot and mount"
build=${SG_STATIC_BUILD_DIR:-/tmp/build-static}
rootfs="$DLV_WORK/rootfs"

"$DLV_SRC/container/build-static.sh" --build "$build" --rootfs "$rootfs" >/dev/null ||
	fail "container/build-static.sh"
bin="$build/schemagate"
size=$(stat -c %s "$bin")
kind=$(file -b "$bin")
echo "static binary: $bin"
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
echo "file: $kind"
check "file reports a statically linked executable" grep -q 'statically linked' <<<"$kind"
check "the binary is stripped" grep -q ', stripped' <<<"$kind"
check "size $size <= 10 MiB" test "$size" -le $((10 * 1024 * 1024))
check "ldd finds no shared libraries" bash -c "! ldd '$bin' 2>&1 | grep -q '=>'"

# ---- an empty root: /etc/hosts, the binary, the migrations
root="$DLV_WORK/root"
mkdir -p "$root/etc"
echo '127.0.0.1 db.schemagate.test' >"$root/etc/hosts"
cp "$bin" "$root/schemagate"
dlv_fixtures "$root/migrations" 3
echo "empty root: $(cd "$root" && find . -mindepth 1 -maxdepth 2 | sort | tr '\n' ' ')"

# in_root URL COMMAND...: schemagate in the empty root, with nothing from
# our environment but the URL.
in_root() {
	local url=$1
	shift
	env -i DATABASE_URL="$url" SCHEMAGATE_DIR=/migrations SCHEMAGATE_CONNECT_TIMEOUT=2s \
		/usr/sbin/chroot "$root" /schemagate "$@" 2>>"$DLV_WORK/root.log"
}

dlv_start_pg
dlv_psql postgres 'CREATE DATABASE dlv_static' >/dev/null
pg_url="postgres://sg:sg-test-pw@db.schemagate.test:$SG_TEST_PG_PORT/dlv_static"
check "PostgreSQL by host name: up exits 0" in_root "$pg_url" up
check "PostgreSQL: 3 migrations recorded" \
	test "$(dlv_psql dlv_static 'SELECT count(*) FROM schemagate_migrations')" = 3
check "PostgreSQL: table of migration 3 exists" \
	test "$(dlv_psql dlv_static "SELECT to_regclass('dlv_t3') IS NOT NULL")" = t
check "PostgreSQL by host name: verify exits 0" in_root "$pg_url" verify
rc=0
in_root "postgres://sg:sg-test-pw@nosuch.schemagate.test:$SG_TEST_PG_PORT/dlv_static" up || rc=$?
check "an unknown host name fails (exit $rc, timed out = 3)" test "$rc" -eq 3

dlv_start_mariadb
dlv_mysql 'CREATE DATABASE dlv_static'
check "MariaDB by host name: up exits 0" \
	in_root "mysql://sg:sg-test-pw@db.schemagate.test:$DLV_MYSQL_PORT/dlv_static" up
check "MariaDB: 3 migrations recorded" \
	test "$(dlv_mysql 'SELECT count(*) FROM dlv_static.schemagate_migrations')" = 3

check "SQLite: up exits 0" in_root "sqlite:///app.db" up
check "SQLite: 3 migrations recorded" \
	test "$(sqlite3 "$root/app.db" 'SELECT count(*) FROM schemagate_migrations')" = 3

# ---- the image: read-only root, uid 65532, image ENV
for f in schemagate etc/passwd etc/group etc/nsswitch.conf etc/ssl/certs/ca-certificates.crt; do
	check "image has /$f" test -s "$rootfs/$f"
done
check "image passwd has the non-root uid 65532" grep -q ':65532:65532:' "$rootfs/etc/passwd"
check "image CA bundle holds certificates" \
	test "$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt")" -gt 50
# The runtime injects /etc/hosts (kubelet, Docker). /migrations is empty
# in the image (users COPY theirs in); here the repository's example
# migrations are mounted there read-only, as "docker run -v" would.
echo '127.0.0.1 db.schemagate.test' >"$rootfs/etc/hosts"
check "image /migrations is an empty directory" test -z "$(ls -A "$rootfs/migrations")"
versions=$(find "$DLV_SRC/migrations" -name '*.sql' -printf '%f\n' | grep -oE '^[0-9]+' | sort -u | wc -l)
dlv_psql postgres 'CREATE DATABASE dlv_image' >/dev/null
ro="$DLV_WORK/ro"
mkdir -p "$ro"
# The Dockerfile's ENV, USER and ENTRYPOINT/CMD: /schemagate up.
rc=0
env -i DATABASE_URL="postgres://sg:sg-test-pw@db.schemagate.test:$SG_TEST_PG_PORT/dlv_image" \
	SCHEMAGATE_DIR=/migrations SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
	/usr/bin/unshare -m /bin/sh -c '
		mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" &&
		mount --bind "$3" "$2/migrations" && mount -o remount,bind,ro "$2/migrations" &&
		! touch "$2/probe" 2>/dev/null &&
		exec /usr/sbin/chroot --userspec=65532:65532 "$2" /schemagate up' \
	sh "$rootfs" "$ro" "$DLV_SRC/migrations" 2>>"$DLV_WORK/root.log" || rc=$?
check "image root, read-only, uid 65532: up exits 0 (exit $rc)" test "$rc" -eq 0
check "image run: the $versions example migrations recorded" \
	test "$(dlv_psql dlv_image 'SELECT count(*) FROM schemagate_migrations')" = "$versions"
check "image run: applied_by names the instance" \
	test -n "$(dlv_psql dlv_image 'SELECT applied_by FROM schemagate_migrations LIMIT 1')"
