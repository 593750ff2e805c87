#!/usr/bin/env bash
# metrics.sh - serve's monitoring surface, end to end, with the real
# `schemagate serve` on an SQLite database (the metrics do not depend on
# the engine; helm_run.sh runs the chart's serve sidecar on PostgreSQL):
#   - while another instance holds the migration lock, /readyz answers 503
#     with the reason and /metrics passes `promtool check metrics` with
#     schemagate_ready 0;
#   - once the lock is free, serve migrates, /readyz answers 200, /metrics
#     passes `promtool check metrics` again;
#   - a real Prometheus (prometheus.sh) scrapes it every second and its
#     query API returns schemagate_ready == 1 and the schema's values;
#   - SIGTERM ends serve with 0 within 2 s;
#   - the README's alert rules pass `promtool check rules`, and
#     `promtool test rules` (alerts_test.yml) shows each fires when it
#     should and not before.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init metrics

command -v promtool >/dev/null || fail "promtool is missing (apt-get install prometheus; tests/deps.sh)"
bin=$(dlv_binary)
mig="$DLV_WORK/migrations"
db="$DLV_WORK/app.db"
cp -r "$DLV_SRC/migrations" "$mig"
# the example directory has an up script for SQLite for every version
nmig=$(find "$mig" -name '*.up.sql' -printf '%f\n' | sed 's/_.*//' | sort -u | wc -l)
newest=$(find "$mig" -name '*.up.sql' -printf '%f\n' | sed 's/_.*//' | sort | tail -n1)

# ---- another instance holds SQLite's migration lock (an exclusive flock
# on the database file): serve must wait, and say so
python3 - "$db" <<'EOF' &
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[1] + ".held", "w").close()
time.sleep(600)
EOF
holder=$!
DLV_PIDS+=("$holder")
for _ in $(seq 100); do [[ -e $db.held ]] && break; sleep 0.1; done
[[ -e $db.held ]] || fail "the lock holder did not start"

"$bin" --database-url "sqlite:$db" --dir "$mig" --log-format text --poll-interval 200ms \
	serve --listen 127.0.0.1:0 --check-interval 1s 2>"$DLV_WORK/serve.log" &
serve_pid=$!
DLV_PIDS+=("$serve_pid")
address=
for _ in $(seq 100); do
	address=$(sed -n 's/.*serving \/livez, \/readyz and \/metrics on \([^ ]*\).*/\1/p' "$DLV_WORK/serve.log")
	[[ -n $address ]] && break
	sleep 0.1
done
[[ -n $address ]] || { cat "$DLV_WORK/serve.log"; fail "serve did not start listening"; }

# http PATH: prints the status code; the body goes to $DLV_WORK/body
http() {
	python3 - "http://$address$1" "$DLV_WORK/body" <<'EOF'
import sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as e:
    r = e
open(sys.argv[2], "wb").write(r.read())
print(r.status)
EOF
}
sleep 0.5
check "/readyz answers 503 while another instance holds the lock" test "$(http /readyz)" = 503
check "... with the reason" grep -q "^not ready: waiting for the migration lock ($nmig pending, target $newest)" "$DLV_WORK/body"
check "/livez answers 200 meanwhile" test "$(http /livez)" = 200
check "/metrics answers 200 meanwhile" test "$(http /metrics)" = 200
check "promtool check metrics passes on /metrics while waiting" promtool check metrics <"$DLV_WORK/body"
check "... with schemagate_ready 0" grep -qx 'schemagate_ready 0' "$DLV_WORK/body"
check "... and the pending migrations the run has read" grep -qx "schemagate_migrations_pending $nmig" "$DLV_WORK/body"

sleep 1
kill "$holder"
status=
for _ in $(seq 300); do
	status=$(http /readyz)
	[[ $status == 200 ]] && break
	sleep 0.1
done
check "/readyz answers 200 once serve has migrated" test "$status" = 200
check "/metrics answers 200 once ready" test "$(http /metrics)" = 200
check "promtool check metrics passes on /metrics once ready" promtool check metrics <"$DLV_WORK/body"

check "Prometheus scrapes serve and its query API returns schemagate_ready == 1" \
	bash "$DLV_SRC/tests/delivery/prometheus.sh" "$address" 'up{job="schemagate"} == 1' \
	'schemagate_ready == 1' \
	"schemagate_migration_duration_seconds_count == $nmig" \
	"schemagate_migrations_applied == $nmig" 'schemagate_migrations_pending == 0' \
	"schemagate_schema_info{applied=\"$newest\",target=\"$newest\",engine=\"sqlite\"} == 1" \
	'schemagate_lock_wait_seconds > 1' 'schemagate_check_errors_total == 0' \
	'time() - schemagate_last_check_timestamp_seconds < 10'

start=$(date +%s%N)
kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "serve exits 0 on SIGTERM (exit $rc)" test "$rc" = 0
check "... within 2 s (${ms} ms)" test "$ms" -lt 2000

# ---- the README's alert rules
python3 - "$DLV_SRC/README.md" "$DLV_WORK/alerts.yml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- alert-rules -->\s*```yaml\n(.*?)```", text, re.S)
if not m:
    sys.exit("README.md: no ```yaml block after <!-- alert-rules -->")
open(sys.argv[2], "w").write(m.group(1))
EOF
check "promtool check rules passes on the README's alert rules" promtool check rules "$DLV_WORK/alerts.yml"
cp "$DLV_SRC/tests/delivery/alerts_test.yml" "$DLV_WORK/"
check "promtool test rules: each alert fires when it should, and not before" \
	promtool test rules "$DLV_WORK/alerts_test.yml"
