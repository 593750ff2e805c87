#!/usr/bin/env bash
# metrics.sh - serve's monitoring surface, end to end, with the test-only
# demo server (tests/support/metrics_demo.c: the http and metrics modules
# with fixed values) standing in for `schemagate serve`:
#   - promtool check metrics on what /metrics answers over HTTP;
#   - a real Prometheus (prometheus.sh) scrapes it every second and its
#     query API returns schemagate_ready == 1;
#   - the README's alert rules pass `promtool check rules`, and
#     `promtool test rules` (alerts_test.yml) shows each fires when it
#     should and not before;
#   - the chart's sidecar mode runs through k8s_run.py: the startupProbe on
#     /readyz passes only once ready, readiness and liveness pass, SIGTERM
#     ends it with 0 within 2 s; a sidecar that never gets ready fails.
# TODO(lead): once `schemagate serve` runs, add the same Prometheus and
# k8s_run checks against "$SCHEMAGATE_BIN" and a private PostgreSQL (see
# the sidecar section of helm_run.sh).
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init metrics

command -v promtool >/dev/null || fail "promtool is missing (apt-get install prometheus; tests/deps.sh)"
demo=${SG_METRICS_DEMO_BIN:-}
if [[ -z $demo ]]; then
	build=/tmp/build-dlv-tests
	say "SG_METRICS_DEMO_BIN unset: building $build/sg_metrics_demo"
	cmake -S "$DLV_SRC" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$build" -j2 --target sg_metrics_demo >/dev/null || fail "building sg_metrics_demo"
	demo=$build/sg_metrics_demo
fi
helm=$(dlv_helm)
chart="$DLV_SRC/charts/schemagate-example"

# ---- the demo server, scraped
"$demo" --listen 127.0.0.1:0 --address-file "$DLV_WORK/address" --ready-after 2000 \
	2>"$DLV_WORK/demo.log" &
demo_pid=$!
trap 'rc=$?; set +e; kill "$demo_pid" 2>/dev/null; (exit $rc); dlv_cleanup' EXIT
for _ in $(seq 100); do [[ -s $DLV_WORK/address ]] && break; sleep 0.1; done
address=$(cat "$DLV_WORK/address") || fail "the demo server did not start"

http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
http_get "http://$address/metrics" >"$DLV_WORK/metrics.txt" || fail "GET /metrics"
check "promtool check metrics passes on /metrics" promtool check metrics <"$DLV_WORK/metrics.txt"

check "Prometheus scrapes the server and its query API returns schemagate_ready == 1" \
	bash "$DLV_SRC/tests/delivery/prometheus.sh" "$address" 'up{job="schemagate"} == 1' \
	'schemagate_ready == 1' 'schemagate_migration_duration_seconds_count == 2' \
	'schemagate_schema_info{applied="0003",target="0003",engine="postgres"} == 1'

kill -TERM "$demo_pid"
check "the demo server exits 0 on SIGTERM" wait "$demo_pid"

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

# ---- the chart's sidecar, run as the kubelet would (k8s_run.py)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
render() {
	local out=$1
	shift
	"$helm" template rel "$chart" --set database.host=127.0.0.1 --set schemagate.serve.port="$port" \
		--set 'schemagate.extraEnv[0].name=SG_DEMO_READY_AFTER_MS' "$@" >"$out" || fail "helm template $*"
}
sidecar() {
	python3 "$DLV_SRC/tests/delivery/k8s_run.py" --manifests "$1" --kind Deployment \
		--name rel-schemagate-example --secret app-db-migrator/username=m --secret app-db-migrator/password=pw \
		--secret app-db-app/username=a --secret app-db-app/password=pw --path /schemagate="$demo" \
		--logs "$DLV_WORK/logs" --json-logs "${@:2}"
}
render "$DLV_WORK/sidecar.yaml" --set schemagate.mode=sidecar --set-string 'schemagate.extraEnv[0].value=1500'
check "sidecar mode: 2 pods' startupProbe on /readyz passes, readiness and liveness pass, SIGTERM exits 0 within 2 s" \
	sidecar "$DLV_WORK/sidecar.yaml" --pods 2 --hold 1 2>"$DLV_WORK/k8s_run.log"
# the demo turns ready 1.5 s after it starts: the probe must not pass before
check "sidecar mode: the startupProbe passed only once /readyz said ready (>= 1.4 s)" \
	python3 -c 'import re, sys; t = [float(x) for x in re.findall(r"startupProbe passed after ([0-9.]+) s", open(sys.argv[1]).read())]; sys.exit(not (len(t) == 2 and min(t) >= 1.4))' "$DLV_WORK/k8s_run.log"
render "$DLV_WORK/job-sidecar.yaml" --set schemagate.mode=job --set schemagate.job.waitAs=sidecar \
	--set-string 'schemagate.extraEnv[0].value=0'
check "job mode with waitAs=sidecar: serve --wait passes the same probes" \
	sidecar "$DLV_WORK/job-sidecar.yaml"
render "$DLV_WORK/never.yaml" --set schemagate.mode=sidecar --set-string 'schemagate.extraEnv[0].value=600000'
check "a sidecar that never gets ready fails the startupProbe" \
	bash -c '! "$@" 2>/dev/null' _ sidecar "$DLV_WORK/never.yaml" --timeout 3
