#!/usr/bin/env bash
# image.sh - the container image, built and run for real with podman.
#
# Makes the debian:bookworm base image if podman does not have it
# (debootstrap from the machine's Debian mirror, then podman import; kept
# for later runs), builds container/Dockerfile with
#   podman build --network host -f container/Dockerfile .
# as a user would with Docker, and runs the image hardened the way the Helm
# chart and compose example run it: --read-only (no tmpfs either), all
# capabilities dropped, no-new-privileges, as the image's uid 65532, on the
# host network so it reaches the private PostgreSQL and MariaDB on loopback.
# Checks: size <= 10 MiB, labels, config, contents; --version; up + verify
# on PostgreSQL, MariaDB (also as an ed25519 user) and SQLite on a volume;
# the kernel's view of a running container (uid, capabilities, read-only
# root); the termination log on a mounted /dev/termination-log; and the
# README's recipe, FROM schemagate:local + COPY migrations /migrations.
# Needs root.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init image

dlv_podman
dlv_image
image=$DLV_IMAGE
version=$(dlv_version)

# ---- the image itself
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image: $image, $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
check "image size $size <= 10 MiB" test "$size" -le $((10 * 1024 * 1024))

podman image inspect "$image" >"$DLV_WORK/inspect.json"
revision=$(git -C "$DLV_SRC" rev-parse HEAD 2>/dev/null || echo unknown)
check "OCI labels: title, version $version, revision, created, source, licenses, base.name" python3 - "$DLV_WORK/inspect.json" "$version" "$revision" <<'EOF'
import json, sys
labels = json.load(open(sys.argv[1]))[0]["Config"]["Labels"]
p = "org.opencontainers.image."
want = {p + "title": "schemagate", p + "version": sys.argv[2], p + "revision": sys.argv[3],
        p + "base.name": "scratch", p + "licenses": "MIT"}
bad = [k for k, v in want.items() if labels.get(k) != v]
bad += [p + k for k in ("created", "source", "description") if not labels.get(p + k, "").strip()]
if not labels.get(p + "created", "").startswith("20"):
    bad.append(p + "created")
for k in bad:
    print(f"label {k} = {labels.get(k)!r}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
check "config: USER 65532:65532, ENTRYPOINT /schemagate, CMD up, SCHEMAGATE_DIR=/migrations" python3 - "$DLV_WORK/inspect.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))[0]["Config"]
ok = (c.get("User") == "65532:65532" and c.get("Entrypoint") == ["/schemagate"]
      and c.get("Cmd") == ["up"] and "SCHEMAGATE_DIR=/migrations" in c.get("Env", []))
if not ok:
    print(json.dumps(c, indent=1), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

# What is in it: exactly the binary, the CA bundle, the account files and
# an empty /migrations (no shell, nothing else).
cid=$(podman create "$image")
podman export -o "$DLV_WORK/image.tar" "$cid"
podman rm "$cid" >/dev/null
tar -tf "$DLV_WORK/image.tar" | sed 's,^\./,,; s,/$,,' | grep -v '^$' | sort >"$DLV_WORK/files"
echo "image files: $(tr '\n' ' ' <"$DLV_WORK/files")"
check "image holds only /schemagate, the CA bundle, passwd/group/nsswitch.conf, schemagate-release and an empty /migrations" \
	diff <(printf '%s\n' etc etc/group etc/nsswitch.conf etc/passwd etc/schemagate-release etc/ssl \
		etc/ssl/certs etc/ssl/certs/ca-certificates.crt migrations schemagate) "$DLV_WORK/files"
release=$(tar -xOf "$DLV_WORK/image.tar" etc/schemagate-release | tr '\n' ' ')
echo "/etc/schemagate-release: $release"
check "/etc/schemagate-release matches the labels" python3 - "$DLV_WORK/inspect.json" "$release" <<'EOF'
import json, sys
labels = json.load(open(sys.argv[1]))[0]["Config"]["Labels"]
p = "org.opencontainers.image."
want = " ".join(f"{k}={labels[p + k]}" for k in ("version", "revision", "created")) + " "
sys.exit(0 if sys.argv[2] == want else 1)
EOF

out=$(podman run --rm "$image" --version)
echo "--version: $out"
check "--version: first line schemagate $version" test "$(head -n 1 <<<"$out")" = "schemagate $version"
# the static binary reports the libraries linked into it
check "--version: revision $revision (the commit built) and every linked library's version" bash -c '
	grep -qx "revision: $2" <<<"$1" || { echo "revision is not $2" >&2; exit 1; }
	for key in libpq "MariaDB Connector/C" SQLite libuv OpenSSL; do
		grep -qE "^$key: [0-9a-z]" <<<"$1" || { echo "no $key line" >&2; exit 1; }
	done' _ "$out" "$revision"

# ---- hardened runs against the private servers on loopback
hardened=(--network host --read-only --read-only-tmpfs=false --cap-drop ALL
	--security-opt no-new-privileges)
examples=(-v "$DLV_SRC/migrations:/migrations:ro")
versions=$(find "$DLV_SRC/migrations" -name '*.sql' -printf '%f\n' | grep -oE '^[0-9]+' | sort -u | wc -l)

dlv_start_pg
dlv_start_mariadb
pg_url() { echo "postgres://sg:sg-test-pw@127.0.0.1:$SG_TEST_PG_PORT/$1"; }
my_url() { echo "mysql://sg:sg-test-pw@127.0.0.1:$DLV_MYSQL_PORT/$1"; }
run() {
	podman run --rm "${hardened[@]}" "$@" 2>>"$DLV_WORK/runs.log"
}

dlv_psql postgres 'CREATE DATABASE dlv_img' >/dev/null
# A waiter first: "wait" blocks until someone migrates, which leaves time
# to look at the running container from the kernel's side.
waiter=sg-image-wait-$$
DLV_CLEANUP+=("podman rm -f $waiter")
podman run "${hardened[@]}" -d --name "$waiter" "${examples[@]}" \
	-e DATABASE_URL="$(pg_url dlv_img)" -e SCHEMAGATE_LOCK_TIMEOUT=2m "$image" wait >/dev/null
pid=0
for _ in $(seq 50); do
	pid=$(podman inspect --format '{{.State.Pid}}' "$waiter")
	[[ $pid -gt 0 ]] && break
	sleep 0.1
done
check "the waiting container runs (pid $pid)" test "$pid" -gt 0
status=$(cat "/proc/$pid/status")
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' <<<"$status"; }
echo "container process: Uid: $(field Uid) | CapEff: $(field CapEff) | CapBnd: $(field CapBnd) | NoNewPrivs: $(field NoNewPrivs)"
check "it runs as uid 65532, gid 65532" bash -c '[[ "$1" == "65532 65532 65532 65532" && "$2" == "65532 65532 65532 65532" ]]' \
	_ "$(field Uid | tr -s '\t ' ' ')" "$(field Gid | tr -s '\t ' ' ')"
check "with no capabilities (effective, permitted, bounding, ambient)" bash -c \
	'for c in "$@"; do [[ $c == 0000000000000000 ]] || exit 1; done' _ \
	"$(field CapEff)" "$(field CapPrm)" "$(field CapBnd)" "$(field CapAmb)"
check "with no_new_privs set" test "$(field NoNewPrivs)" = 1
rootopts=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")
check "on a read-only root filesystem ($rootopts)" grep -qE '(^|,)ro(,|$)' <<<"$rootopts"
check "with no writable tmpfs in it" bash -c "! awk '\$5 ~ \"^/(tmp|var/tmp|run)\$\"' /proc/$pid/mountinfo | grep -q ."

check "PostgreSQL: up exits 0" run "${examples[@]}" -e DATABASE_URL="$(pg_url dlv_img)" "$image"
check "PostgreSQL: the $versions example migrations recorded" \
	test "$(dlv_psql dlv_img 'SELECT count(*) FROM schemagate_migrations')" = "$versions"
rc=$(podman wait "$waiter")
check "the waiting container exits 0 once the database is at the target (exit $rc)" test "$rc" -eq 0
check "PostgreSQL: verify exits 0" run "${examples[@]}" -e DATABASE_URL="$(pg_url dlv_img)" "$image" verify

dlv_mysql 'CREATE DATABASE dlv_img'
check "MariaDB: up exits 0" run "${examples[@]}" -e DATABASE_URL="$(my_url dlv_img)" "$image" up
check "MariaDB: the $versions example migrations recorded" \
	test "$(dlv_mysql 'SELECT count(*) FROM dlv_img.schemagate_migrations')" = "$versions"
check "MariaDB: verify exits 0" run "${examples[@]}" -e DATABASE_URL="$(my_url dlv_img)" "$image" verify

# The static binary in the image has client_ed25519 compiled in.
dlv_mysql "INSTALL SONAME 'auth_ed25519'"
dlv_mysql "CREATE DATABASE dlv_img_ed; CREATE USER ed_img@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-img-pw');
	GRANT ALL ON dlv_img_ed.* TO ed_img@'%'"
check "MariaDB as a user IDENTIFIED VIA ed25519: up exits 0" run "${examples[@]}" \
	-e DATABASE_URL="mysql://ed_img:ed-img-pw@127.0.0.1:$DLV_MYSQL_PORT/dlv_img_ed" "$image" up

mkdir -p "$DLV_WORK/sqlite"
chown 65532:65532 "$DLV_WORK/sqlite"
check "SQLite on a mounted volume: up exits 0" run "${examples[@]}" -v "$DLV_WORK/sqlite:/data" \
	-e DATABASE_URL=sqlite:///data/app.db "$image"
check "SQLite: the $versions example migrations recorded" \
	test "$(sqlite3 "$DLV_WORK/sqlite/app.db" 'SELECT count(*) FROM schemagate_migrations')" = "$versions"
check "SQLite: verify exits 0" run "${examples[@]}" -v "$DLV_WORK/sqlite:/data" \
	-e DATABASE_URL=sqlite:///data/app.db "$image" verify

# ---- the termination log, mounted as Kubernetes mounts it
term="$DLV_WORK/termination-log"
: >"$term"
chown 65532:65532 "$term"
rc=0
run "${examples[@]}" -v "$term:/dev/termination-log" \
	-e DATABASE_URL="postgres://sg:not-the-pw-$$@127.0.0.1:$SG_TEST_PG_PORT/dlv_img" "$image" up || rc=$?
echo "termination log: $(cat "$term")"
check "a wrong password exits 5 (exit $rc)" test "$rc" -eq 5
check "the reason is in the mounted /dev/termination-log" grep -q 'password authentication failed' "$term"
check "the termination log is one line" test "$(wc -l <"$term")" -le 1
check "the termination log does not hold the password" bash -c "! grep -q 'not-the-pw-$$' '$term'"

# ---- the README's recipe: FROM the image + COPY migrations /migrations
derived="$DLV_WORK/derived"
dlv_fixtures "$derived/migrations" 3
printf 'FROM %s\nCOPY migrations /migrations\n' "$image" >"$derived/Dockerfile"
derived_image=localhost/schemagate-derived-test:$$
DLV_CLEANUP+=("podman rmi -f $derived_image")
check "podman build of FROM schemagate + COPY migrations" \
	bash -c "podman build --network host -t '$derived_image' '$derived' >'$DLV_WORK/derived-build.log' 2>&1"
dlv_psql postgres 'CREATE DATABASE dlv_img_derived' >/dev/null
check "the derived image: up exits 0" run -e DATABASE_URL="$(pg_url dlv_img_derived)" "$derived_image"
check "the derived image applied its own 3 migrations, nothing else" \
	test "$(dlv_psql dlv_img_derived "SELECT string_agg(version, ',' ORDER BY version) FROM schemagate_migrations")" = "0001,0002,0003"
check "its tables exist, the examples' do not" \
	test "$(dlv_psql dlv_img_derived "SELECT to_regclass('dlv_t3') IS NOT NULL AND to_regclass('sessions') IS NULL")" = t
check "the derived image: verify exits 0" run -e DATABASE_URL="$(pg_url dlv_img_derived)" "$derived_image" verify
