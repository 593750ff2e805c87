# shellcheck shell=bash
# lib.sh - shared helpers for the delivery tests (sourced, not run).
#
# Each test calls dlv_init NAME, which makes a work directory and arranges
# for every server it starts to be stopped on exit. Every check prints one
# "ok - ..." line; the first failure prints "FAIL - ..." and exits 1.
#
# Environment:
#   SCHEMAGATE_BIN       the schemagate binary to run (CTest passes the
#                        build's own); default: build one in /tmp/build-dlv-tests
#   SG_STATIC_BUILD_DIR  where static.sh builds the static binary
#   KEEP=1               keep the work directory
set -euo pipefail

DLV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DLV_HARNESS="$DLV_SRC/tests/harness"
DLV_PG_BIN=${SG_PG_BIN:-/usr/lib/postgresql/15/bin}
DLV_SERVERS=()
DLV_PIDS=()
DLV_CLEANUP=()
DLV_WORK=
# The image the container tests build, and its base (made locally).
DLV_IMAGE=localhost/schemagate:local
DLV_BASE_IMAGE=docker.io/library/debian:bookworm

say() { echo "$DLV_NAME: $*" >&2; }
ok() { echo "ok - $*"; }
fail() {
	echo "FAIL - $*"
	exit 1
}
# check DESCRIPTION COMMAND...: run COMMAND, print ok or fail.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

dlv_cleanup() {
	local rc=$? entry
	for entry in "${DLV_CLEANUP[@]}"; do
		eval "$entry" >/dev/null 2>&1 || true
	done
	for entry in "${DLV_PIDS[@]}"; do
		if kill "$entry" 2>/dev/null; then wait "$entry" 2>/dev/null || true; fi
	done
	for entry in "${DLV_SERVERS[@]}"; do
		"$DLV_HARNESS/${entry%%:*}" stop "${entry#*:}" >/dev/null 2>&1 || true
	done
	if [[ -n "$DLV_WORK" && -z "${KEEP:-}" ]]; then
		rm -rf "$DLV_WORK"
	elif [[ -n "$DLV_WORK" ]]; then
		say "kept $DLV_WORK"
	fi
	if [[ $rc -eq 0 ]]; then echo "PASS $DLV_NAME"; else echo "FAILED $DLV_NAME (exit $rc)"; fi
	exit $rc
}

dlv_init() {
	DLV_NAME=$1
	# The servers run as the postgres/mysql accounts: they must reach it.
	DLV_WORK=$(mktemp -d "/tmp/sg-delivery-$DLV_NAME.XXXXXX")
	chmod 0755 "$DLV_WORK"
	trap dlv_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# The schemagate binary under test (dynamic is fine except for static.sh).
dlv_binary() {
	if [[ -n "${SCHEMAGATE_BIN:-}" ]]; then
		[[ -x "$SCHEMAGATE_BIN" ]] || fail "SCHEMAGATE_BIN=$SCHEMAGATE_BIN is not executable"
		echo "$SCHEMAGATE_BIN"
		return
	fi
	local build=/tmp/build-dlv-tests
	say "SCHEMAGATE_BIN unset: building $build/schemagate"
	cmake -S "$DLV_SRC" -B "$build" -DSG_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$build" -j2 --target schemagate >/dev/null || fail "building schemagate"
	echo "$build/schemagate"
}

dlv_helm() {
	"$DLV_SRC/tests/delivery/install-helm.sh" 2>/dev/null || fail "installing helm (tests/delivery/install-helm.sh)"
}

# Start the private PostgreSQL; exports SG_TEST_PG_URL, SG_TEST_PG_PORT.
dlv_start_pg() {
	local out
	out=$("$DLV_HARNESS/pg.sh" start "$DLV_WORK/pg") || fail "starting PostgreSQL (tests/harness/pg.sh)"
	eval "$out"
	DLV_SERVERS+=("pg.sh:$DLV_WORK/pg")
}

# Start the private MariaDB; exports SG_TEST_MYSQL_URL, DLV_MYSQL_PORT.
dlv_start_mariadb() {
	local out
	out=$("$DLV_HARNESS/mariadb.sh" start "$DLV_WORK/mariadb") || fail "starting MariaDB (tests/harness/mariadb.sh)"
	eval "$out"
	DLV_SERVERS+=("mariadb.sh:$DLV_WORK/mariadb")
	DLV_MYSQL_PORT=$(cat "$DLV_WORK/mariadb/port")
}

# dlv_psql DB SQL: run SQL as the superuser, print unaligned tuples.
dlv_psql() {
	PGPASSWORD=sg-test-pw "$DLV_PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$SG_TEST_PG_PORT" -U sg -d "$1" -c "$2"
}

dlv_mysql() {
	mariadb --no-defaults -h 127.0.0.1 -P "$DLV_MYSQL_PORT" -u sg -psg-test-pw -N -B -e "$1"
}

# dlv_fixtures DIR N: migrations 1..N (pair layout, with down scripts) in
# SQL that PostgreSQL, MariaDB and SQLite all accept.
dlv_fixtures() {
	local dir=$1 n=$2 i
	mkdir -p "$dir"
	for ((i = 1; i <= n; i++)); do
		printf 'CREATE TABLE dlv_t%d (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL);\n' "$i" \
			>"$dir/$(printf %04d "$i")_table_$i.up.sql"
		printf 'DROP TABLE dlv_t%d;\n' "$i" >"$dir/$(printf %04d "$i")_table_$i.down.sql"
	done
	chmod -R a+rX "$dir"
}

# dlv_elapsed START: whole seconds since START (a $SECONDS value).
dlv_elapsed() { echo $((SECONDS - $1)); }

# ---- containers (podman) -------------------------------------------------

# dlv_podman: podman ready to build and run the image, as root. No registry
# is reachable here, so the debian:bookworm base image is made locally the
# first time and kept in podman's storage for later runs.
dlv_podman() {
	local tool
	[[ $(id -u) -eq 0 ]] || fail "the container tests need root (podman, debootstrap)"
	for tool in podman debootstrap; do
		command -v "$tool" >/dev/null || fail "$tool is missing (bash tests/deps.sh installs it)"
	done
	dlv_containers_conf
	dlv_base_image
}

# runc cannot raise RLIMIT_NOFILE to podman's default (1048576) inside this
# sandbox ("error setting rlimit type 7: operation not permitted"), so the
# containers keep podman's own limits.
dlv_containers_conf() {
	local conf=/etc/containers/containers.conf
	if [[ ! -e $conf ]]; then
		mkdir -p /etc/containers
		printf '%s\n' '# Written by schemagate tests/delivery/lib.sh: runc cannot set' \
			'# RLIMIT_NOFILE in this sandbox, so containers keep podman'"'"'s limits.' \
			'[containers]' 'default_ulimits = []' >"$conf"
		say "wrote $conf (default_ulimits = [])"
	elif ! grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=[[:space:]]*\[[[:space:]]*\]' "$conf"; then
		fail "$conf exists without 'default_ulimits = []' in its [containers] table (runc cannot set RLIMIT_NOFILE here)"
	fi
}

# The machine's Debian apt sources, deb822 stanzas signed by Debian's
# archive key (third-party repositories stay out of the image).
dlv_debian_sources() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" } /debian-archive-keyring/ && /Types:[^\n]*deb/' "$f"
	done
}

# The mirror of the "bookworm" suite, from the machine's apt sources.
dlv_debian_mirror() {
	local mirror
	mirror=$(dlv_debian_sources | awk 'BEGIN { RS = "" }
		/Suites:[^\n]*bookworm([ \t\n]|$)/ { if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {
			u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }')
	if [[ -z $mirror ]]; then
		mirror=$(sed -En 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
	fi
	[[ -n $mirror ]] || fail "no Debian bookworm mirror in /etc/apt/sources.list{,.d} for debootstrap"
	echo "$mirror"
}

# debian:bookworm as the official image has it (minbase, the Debian mirrors
# as apt sources, no package lists or caches), imported under the official
# name so "FROM debian:bookworm" finds it without a registry.
dlv_base_image() {
	if podman image exists "$DLV_BASE_IMAGE"; then
		say "base image $DLV_BASE_IMAGE: present"
		return 0
	fi
	local mirror root start=$SECONDS sources
	mirror=$(dlv_debian_mirror)
	root=$(mktemp -d /var/tmp/sg-debootstrap.XXXXXX)
	say "base image: debootstrap --variant=minbase bookworm from $mirror"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$DLV_WORK/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$DLV_WORK/debootstrap.log"; rm -rf "$root"; fail "debootstrap bookworm from $mirror"; }
	sources=$(dlv_debian_sources)
	if [[ -n $sources ]]; then
		printf '%s\n' "$sources" >"$root/etc/apt/sources.list.d/debian.sources"
		rm -f "$root/etc/apt/sources.list"
	fi
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
	tar -C "$root" -c . | podman import - "$DLV_BASE_IMAGE" >/dev/null ||
		{ rm -rf "$root"; fail "podman import of the debootstrap tree"; }
	rm -rf "$root"
	echo "timing: base image (debootstrap + import): $(dlv_elapsed "$start") s"
}

# dlv_image [PLATFORM TAG]: build container/Dockerfile exactly as the
# README tells a user to (podman's layer cache keeps the builder's packages
# and Connector/C), for PLATFORM (linux/arm64) as TAG, else for this
# machine as $DLV_IMAGE. The builder stage runs natively and cross-compiles;
# podman 4 does not set BUILDPLATFORM itself.
dlv_image() {
	local start=$SECONDS revision created platform=() tag=$DLV_IMAGE
	if [[ $# -eq 2 ]]; then
		platform=(--platform "$1" --build-arg BUILDPLATFORM="linux/$(dpkg --print-architecture)")
		tag=$2
	fi
	# The commit's identity and time, so rebuilding one commit is a full
	# cache hit (and leaves no new image behind).
	revision=$(git -C "$DLV_SRC" rev-parse HEAD 2>/dev/null || echo unknown)
	created=$(git -C "$DLV_SRC" log -1 --format=%cI 2>/dev/null || echo unknown)
	say "building $tag (podman build ${platform[*]} -f container/Dockerfile)"
	(cd "$DLV_SRC" && podman build --network host "${platform[@]}" -f container/Dockerfile -t "$tag" \
		--build-arg REVISION="$revision" --build-arg CREATED="$created" .) \
		>"$DLV_WORK/image-build.log" 2>&1 ||
		{ tail -n 40 "$DLV_WORK/image-build.log"; fail "podman build -f container/Dockerfile"; }
	echo "timing: image build: $(dlv_elapsed "$start") s"
}

# dlv_binfmt_arm64: make the kernel run aarch64 binaries through Debian's
# qemu-user-static: binfmt_misc mounted, the qemu-aarch64 handler
# registered from the package's binfmt.d entry (flags OCF: the interpreter
# is opened at registration, so it works inside a chroot or a container).
dlv_binfmt_arm64() {
	local conf=/usr/lib/binfmt.d/qemu-aarch64.conf dir=/proc/sys/fs/binfmt_misc
	[[ -f $conf ]] || fail "$conf is missing (apt-get install qemu-user-static)"
	if [[ ! -e $dir/register ]]; then
		mount -t binfmt_misc binfmt_misc "$dir" || fail "mount -t binfmt_misc binfmt_misc $dir"
	fi
	if [[ ! -e $dir/qemu-aarch64 ]]; then
		if command -v update-binfmts >/dev/null && [[ -e /usr/share/binfmts/qemu-aarch64 ]]; then
			update-binfmts --enable qemu-aarch64 || fail "update-binfmts --enable qemu-aarch64"
		else
			grep -v '^#' "$conf" >"$dir/register" || fail "registering $conf with binfmt_misc"
		fi
	fi
	grep -qx enabled "$dir/qemu-aarch64" || fail "the qemu-aarch64 binfmt_misc handler is not enabled"
	say "binfmt_misc: qemu-aarch64 $(grep -E '^(interpreter|flags)' "$dir/qemu-aarch64" | tr '\n' ' ')"
}

# dlv_http_ok URL SECONDS: URL answers 200 within SECONDS.
dlv_http_ok() {
	python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.5)
PY
}

# The version CMake gives the project (what --version prints).
dlv_version() {
	sed -nE 's/^project\(schemagate VERSION ([0-9.]+).*/\1/p' "$DLV_SRC/CMakeLists.txt"
}
