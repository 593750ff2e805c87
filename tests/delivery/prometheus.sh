#!/usr/bin/env bash
# prometheus.sh TARGET [QUERY...] - scrape TARGET with a real Prometheus
# server and wait until each QUERY returns a non-empty result.
#
#   TARGET  HOST:PORT serving /metrics on loopback (127.x.x.x, [::1] or
#           localhost; any other address is refused: tests send traffic
#           nowhere else)
#   QUERY   PromQL; default 'schemagate_ready == 1'
#
# Starts Prometheus (Debian package prometheus, tests/deps.sh) on a free
# loopback port with a 1 s scrape interval and its storage in a temporary
# directory, polls its query API (/api/v1/query) until every QUERY has a
# sample or PROM_TIMEOUT seconds (default 60) pass, prints one "ok - ..."
# line per query, and stops Prometheus. Exit 0 when all queries matched;
# on failure the target's scrape health (/api/v1/targets) is printed.
#
# tests/delivery/metrics.sh points it at a running `schemagate serve`.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init prometheus

[[ $# -ge 1 ]] || fail "usage: prometheus.sh TARGET [QUERY...]"
target=$1
shift
queries=("$@")
[[ ${#queries[@]} -gt 0 ]] || queries=('schemagate_ready == 1')
case "$target" in
127.*:* | "[::1]:"* | localhost:*) ;;
*) fail "target $target is not on loopback" ;;
esac
command -v prometheus >/dev/null || fail "prometheus is missing (apt-get install prometheus; tests/deps.sh)"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$DLV_WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: schemagate
    metrics_path: /metrics
    static_configs:
      - targets: ["$target"]
EOF
prometheus --config.file="$DLV_WORK/prometheus.yml" --storage.tsdb.path="$DLV_WORK/data" \
	--web.listen-address="127.0.0.1:$port" --log.level=warn >"$DLV_WORK/prometheus.log" 2>&1 &
prom_pid=$!
stop_prometheus() {
	kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
	return 0
}
trap 'rc=$?; set +e; stop_prometheus; (exit $rc); dlv_cleanup' EXIT

# query URL QUERY: prints the number of samples, or "down" while the API
# does not answer
query() {
	python3 - "$1" "$2" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    with urllib.request.urlopen(url, timeout=2) as r:
        doc = json.load(r)
except OSError:
    print("down")
    sys.exit(0)
if doc.get("status") != "success":
    sys.exit("query failed: " + json.dumps(doc))
print(len(doc["data"]["result"]))
EOF
}

api="http://127.0.0.1:$port"
deadline=$((SECONDS + ${PROM_TIMEOUT:-60}))
for q in "${queries[@]}"; do
	while :; do
		n=$(query "$api" "$q") || fail "query '$q': $n"
		if [[ $n != down && $n -gt 0 ]]; then
			ok "Prometheus scraping $target: '$q' returns $n sample(s)"
			break
		fi
		if ((SECONDS >= deadline)); then
			say "targets: $(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$api/api/v1/targets" 2>&1)"
			tail -5 "$DLV_WORK/prometheus.log" >&2
			fail "Prometheus scraping $target: '$q' returned nothing within ${PROM_TIMEOUT:-60} s"
		fi
		kill -0 "$prom_pid" 2>/dev/null || {
			cat "$DLV_WORK/prometheus.log" >&2
			fail "Prometheus exited"
		}
		sleep 0.5
	done
done
