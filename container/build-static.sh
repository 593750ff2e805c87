#!/usr/bin/env bash
# build-static.sh - build the static schemagate binary and stage the root
# filesystem of the scratch image.
#
# This is the builder stage of container/Dockerfile, kept in a script so the
# test suite runs the very same recipe on a plain Debian machine
# (tests/delivery/static.sh, static_auth.sh).
#
#   build-static.sh [--arch amd64|arm64] [--install-deps] [--src DIR] [--build DIR] [--rootfs DIR]
#
#   --arch A          the target: amd64 (default) or arm64, built on either.
#                     A foreign target is cross-compiled with Debian's
#                     gcc-<triplet> against a sysroot of Debian's own
#                     packages for it (below)
#   --install-deps    apt-get install the build packages (the Dockerfile does;
#                     on a workstation install them yourself, see PACKAGES)
#   --deps-only       install the packages and stop (a cacheable Docker layer)
#   --connector-only  build MariaDB Connector/C (below) and stop (another layer)
#   --connector DIR   where that Connector/C is installed and kept between
#                     builds (default /var/cache/schemagate/mariadb-connector-c,
#                     with -ARCH appended for a foreign --arch)
#   --sysroot DIR     a foreign --arch's libraries, kept between builds
#                     (default /var/cache/schemagate/sysroot-ARCH)
#   --src DIR         source tree (default: the directory above this script)
#   --build DIR       CMake build directory (default /tmp/build-static, with
#                     -ARCH appended for a foreign --arch)
#   --rootfs DIR      also stage the image's root filesystem into DIR:
#                     /schemagate, an empty /migrations, /etc/{passwd,group,
#                     nsswitch.conf}, /etc/ssl/certs/ca-certificates.crt
#   --max-size N      fail when the stripped binary exceeds N bytes (10 MiB:
#                     the PostgreSQL parser lint links costs ~2 MB)
#
# MariaDB Connector/C: Debian's libmariadb.a has only the built-in
# mysql_native_password plugin and dlopen()s every other one, which a static
# binary cannot do. So this script builds Connector/C from Debian's own
# source package (the "mariadb" package carries it in libmariadb/, fetched
# with apt-get source from the machine's configured Debian mirror) with
# caching_sha2_password, sha256_password and client_ed25519 compiled in.
# The result is kept in --connector DIR and rebuilt only when the recipe
# below changes; delete the directory to pick up a newer Debian release.
#
# A foreign architecture: its libraries are Debian's own packages for it
# (LIBRARY_PACKAGES and what their .so links need, SYSROOT_RUNTIME),
# downloaded with apt-get from the machine's mirrors in a private apt state
# directory and unpacked with dpkg-deb into --sysroot DIR; the machine's
# dpkg keeps its architectures (libpq-dev and postgresql-server-dev-15 are
# not co-installable across architectures anyway). A CMake toolchain file
# there points both builds (Connector/C, schemagate) at it.
#
# Environment: SG_UID (65532), SG_GID (65532), JOBS (nproc).
set -euo pipefail

# The build tools, for the machine that builds.
PACKAGES=(
	build-essential cmake pkg-config file ca-certificates
	dpkg-dev                             # dpkg-source, for Connector/C's source package
)
# The libraries linked in, for the architecture built (installed on the
# machine for its own architecture, unpacked into the sysroot for another).
LIBRARY_PACKAGES=(
	libpq-dev postgresql-server-dev-15   # libpq.a, libpgcommon.a, libpgport.a; the parse tree nodes lint reads
	libsqlite3-dev libuv1-dev libssl-dev zlib1g-dev
	libpg-query-dev                      # libpg_query.a: lint's PostgreSQL parser
)
# A sysroot also needs the shared libraries the -dev packages' .so links
# point to (Connector/C links its shared library too, then we delete it).
SYSROOT_RUNTIME=(libpq5 libsqlite3-0 libuv1 libssl3 zlib1g)

# How Connector/C is configured. Plugins not listed STATIC stay out of the
# binary (dialog needs a terminal; mysql_clear_password sends the password
# in clear); src/static/no_dlopen.c makes a server's request for them fail
# with a clear error.
CONNECTOR_OPTIONS=(
	-DCMAKE_BUILD_TYPE=MinSizeRel
	"-DCMAKE_C_FLAGS=-ffunction-sections -fdata-sections"
	-DWITH_SSL=OPENSSL -DWITH_EXTERNAL_ZLIB=ON -DWITH_CURL=OFF -DWITH_UNIT_TESTS=OFF
	-DCLIENT_PLUGIN_CACHING_SHA2_PASSWORD=STATIC
	-DCLIENT_PLUGIN_SHA256_PASSWORD=STATIC
	-DCLIENT_PLUGIN_CLIENT_ED25519=STATIC
	-DCLIENT_PLUGIN_DIALOG=OFF
	-DCLIENT_PLUGIN_MYSQL_CLEAR_PASSWORD=OFF
)
CONNECTOR_PLUGINS=(caching_sha2_password sha256_password client_ed25519 mysql_native_password)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
arch=amd64
build=
rootfs=
install_deps=0
connector_only=0
connector=
sysroot=
max_size=$((10 * 1024 * 1024))
uid=${SG_UID:-65532}
gid=${SG_GID:-65532}

die() { echo "build-static: $*" >&2; exit 1; }
say() { echo "build-static: $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--install-deps) install_deps=1 ;;
	--deps-only) install_deps=2 ;;
	--connector-only) connector_only=1 ;;
	--arch) arch=$2; shift ;;
	--connector) connector=$2; shift ;;
	--sysroot) sysroot=$2; shift ;;
	--src) src=$(cd "$2" && pwd); shift ;;
	--build) build=$2; shift ;;
	--rootfs) rootfs=$2; shift ;;
	--max-size) max_size=$2; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1" ;;
	esac
	shift
done
jobs=${JOBS:-$(nproc)}

# ---- the target architecture: toolchain, library prefix, defaults
host_arch=$(dpkg --print-architecture)
case $arch in
amd64) triplet=x86_64-linux-gnu qemu=qemu-x86_64-static ;;
arm64) triplet=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
*) die "--arch $arch: amd64 or arm64" ;;
esac
suffix=
if [[ $arch == "$host_arch" ]]; then
	cross=0
	PACKAGES+=("${LIBRARY_PACKAGES[@]}")
else
	cross=1
	suffix=-$arch
	# libc6-dev-*-cross is only recommended by the compiler: --no-install-recommends drops it.
	PACKAGES+=("gcc-$triplet" "binutils-$triplet" "libc6-dev-$arch-cross" qemu-user-static)
	sysroot=${sysroot:-/var/cache/schemagate/sysroot-$arch}
fi
build=${build:-/tmp/build-static$suffix}
connector=${connector:-/var/cache/schemagate/mariadb-connector-c$suffix}
# The target's nm (the host's may not read its objects) and how to run its
# programs (directly, or under qemu-user when binfmt_misc does not know them).
nm="nm"
run_target=()
if [[ $cross -eq 1 ]]; then
	nm=$triplet-nm
	run_target=("$qemu")
fi

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

# write_source_entries DIR TYPE: TYPE (deb-src, or deb) entries for the
# machine's configured mirrors, in a private apt state directory DIR: the
# machine's own apt configuration is left alone.
write_source_entries() {
	local dir=$1 type=$2 f
	mkdir -p "$dir/parts" "$dir/lists/partial" "$dir/cache/archives/partial"
	: >"$dir/sources.list"
	: >"$dir/status"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] && sed -n "s/^[[:space:]]*deb[[:space:]]/$type /p" "$f" >>"$dir/sources.list"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		# Architectures: a third-party repository for one architecture only.
		[[ -f $f ]] && sed -e "s/^Types:.*/Types: $type/" -e '/^Architectures:/d' "$f" >"$dir/parts/${f##*/}"
	done
	return 0
}

# private_apt DIR [OPTION...]: apt options for the private state in DIR.
private_apt() {
	local dir=$1
	shift
	printf '%s\n' -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/parts" \
		-o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir/cache" \
		-o APT::Sandbox::User=root "$@"
}

# fetch_connector_source WORK: unpack Debian's "mariadb" source package into
# WORK/mariadb, newest version first (a mirror may index a version whose
# files it does not serve). Prints the version.
fetch_connector_source() {
	local work=$1 apt_dir=$1/apt version apt
	write_source_entries "$apt_dir" deb-src
	mapfile -t apt < <(private_apt "$apt_dir")
	# A third-party repository without sources may fail here; only Debian's matter.
	apt-get "${apt[@]}" update >"$work/apt-update.log" 2>&1 ||
		say "apt-get update reported errors (see $work/apt-update.log); trying what was fetched"
	local versions
	versions=$(apt-cache "${apt[@]}" showsrc mariadb 2>/dev/null | sed -n 's/^Version: //p' | sort -u -r -V)
	[[ -n $versions ]] || die "no source package 'mariadb' on the configured Debian mirrors (see $work/apt-update.log)"
	for version in $versions; do
		rm -rf "$work/dl" && mkdir -p "$work/dl"
		if (cd "$work/dl" && apt-get "${apt[@]}" -q source --download-only "mariadb=$version") >>"$work/apt-source.log" 2>&1; then
			dpkg-source -x "$work"/dl/mariadb_*.dsc "$work/mariadb" >>"$work/apt-source.log" 2>&1 ||
				die "dpkg-source -x mariadb $version failed (see $work/apt-source.log)"
			rm -rf "$work/dl"
			echo "$version"
			return 0
		fi
		say "mariadb $version: source not downloadable from the mirror, trying an older one"
	done
	die "could not download any version of the 'mariadb' source package (see $work/apt-source.log)"
}

# Unpack the target's LIBRARY_PACKAGES (and SYSROOT_RUNTIME) into $sysroot
# and write the CMake toolchain file there, unless it is current (the
# RECIPE file: the package list and the versions unpacked, written last).
ensure_sysroot() {
	local recipe work="$build/sysroot" apt deb
	recipe=$(printf '%s\n' "$arch" "${LIBRARY_PACKAGES[@]}" "${SYSROOT_RUNTIME[@]}")
	mkdir -p "$(dirname "$sysroot")"
	exec 8>"$sysroot.lock"
	flock 8
	if [[ -f "$sysroot/RECIPE" && "$(sed -n '/^--$/q;p' "$sysroot/RECIPE")" == "$recipe" ]]; then
		say "$arch sysroot: reusing $sysroot"
		exec 8>&-
		return 0
	fi
	say "$arch sysroot: unpacking Debian's ${LIBRARY_PACKAGES[*]} into $sysroot"
	rm -rf "$work" "$sysroot"
	mkdir -p "$work/debs" "$sysroot"
	write_source_entries "$work/apt" deb
	mapfile -t apt < <(private_apt "$work/apt" -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch")
	apt-get "${apt[@]}" update >"$work/apt-update.log" 2>&1 ||
		say "apt-get update reported errors (see $work/apt-update.log); trying what was fetched"
	(cd "$work/debs" && apt-get "${apt[@]}" -q download \
		"${LIBRARY_PACKAGES[@]/%/:$arch}" "${SYSROOT_RUNTIME[@]/%/:$arch}") >"$work/download.log" 2>&1 ||
		{ tail -n 20 "$work/download.log" >&2; die "apt-get download of the $arch packages failed"; }
	for deb in "$work"/debs/*.deb; do
		dpkg-deb -x "$deb" "$sysroot"
	done
	# Absolute .so links (libpq.so -> /usr/lib/...) would name the host's.
	find "$sysroot" -type l -lname '/*' | while read -r link; do
		ln -sfn "$sysroot$(readlink "$link")" "$link"
	done
	cat >"$sysroot/toolchain.cmake" <<TOOLCHAIN
# Written by container/build-static.sh: cross-compile for $arch against
# Debian's $arch packages unpacked here; the C library comes with the
# cross compiler (libc6-dev-$arch-cross).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${triplet%%-*})
set(CMAKE_C_COMPILER $triplet-gcc)
set(CMAKE_CXX_COMPILER $triplet-g++)
set(CMAKE_LIBRARY_ARCHITECTURE $triplet)
set(CMAKE_FIND_ROOT_PATH $sysroot /usr/$triplet)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_C_STANDARD_INCLUDE_DIRECTORIES $sysroot/usr/include/$triplet $sysroot/usr/include)
set(CMAKE_CROSSCOMPILING_EMULATOR $qemu;-L;/usr/$triplet)
set(ENV{PKG_CONFIG_LIBDIR} $sysroot/usr/lib/$triplet/pkgconfig:$sysroot/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} $sysroot)
set(ENV{PKG_CONFIG_PATH} "")
TOOLCHAIN
	{ echo "$recipe"; echo "--"; (cd "$work/debs" && ls); } >"$sysroot/RECIPE"
	rm -rf "$work"
	exec 8>&-
}

# Build Connector/C into $connector unless the recipe there is current.
# Holds a lock, so concurrent builds on one machine share one result.
ensure_connector() {
	local recipe version work="$build/connector"
	recipe=$(printf '%s\n' "${CONNECTOR_OPTIONS[@]}" "${toolchain[@]}")
	mkdir -p "$(dirname "$connector")"
	exec 9>"$connector.lock"
	flock 9
	if [[ -f "$connector/RECIPE" && "$(sed 1d "$connector/RECIPE")" == "$recipe" &&
		-f "$connector/lib/mariadb/libmariadbclient.a" ]]; then
		say "MariaDB Connector/C: reusing $connector ($(head -n1 "$connector/RECIPE"))"
		exec 9>&-
		return 0
	fi
	say "MariaDB Connector/C: building from Debian's source package into $connector"
	# RECIPE, written last, marks a complete install.
	rm -rf "$work" "$connector"
	mkdir -p "$work"
	version=$(fetch_connector_source "$work")
	say "MariaDB Connector/C: mariadb $version, libmariadb/ with ${CONNECTOR_PLUGINS[*]} built in"
	cmake -S "$work/mariadb/libmariadb" -B "$work/build" --no-warn-unused-cli "${CONNECTOR_OPTIONS[@]}" "${toolchain[@]}" \
		-DCMAKE_INSTALL_PREFIX="$connector" >"$work/configure.log" 2>&1 ||
		{ tail -n 30 "$work/configure.log" >&2; die "Connector/C: cmake configure failed"; }
	if ! grep -q "Static PLUGINS .*caching_sha2_password" "$work/configure.log" ||
		! grep -q "Static PLUGINS .*client_ed25519" "$work/configure.log"; then
		die "Connector/C: the plugins are not static (see $work/configure.log)"
	fi
	cmake --build "$work/build" -j"$jobs" >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "Connector/C: build failed"; }
	cmake --install "$work/build" --component Development >"$work/install.log" 2>&1 ||
		{ tail -n 30 "$work/install.log" >&2; die "Connector/C: install failed"; }
	# Only the archive: the linker must not pick a shared object.
	rm -f "$connector"/lib/mariadb/*.so*
	local plugin symbols
	symbols=$("$nm" "$connector/lib/mariadb/libmariadbclient.a" 2>/dev/null)
	for plugin in "${CONNECTOR_PLUGINS[@]}"; do
		grep -q " D ${plugin}_client_plugin$" <<<"$symbols" ||
			die "Connector/C: ${plugin}_client_plugin is not in libmariadbclient.a"
	done
	{ echo "mariadb $version"; echo "$recipe"; } >"$connector/RECIPE"
	rm -rf "$work"
	exec 9>&-
}

toolchain=()
if [[ $cross -eq 1 ]]; then
	ensure_sysroot
	toolchain=(-DCMAKE_TOOLCHAIN_FILE="$sysroot/toolchain.cmake")
fi
ensure_connector
[[ $connector_only -eq 0 ]] || exit 0

say "configuring $src -> $build"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DSG_STATIC=ON -DCMAKE_BUILD_TYPE=MinSizeRel "${toolchain[@]}" \
	-DSG_MARIADB_PREFIX="$connector" ${SG_GIT_REVISION:+-DSG_GIT_REVISION="$SG_GIT_REVISION"} \
	>"$build/configure.log" 2>&1 ||
	{ cat "$build/configure.log" >&2; die "cmake configure failed"; }
# glibc warns that getaddrinfo/getpwuid in a static binary want the shared
# NSS modules; since glibc 2.34 "files" and "dns" are built into libc,
# which is all a scratch image needs, so those link warnings are filtered.
# (dlopen's warning too: src/static/no_dlopen.c replaces it.)
say "building"
set +o pipefail
cmake --build "$build" -j"$jobs" 2>&1 |
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
case $arch:$kind in
amd64:*x86-64*|arm64:*"ARM aarch64"*) ;;
*) die "$bin is not an $arch binary" ;;
esac
case $kind in
*", stripped"*) ;;
*) die "$bin is not stripped" ;;
esac
[[ $size -le $max_size ]] || die "$bin is $size bytes, over the $max_size byte budget"
"${run_target[@]}" "$bin" --version >/dev/null || die "$bin --version failed"

if [[ -n "$rootfs" ]]; then
	say "staging root filesystem in $rootfs"
	rm -rf "$rootfs"
	mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/migrations"
	install -m 0755 "$bin" "$rootfs/schemagate"
	# /migrations stays empty: users COPY theirs in (a COPY adds to what
	# the base image has, so example files here would be applied too).
	chmod 0755 "$rootfs/migrations"
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
