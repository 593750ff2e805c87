#!/usr/bin/env bash
# arm64.sh - the linux/arm64 static binary and image, built on this amd64
# machine and run for real under emulation (qemu-user-static, registered
# with binfmt_misc).
#
#   1. podman builds container/Dockerfile for linux/amd64 and linux/arm64
#      (the builder runs container/build-static.sh --arch arm64 on amd64)
#      and joins them in one manifest list (podman manifest), pushed to an
#      OCI layout directory as it would be to a registry; each image has
#      its architecture and the OCI labels;
#   2. the arm64 binary, taken from that image (one cross build serves
#      both parts), is an aarch64, static, stripped ELF within 10 MiB; it
#      runs in a root holding the image's files plus /etc/hosts (chroot)
#      against PostgreSQL (by host name), MariaDB (a user IDENTIFIED VIA
#      ed25519 too) and SQLite: up, verify, serve (/readyz, then SIGTERM),
#      and a herd of 5 "up" at once on a fresh database (all 5 exit 0,
#      each migration applied once, by one instance);
#   3. the arm64 image runs the same scenarios, hardened (read-only, no
#      capabilities, uid 65532).
# Needs root (chroot, podman, binfmt_misc).
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init arm64

[[ $(id -u) -eq 0 ]] || fail "arm64.sh needs root (chroot, podman, binfmt_misc)"
dlv_binfmt_arm64

# ---- the images: both architectures, one manifest list
dlv_podman
dlv_image
start=$SECONDS
arm_image=$DLV_IMAGE-arm64
dlv_image linux/arm64 "$arm_image"
echo "timing: arm64 image build: $(dlv_elapsed "$start") s"
revision=$(git -C "$DLV_SRC" rev-parse HEAD 2>/dev/null || echo unknown)
for pair in "amd64 $DLV_IMAGE" "arm64 $arm_image"; do
	read -r arch image <<<"$pair"
	check "$image is a linux/$arch image" \
		test "$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$image")" = "linux/$arch"
	check "$image carries the OCI labels (title, version, revision $revision, source)" bash -c '
		labels=$(podman image inspect --format "{{json .Labels}}" "$1")
		python3 -c "
import json, sys
l = json.loads(sys.argv[1])
p = \"org.opencontainers.image.\"
sys.exit(0 if l.get(p + \"title\") == \"schemagate\" and l.get(p + \"revision\") == sys.argv[2]
         and l.get(p + \"version\") and l.get(p + \"source\") else 1)" "$labels" "$2"' _ "$image" "$revision"
done
list=localhost/schemagate-multiarch:test-$$
DLV_CLEANUP+=("podman manifest rm $list")
podman manifest create "$list" >/dev/null
check "podman manifest add the amd64 image" bash -c 'podman manifest add "$1" "containers-storage:$2" >/dev/null' _ "$list" "$DLV_IMAGE"
check "podman manifest add the arm64 image" bash -c 'podman manifest add "$1" "containers-storage:$2" >/dev/null' _ "$list" "$arm_image"
check "the manifest list holds linux/amd64 and linux/arm64" bash -c '
	podman manifest inspect "$1" | python3 -c "
import json, sys
m = json.load(sys.stdin)
p = sorted(x[\"platform\"][\"os\"] + \"/\" + x[\"platform\"][\"architecture\"] for x in m[\"manifests\"])
print(p)
sys.exit(0 if p == [\"linux/amd64\", \"linux/arm64\"] else 1)"' _ "$list"
# As "podman manifest push --all LIST docker://REGISTRY/..." would, into an
# OCI layout directory (no registry is reachable here).
layout="$DLV_WORK/oci-layout"
check "podman manifest push --all to an OCI layout" \
	bash -c 'podman manifest push --all "$1" "oci:$2" >"$3" 2>&1' _ "$list" "$layout" "$DLV_WORK/push.log"
check "the pushed index names both platforms" python3 -c '
import json, os, sys
d = sys.argv[1]
def blob(digest):
    return json.load(open(os.path.join(d, "blobs", *digest.split(":"))))
index = json.load(open(os.path.join(d, "index.json")))
lists = [m for m in index["manifests"] if m["mediaType"].endswith(("manifest.list.v2+json", "image.index.v1+json"))]
plats = sorted(m["platform"]["architecture"] for l in lists for m in blob(l["digest"])["manifests"])
print(plats)
sys.exit(0 if plats == ["amd64", "arm64"] else 1)' "$layout"


# ---- the arm64 binary, from the image
rootfs="$DLV_WORK/rootfs"
mnt=$(podman image mount "$arm_image") || fail "podman image mount $arm_image"
mkdir -p "$rootfs"
cp -a "$mnt/." "$rootfs/" || fail "copying the arm64 image's files"
podman image unmount "$arm_image" >/dev/null
bin="$rootfs/schemagate"
size=$(stat -c %s "$bin")
kind=$(file -b "$bin")
echo "arm64 binary: $size bytes; $kind"
check "file reports an ARM aarch64 executable" grep -q 'ARM aarch64' <<<"$kind"
check "statically linked and stripped" bash -c 'grep -q "statically linked" <<<"$1" && grep -q ", stripped" <<<"$1"' _ "$kind"
check "size $size <= 10 MiB" test "$size" -le $((10 * 1024 * 1024))

dlv_start_pg
dlv_start_mariadb
pg_url() { echo "postgres://sg:sg-test-pw@$1:$SG_TEST_PG_PORT/$2"; }
my_url() { echo "mysql://sg:sg-test-pw@$1:$DLV_MYSQL_PORT/$2"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- the binary, in a root of the image's files (chroot)
# plus the runtime's /etc/hosts and the migrations
root=$rootfs
mkdir -p "$root/data"
echo '127.0.0.1 db.schemagate.test' >"$root/etc/hosts"
dlv_fixtures "$root/migrations" 3
# sg_binary [-d] URL COMMAND...: the arm64 binary in the empty root; -d
# runs it in the background for sg_binary_stop.
serve_pid=
sg_binary() {
	if [[ $1 == -d ]]; then
		shift
		run_root "$@" &
		serve_pid=$!
		return 0
	fi
	(run_root "$@")
}
# Replaces the (sub)shell, so a background run's pid is schemagate's.
run_root() {
	local url=$1
	shift
	exec env -i DATABASE_URL="$url" SCHEMAGATE_DIR=/migrations SCHEMAGATE_CONNECT_TIMEOUT=20s \
		SCHEMAGATE_LOCK_TIMEOUT=2m SCHEMAGATE_LISTEN="127.0.0.1:$port" \
		/usr/sbin/chroot "$root" /schemagate "$@" 2>>"$DLV_WORK/binary.log"
}
sg_binary_stop() {
	kill -TERM "$serve_pid"
	wait "$serve_pid"
}
port=0
check "the binary runs under emulation: version names its libraries" \
	bash -c '/usr/sbin/chroot "$1" /schemagate version | grep -q "^libpq: "' _ "$root"

# scenarios RUN HOST SQLITE_DIR: up, verify, serve's /readyz, a herd of 5,
# on each engine, through RUN URL COMMAND... (the binary or the image).
scenarios() {
	local run=$1 host=$2 sqlite=$3 engine url herd_url db="dlv_${1#sg_}" i pids rc
	for engine in postgres mariadb sqlite; do
		case $engine in
		postgres)
			dlv_psql postgres "CREATE DATABASE $db" >/dev/null
			dlv_psql postgres "CREATE DATABASE ${db}_herd" >/dev/null
			url=$(pg_url "$host" "$db") herd_url=$(pg_url "$host" "${db}_herd")
			count() { dlv_psql "$1" "SELECT count(*), count(DISTINCT applied_by) FROM schemagate_migrations" | tr '|' ' '; } ;;
		mariadb)
			dlv_mysql "CREATE DATABASE $db; CREATE DATABASE ${db}_herd"
			url=$(my_url "$host" "$db") herd_url=$(my_url "$host" "${db}_herd")
			count() { dlv_mysql "SELECT count(*), count(DISTINCT applied_by) FROM $1.schemagate_migrations" | tr '\t' ' '; } ;;
		sqlite)
			url=sqlite:///data/$db.db herd_url=sqlite:///data/${db}_herd.db
			count() { sqlite3 "$sqlite/${1}.db" "SELECT count(*) || ' ' || count(DISTINCT applied_by) FROM schemagate_migrations"; } ;;
		esac
		check "$run $engine: up exits 0" "$run" "$url" up
		check "$run $engine: 3 migrations recorded" test "$(count "$db")" = "3 1"
		check "$run $engine: verify exits 0" "$run" "$url" verify
		port=$(free_port)
		"$run" -d "$url" serve
		check "$run $engine: serve answers /readyz 200" dlv_http_ok "http://127.0.0.1:$port/readyz" 90
		check "$run $engine: serve exits 0 on SIGTERM" "${run}_stop"
		pids=()
		for i in 1 2 3 4 5; do
			"$run" "$herd_url" up &
			pids+=($!)
		done
		rc=0
		for i in "${pids[@]}"; do wait "$i" || rc=$?; done
		check "$run $engine: a herd of 5 up at once all exit 0" test "$rc" -eq 0
		check "$run $engine: the herd applied each migration once, all by one instance" \
			test "$(count "${db}_herd")" = "3 1"
	done
}

# client_ed25519 is compiled in, as in the amd64 build (build-static.sh
# checks the archive; this runs it).
dlv_mysql "INSTALL SONAME 'auth_ed25519'"
dlv_mysql "CREATE DATABASE dlv_arm_ed; CREATE USER ed_arm@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-arm-pw');
	GRANT ALL ON dlv_arm_ed.* TO ed_arm@'%'"
check "MariaDB as a user IDENTIFIED VIA ed25519: up exits 0" \
	sg_binary "mysql://ed_arm:ed-arm-pw@db.schemagate.test:$DLV_MYSQL_PORT/dlv_arm_ed" up
start=$SECONDS
scenarios sg_binary db.schemagate.test "$root/data"
echo "timing: arm64 binary scenarios: $(dlv_elapsed "$start") s"

# the arm64 image, hardened, against the same servers
mkdir -p "$DLV_WORK/img-data"
chown 65532:65532 "$DLV_WORK/img-data"
hardened=(--network host --read-only --read-only-tmpfs=false --cap-drop ALL --security-opt no-new-privileges)
serve_name=
sg_image() {
	local how=(--rm)
	if [[ $1 == -d ]]; then
		shift
		serve_name=sg-arm64-serve-$$-$port
		DLV_CLEANUP+=("podman rm -f $serve_name")
		how=(-d --name "$serve_name")
	fi
	local url=$1
	shift
	podman run "${how[@]}" "${hardened[@]}" -v "$root/migrations:/migrations:ro" \
		-v "$DLV_WORK/img-data:/data" -e DATABASE_URL="$url" -e SCHEMAGATE_CONNECT_TIMEOUT=20s \
		-e SCHEMAGATE_LOCK_TIMEOUT=2m -e SCHEMAGATE_LISTEN="127.0.0.1:$port" \
		"$arm_image" "$@" >/dev/null 2>>"$DLV_WORK/image.log"
}
sg_image_stop() {
	local rc
	podman kill --signal TERM "$serve_name" >/dev/null
	rc=$(podman wait "$serve_name")
	[[ $rc -eq 0 ]]
}
check "the arm64 image runs under emulation (version)" \
	bash -c 'podman run --rm --network host "$1" version >/dev/null 2>&1' _ "$arm_image"
start=$SECONDS
scenarios sg_image 127.0.0.1 "$DLV_WORK/img-data"
echo "timing: arm64 image scenarios: $(dlv_elapsed "$start") s"
