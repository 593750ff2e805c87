#!/usr/bin/env bash
# build-static.sh - build the static schemagate binary and stage the root
# filesystem of the scratch image.
#
# This is the builder stage of container/Dockerfile, kept in a script so the
# test suite runs the very same recipe on a plain Debian machine
# (tests/delivery/static.sh) where no Docker engine is available.
#
#   build-static.sh [--install-deps] [--src DIR] [--build DIR] [--rootfs DIR]
#
#   --install-deps  apt-get install the build packages (the Dockerfile does;
#                   on a workstation install them yourself, see PACKAGES)
#   --deps-only     install the packages and stop (a cacheable Docker layer)
#   --src DIR       source tree (default: the directory above this script)
#   --build DIR     CMake build directory (default /tmp/build-static)
#   --rootfs DIR    also stage the image's root filesystem into DIR:
#                   /schemagate, /migrations, /etc/{passwd,group,nsswitch.conf},
#                   /etc/ssl/certs/ca-certificates.crt
#   --max-size N    fail when the stripped binary exceeds N bytes (8 MiB)
#
# Environment: SG_UID (65532), SG_GID (65532), JOBS (nproc).
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config file ca-certificates
	libpq-dev postgresql-server-dev-15   # libpq.a, libpgcommon.a, libpgport.a
	libmariadb-dev                       # libmariadb.a (MariaDB Connector/C)
	libsqlite3-dev libuv1-dev libssl-dev zlib1g-dev
)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=/tmp/build-static
rootfs=
install_deps=0
max_size=$((8 * 1024 * 1024))
uid=${SG_UID:-65532}
gid=${SG_GID:-65532}

die() { echo "build-static: $*" >&2; exit 1; }
say() { echo "build-static: $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--install-deps) install_deps=1 ;;
	--deps-only) install_deps=2 ;;
	--src) src=$(cd "$2" && pwd); shift ;;
	--build) build=$2; shift ;;
	--rootfs) rootfs=$2; shift ;;
	--max-size) max_size=$2; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) die "unknown argument: $1" ;;
	esac
	shift
done

if [[ $install_deps -ne 0 ]]; then
	say "installing ${PACKAGES[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
	[[ $install_deps -eq 1 ]] || exit 0
fi

# Fail early, naming the package, rather than deep inside the link.
missing=()
for pkg in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] || die "missing packages: ${missing[*]} (run with --install-deps, or apt-get install them)"

say "configuring $src -> $build"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DSG_STATIC=ON -DCMAKE_BUILD_TYPE=MinSizeRel >"$build/configure.log" 2>&1 ||
	{ cat "$build/configure.log" >&2; die "cmake configure failed"; }
# glibc warns that getaddrinfo/getpwuid in a static binary want the shared
# NSS modules; since glibc 2.34 "files" and "dns" are built into libc,
# which is all a scratch image needs, so those link warnings are filtered.
say "building"
set +o pipefail
cmake --build "$build" -j"${JOBS:-$(nproc)}" 2>&1 |
	{ grep -v -e 'in statically linked applications requires at runtime' -e ': in function `' >&2 || true; }
status=${PIPESTATUS[0]}
set -o pipefail
[[ $status -eq 0 ]] || die "build failed"
bin="$build/schemagate"
[[ -x "$bin" ]] || die "build produced no $bin"

kind=$(file -b "$bin")
size=$(stat -c %s "$bin")
say "$bin: $size bytes; $kind"
case $kind in
*"statically linked"*) ;;
*) die "$bin is not statically linked" ;;
esac
case $kind in
*", stripped"*) ;;
*) die "$bin is not stripped" ;;
esac
[[ $size -le $max_size ]] || die "$bin is $size bytes, over the $max_size byte budget"
"$bin" --version >/dev/null || die "$bin --version failed"

if [[ -n "$rootfs" ]]; then
	say "staging root filesystem in $rootfs"
	rm -rf "$rootfs"
	mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/migrations"
	install -m 0755 "$bin" "$rootfs/schemagate"
	if [[ -d "$src/migrations" ]]; then
		cp -R "$src/migrations/." "$rootfs/migrations/"
	fi
	chmod -R a+rX,go-w "$rootfs/migrations"
	install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:%s:%s:schemagate:/nonexistent:/sbin/nologin\n' \
		"$uid" "$gid" >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnonroot:x:%s:\n' "$gid" >"$rootfs/etc/group"
	# Without nsswitch.conf glibc asks DNS first and reads /etc/hosts only
	# when DNS is unreachable, so Kubernetes hostAliases would be ignored.
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
	chmod 0644 "$rootfs"/etc/passwd "$rootfs"/etc/group "$rootfs"/etc/nsswitch.conf
fi
echo "$bin"
