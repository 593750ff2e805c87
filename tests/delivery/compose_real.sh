#!/usr/bin/env bash
# compose_real.sh - the compose example's replicas as real containers.
#
# docker-compose (Debian's, 1.29) drives podman through `podman system
# service`'s Docker-compatible socket: container/compose.yaml's app service,
# built from container/compose-app.Dockerfile on the real schemagate image,
# starts its 3 replicas at once while PostgreSQL is down, as compose.yaml
# allows (no depends_on condition: schemagate retries the connection). Once
# every replica is retrying, PostgreSQL starts with a fresh database; each
# replica's schemagate applies or waits, then execs the app in its place.
#
# What the test changes, and why (everything else is compose.yaml's):
#   - the database is the private PostgreSQL on loopback, not the "db"
#     service (no registry here for postgres:15), so the replicas use the
#     host network, which cannot publish ports: "ports" is dropped;
#   - the app listens on 127.0.0.1 and a free port (port 0), since three
#     replicas share the host network;
#   - the app image's Python base is Debian's python3 on the locally made
#     debian:bookworm (PYTHON_IMAGE), for the same reason;
#   - the password file is the test's;
#   - /migrations is a copy of the example migrations whose first one also
#     sleeps 6 s, longer than schemagate's longest connect backoff (2 s),
#     so the replicas really meet at the lock.
# Checks: docker-compose config accepts the file; 3 containers run, each
# retrying the connection; each one's PID 1 then became the app (exec in
# place), as uid 65532 without
# capabilities, and serves the page; exactly one replica applied, the
# others waited for it; each migration is recorded once; a compose stop
# (SIGINT) ends every app with exit 0. Needs root.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init compose_real

command -v docker-compose >/dev/null || fail "docker-compose is missing (bash tests/deps.sh installs it)"
dlv_podman
dlv_image

compose="$DLV_SRC/container/compose.yaml"
printf 'compose-test-pw\n' >"$DLV_WORK/db-password.txt"
chmod 0644 "$DLV_WORK/db-password.txt"
check "docker-compose config accepts container/compose.yaml" \
	bash -c "docker-compose -f '$compose' config >/dev/null"

# ---- the app image: compose-app.Dockerfile on the real image
python_image=localhost/schemagate-test-python:bookworm
app_image=localhost/schemagate-compose-app:test
mkdir -p "$DLV_WORK/python"
printf '%s\n' "FROM $DLV_BASE_IMAGE" \
	'RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null && rm -rf /var/lib/apt/lists/*' \
	>"$DLV_WORK/python/Dockerfile"
start=$SECONDS
podman build --network host -t "$python_image" "$DLV_WORK/python" >"$DLV_WORK/python-build.log" 2>&1 ||
	{ tail -n 20 "$DLV_WORK/python-build.log"; fail "building $python_image"; }
(cd "$DLV_SRC" && podman build --network host -f container/compose-app.Dockerfile -t "$app_image" \
	--build-arg SCHEMAGATE_IMAGE="$DLV_IMAGE" --build-arg PYTHON_IMAGE="$python_image" .) \
	>"$DLV_WORK/app-build.log" 2>&1 || { tail -n 20 "$DLV_WORK/app-build.log"; fail "building $app_image"; }
echo "timing: app image builds: $(dlv_elapsed "$start") s"

# ---- the database: fresh, owned by the app's role, as the db service makes it
dlv_start_pg
dlv_psql postgres "CREATE ROLE app LOGIN PASSWORD 'compose-test-pw'" >/dev/null
dlv_psql postgres "CREATE DATABASE app OWNER app" >/dev/null

mkdir -p "$DLV_WORK/migrations"
cp "$DLV_SRC"/migrations/*.sql "$DLV_WORK/migrations/"
slow="$DLV_WORK/migrations/0001_create_sessions.postgres.up.sql"
[[ -f $slow ]] || fail "$slow: the example's first PostgreSQL migration moved; update this test"
{ echo 'SELECT pg_sleep(6);'; cat "$DLV_SRC/migrations/${slow##*/}"; } >"$slow"
chmod -R a+rX "$DLV_WORK/migrations"

cat >"$DLV_WORK/override.yaml" <<EOF
services:
  app:
    image: $app_image
    network_mode: host
    volumes: ["$DLV_WORK/migrations:/migrations:ro"]
    environment:
      DATABASE_URL: postgres://app@127.0.0.1:$SG_TEST_PG_PORT/app?sslmode=disable
    command: ["python3", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", "/srv"]
secrets:
  db_password:
    file: $DLV_WORK/db-password.txt
EOF
docker-compose -f "$compose" -f "$DLV_WORK/override.yaml" config >"$DLV_WORK/merged.yaml" ||
	fail "docker-compose config with the override"
check "the merged file keeps compose.yaml's entrypoint, replicas and hardening" python3 - "$DLV_WORK/merged.yaml" "$DLV_WORK/run.yaml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
app = c["services"]["app"]
ok = (app["entrypoint"] == ["schemagate", "up", "--"] and app["deploy"]["replicas"] == 3
      and app["read_only"] is True and app["cap_drop"] == ["ALL"] and app["user"] == "65532:65532"
      and app["stop_signal"] == "SIGINT" and "no-new-privileges:true" in app["security_opt"])
# A host-network container cannot publish ports; the db service is the private server.
app.pop("ports", None)
app.pop("depends_on", None)
c["services"].pop("db")
c.pop("volumes", None)  # db-data belongs to the db service
yaml.safe_dump(c, open(sys.argv[2], "w"))
sys.exit(0 if ok else 1)
EOF

# ---- podman's Docker API, for docker-compose
sock="$DLV_WORK/podman.sock"
podman system service --time=0 "unix://$sock" >"$DLV_WORK/podman-service.log" 2>&1 &
DLV_PIDS+=($!)
for _ in $(seq 100); do
	[[ -S $sock ]] && break
	sleep 0.1
done
[[ -S $sock ]] || { cat "$DLV_WORK/podman-service.log"; fail "podman system service did not open $sock"; }
export DOCKER_HOST=unix://$sock
project=sg-compose-$$
dc() { docker-compose -p "$project" -f "$DLV_WORK/run.yaml" "$@"; }
DLV_CLEANUP+=("docker-compose -p $project -f $DLV_WORK/run.yaml down -v -t 2")

# The database goes down; the replicas start against nothing.
"$DLV_HARNESS/pg.sh" stop "$DLV_WORK/pg" >/dev/null 2>&1 || fail "stopping PostgreSQL"
start=$SECONDS
dc up -d --no-build >"$DLV_WORK/up.log" 2>&1 || { cat "$DLV_WORK/up.log"; fail "docker-compose up"; }
mapfile -t containers < <(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}' | sort)
echo "containers: ${containers[*]}"
check "docker-compose started 3 replicas" test "${#containers[@]}" -eq 3
retrying() {
	local c
	for c in "${containers[@]}"; do
		podman logs "$c" 2>&1 | grep -q 'connect_retry:' || return 1
	done
}
for _ in $(seq 600); do
	retrying && break
	sleep 0.1
done
check "all 3 replicas are up and retrying the connection" retrying
echo "timing: up to all retrying: $(dlv_elapsed "$start") s"
SG_PG_PORT=$SG_TEST_PG_PORT "$DLV_HARNESS/pg.sh" start "$DLV_WORK/pg" >/dev/null 2>&1 ||
	fail "restarting PostgreSQL on port $SG_TEST_PG_PORT"
start=$SECONDS

# Wait until each replica's PID 1 is the app and it answers.
check "every replica's app started in place of schemagate and serves the page" \
	python3 - "${containers[@]}" <<'EOF'
import json, os, re, subprocess, sys, time, urllib.request

def listening_port(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        if m:
            inodes.add(m.group(1))
    for line in open(f"/proc/{pid}/net/tcp").readlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[9] in inodes:
            return int(f[1].split(":")[1], 16)
    return None

deadline = time.time() + 120
pending = set(sys.argv[1:])
while pending and time.time() < deadline:
    for name in sorted(pending):
        state = json.loads(subprocess.check_output(["podman", "inspect", name]))[0]["State"]
        if not state["Running"]:
            sys.exit(f"{name} is not running (exit {state['ExitCode']})")
        pid = state["Pid"]
        try:
            argv = open(f"/proc/{pid}/cmdline").read().split("\0")[:-1]
            status = open(f"/proc/{pid}/status").read()
            port = listening_port(pid)
        except OSError:
            continue
        if argv[:3] != ["python3", "-m", "http.server"] or not port:
            continue
        uid = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        cap = re.search(r"^CapEff:\s+(\S+)", status, re.M).group(1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode().strip()
        print(f"{name}: PID 1 is {' '.join(argv)} (host pid {pid}), uid {uid[0]}, CapEff {cap}, "
              f"port {port}: {body!r}")
        if uid != ["65532"] * 4 or cap != "0" * 16 or body != "migrated and running":
            sys.exit(f"{name}: wrong uid, capabilities or page")
        pending.discard(name)
    time.sleep(0.2)
if pending:
    sys.exit(f"not serving after 120 s: {sorted(pending)}")
EOF
echo "timing: database up to every app serving: $(dlv_elapsed "$start") s"

appliers=0
waiters=0
for c in "${containers[@]}"; do
	podman logs "$c" >"$DLV_WORK/$c.log" 2>&1
	if grep -q 'apply_start:' "$DLV_WORK/$c.log"; then
		appliers=$((appliers + 1))
		echo "$c: applied ($(grep -c 'applied:' "$DLV_WORK/$c.log") migrations)"
	elif grep -q 'winner_finished:' "$DLV_WORK/$c.log"; then
		waiters=$((waiters + 1))
		echo "$c: waited for the winner ($(grep -o 'waited_ms=[0-9]*' "$DLV_WORK/$c.log" | tail -n1))"
	else
		echo "$c: neither applied nor waited:"
		cat "$DLV_WORK/$c.log"
	fi
done
versions=$(find "$DLV_SRC/migrations" -name '*.sql' -printf '%f\n' | grep -oE '^[0-9]+' | sort -u | wc -l)
check "exactly one replica applied the migrations ($appliers)" test "$appliers" -eq 1
check "the two others waited for it and verified ($waiters)" test "$waiters" -eq 2
check "each of the $versions migrations is recorded exactly once" \
	test "$(dlv_psql app "SELECT count(*) || '/' || count(DISTINCT version) FROM schemagate_migrations")" = "$versions/$versions"
check "the tables belong to the app role" \
	test "$(dlv_psql app "SELECT tableowner FROM pg_tables WHERE tablename = 'sessions'")" = app

start=$SECONDS
dc stop -t 10 >"$DLV_WORK/stop.log" 2>&1 || { cat "$DLV_WORK/stop.log"; fail "docker-compose stop"; }
codes=$(for c in "${containers[@]}"; do podman inspect --format '{{.State.ExitCode}}' "$c"; done | tr '\n' ' ')
echo "timing: docker-compose stop: $(dlv_elapsed "$start") s; exit codes: $codes"
check "docker-compose stop (SIGINT) ends every app with exit 0" test "$codes" = "0 0 0 "
dc down -v -t 2 >/dev/null 2>&1 || fail "docker-compose down"
check "docker-compose down removed every container" \
	test -z "$(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')"
