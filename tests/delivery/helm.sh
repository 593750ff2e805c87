#!/usr/bin/env bash
# helm.sh - helm lint and helm template of the example chart in every mode
# combination (initContainer, job, sidecar, job with serve --wait sidecars),
# with assertions on the rendered manifests (chart_checks.py): the serve
# sidecar's restartPolicy, probes, metrics port and prometheus.io annotations,
# hook annotations and weights, delete policy and Job limits, the rollback
# hook off unless enabled (it runs destructive down scripts), the Cloud SQL
# proxy as a native sidecar before schemagate, the hardened securityContext,
# credentials from secretKeyRef (migrator vs app), POD_NAME, JSON logs,
# terminationMessagePolicy, and no secret value anywhere.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init helm

python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (apt-get install python3-yaml)"
helm=$(dlv_helm)
chart="$DLV_SRC/charts/schemagate-example"
echo "helm: $("$helm" version --short)"

# job/sidecar: job mode whose app pods run "serve --wait" as a sidecar
migration_files=(--set-string 'schemagate.migrations.files.0001_init\.up\.sql=CREATE TABLE t (id int);'
	--set-string 'schemagate.migrations.files.0001_init\.down\.sql=DROP TABLE t;')
for mode in initContainer job sidecar job/sidecar; do
	wait_as=initContainer
	[[ $mode == job/sidecar ]] && wait_as=sidecar
	for proxy in false true; do
		# "default": the rollback hook is opt-in, so not asking renders none
		for rollback in true false default; do
			set=(--set "schemagate.mode=${mode%/*}" --set "cloudSqlProxy.enabled=$proxy"
				--set "schemagate.job.waitAs=$wait_as")
			[[ $rollback == default ]] || set+=(--set "schemagate.rollback.enabled=$rollback")
			check "helm lint ${set[*]}" bash -c '"$@" >/dev/null' _ "$helm" lint --strict "$chart" "${set[@]}"
			out="$DLV_WORK/${mode/\//-}-$proxy-$rollback.yaml"
			"$helm" template rel "$chart" "${set[@]}" >"$out" || fail "helm template ${set[*]}"
			expect_rollback=$rollback
			[[ $rollback == default ]] && expect_rollback=false
			python3 "$DLV_SRC/tests/delivery/chart_checks.py" "$out" "${mode%/*}" "$proxy" "$expect_rollback" "$wait_as"
		done
	done
	# Argo CD (with and without the migrations ConfigMap) and the ConfigMap
	# under Helm, with the rollback hook on and off.
	for rollback in true false; do
		for variant in argocd argocd/configmap configmap; do
			set=(--set "schemagate.mode=${mode%/*}" --set "schemagate.job.waitAs=$wait_as"
				--set "schemagate.rollback.enabled=$rollback")
			argocd=false configmap=false
			[[ $variant == argocd* ]] && { set+=(--set argocd.enabled=true); argocd=true; }
			[[ $variant == *configmap ]] && { set+=("${migration_files[@]}"); configmap=true; }
			check "helm lint ${set[*]}" bash -c '"$@" >/dev/null' _ "$helm" lint --strict "$chart" "${set[@]}"
			out="$DLV_WORK/${mode/\//-}-${variant/\//-}-$rollback.yaml"
			"$helm" template rel "$chart" "${set[@]}" >"$out" || fail "helm template ${set[*]}"
			python3 "$DLV_SRC/tests/delivery/chart_checks.py" "$out" "${mode%/*}" false "$rollback" "$wait_as" \
				"$argocd" "$configmap"
		done
	done
done

# Flux: the example HelmRelease's values render Helm hooks (Flux runs them),
# and its settings keep the hook Job and the rollback hook safe.
flux="$DLV_SRC/charts/flux/helmrelease.yaml"
python3 -c '
import sys, yaml
hr = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "HelmRelease")
yaml.safe_dump(hr["spec"]["values"], open(sys.argv[2], "w"))' "$flux" "$DLV_WORK/flux-values.yml" ||
	fail "charts/flux/helmrelease.yaml has no HelmRelease with spec.values"
out="$DLV_WORK/flux.yaml"
check "helm lint with the HelmRelease's values" bash -c '"$@" >/dev/null' _ "$helm" lint --strict "$chart" -f "$DLV_WORK/flux-values.yml"
"$helm" template rel "$chart" -f "$DLV_WORK/flux-values.yml" >"$out" || fail "helm template with the HelmRelease's values"
python3 "$DLV_SRC/tests/delivery/chart_checks.py" "$out" job false false initContainer false false
check "Flux: the HelmRelease keeps Helm's hooks and waits for them, its timeout covers the Job, no unasked rollback hook" python3 - "$flux" "$out" <<'PY'
import re, sys, yaml
hr = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "HelmRelease")
spec = hr["spec"]
job = next(d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d["kind"] == "Job")
def seconds(t):
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", t))
problems = []
for phase in ("install", "upgrade", "rollback"):
    for flag in ("disableHooks", "disableWait", "disableWaitForJobs"):
        if (spec.get(phase) or {}).get(flag):
            problems.append(f"{phase}.{flag} is set")
if spec.get("values", {}).get("argocd", {}).get("enabled"):
    problems.append("argocd.enabled under Flux")
deadline = job["spec"]["activeDeadlineSeconds"]
if seconds(spec.get("timeout", "5m")) <= deadline:
    problems.append(f"timeout {spec.get('timeout', '5m')} does not cover activeDeadlineSeconds {deadline}")
strategy = (spec.get("upgrade") or {}).get("remediation", {}).get("strategy", "rollback")
if strategy == "rollback" and spec["values"]["schemagate"].get("rollback", {}).get("enabled"):
    problems.append("remediation by rollback would run the destructive rollback hook")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY

# The rollback hook is opt-in, and its values say why and how to preview it.
values=$("$helm" show values "$chart")
check "values: schemagate.rollback.enabled defaults to false" python3 -c '
import sys, yaml
v = yaml.safe_load(sys.stdin)
sys.exit(0 if v["schemagate"]["rollback"]["enabled"] is False else 1)' <<<"$values"
check "values: the rollback hook is called destructive, with its preview command" \
	bash -c 'grep -q DESTRUCTIVE <<<"$1" && grep -q "schemagate rollback --dry-run --sql" <<<"$1"' _ "$values"

# Options that must change the rendering as documented.
out="$DLV_WORK/mysql.yaml"
"$helm" template rel "$chart" --set database.scheme=mysql --set database.port=3306 >"$out"
check "database.scheme=mysql renders a mysql:// URL" grep -q '"mysql://$(DB_USER)@db.example.internal:3306/app?sslmode=require"' "$out"
out="$DLV_WORK/iam.yaml"
"$helm" template rel "$chart" --set cloudSqlProxy.enabled=true --set cloudSqlProxy.autoIamAuthn=true \
	--set database.migrator.passwordKey= --set database.app.passwordKey= >"$out"
check "IAM authentication: no password file, --auto-iam-authn" \
	bash -c "! grep -q DATABASE_PASSWORD_FILE '$out' && grep -q -- --auto-iam-authn '$out'"
check "an unknown mode is refused" \
	bash -c "! '$helm' template rel '$chart' --set schemagate.mode=sidekick >/dev/null 2>&1"
check "an unknown job.waitAs is refused" \
	bash -c "! '$helm' template rel '$chart' --set schemagate.mode=job --set schemagate.job.waitAs=serve >/dev/null 2>&1"
# The serve sidecar's settings reach the manifest.
out="$DLV_WORK/serve-options.yaml"
"$helm" template rel "$chart" --set schemagate.mode=sidecar --set schemagate.serve.port=9999 \
	--set schemagate.serve.listenHost=:: --set schemagate.serve.checkInterval=10s \
	--set schemagate.serve.prometheusAnnotations=false --set-string podAnnotations.team=db >"$out"
check "serve.listenHost=:: renders [::]:9999" grep -q '"\[::\]:9999"' "$out"
check "serve.port moves the metrics port" grep -q 'containerPort: 9999' "$out"
check "serve.checkInterval reaches SCHEMAGATE_CHECK_INTERVAL" grep -q '"10s"' "$out"
check "prometheusAnnotations=false renders none, podAnnotations stay" \
	bash -c "! grep -q 'prometheus.io/' '$out' && grep -q 'team: db' '$out'"
out="$DLV_WORK/serve-annotations.yaml"
"$helm" template rel "$chart" --set schemagate.mode=sidecar --set-string 'podAnnotations.prometheus\.io/path=/custom' >"$out"
check "podAnnotations override the prometheus.io defaults" grep -q 'prometheus.io/path: /custom' "$out"

# Secrets: the chart takes none; sentinel values given as unrelated values
# must not leak, and nothing that looks like a credential is a literal.
check "no literal password in any rendering" \
	bash -c "! grep -i -E '(password|passwd)[\"]?: *[\"]?[^\" ]*[A-Za-z0-9]' '$DLV_WORK'/*.yaml | grep -v -E 'passwordKey|PASSWORD_FILE|name: db-(app|migrator)-password|path: password|key: password'"
