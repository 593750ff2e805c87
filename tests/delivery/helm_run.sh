#!/usr/bin/env bash
# helm_run.sh - execute what the chart renders, against a private PostgreSQL.
#
# For each mode, `helm template` renders the chart and k8s_run.py runs the
# schemagate containers with their exact command, args and environment
# ($(VAR) resolved as Kubernetes does; Secrets supplied here; the password
# Secret volume written to a temporary directory):
#   job mode:         the pre-install Job runs "up", then three pods' "wait"
#                     initContainers at once, with the app's credentials;
#   pre-rollback:     the rollback Job of an OLDER release (its migrations
#                     directory lacks version 3) reverts version 3;
#   initContainer:    three pods' "up" initContainers at once;
#   Cloud SQL proxy:  the same with the proxy enabled (schemagate must then
#                     talk to 127.0.0.1:<proxy port>; PostgreSQL stands in);
#   Argo CD:          argocd_sync.py syncs the argocd.enabled rendering (the
#                     migrations ConfigMap from the chart, the Secrets as
#                     the README says to annotate them) in Argo CD's order:
#                     ConfigMap and Secrets, the PreSync Job, then the
#                     Deployment's wait initContainers; a re-sync of the
#                     same revision succeeds; a Secret left in the Sync
#                     phase, or a Job without BeforeHookCreation, fails;
#   serve sidecar:    three pods' "serve" native sidecars migrate, pass their
#                     startupProbe only once migrated, then readiness and
#                     liveness, and exit 0 on SIGTERM; job mode's "serve
#                     --wait" sidecars pass with the app's credentials, and
#                     fail their startupProbe on a database nobody migrates.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init helm_run

helm=$(dlv_helm)
bin=$(dlv_binary)
chart="$DLV_SRC/charts/schemagate-example"
run="$DLV_SRC/tests/delivery/k8s_run.py"
fullname=rel-schemagate-example

dlv_fixtures "$DLV_WORK/migrations-v3" 3
dlv_fixtures "$DLV_WORK/migrations-v2" 2

dlv_start_pg
# Two identities, as in production: the migrator owns the schema, the app
# may only read (default privileges give it SELECT on the history table).
dlv_psql postgres "CREATE ROLE dlv_migrator LOGIN PASSWORD 'dlv-migrator-pw'" >/dev/null
secrets=(--secret app-db-migrator/username=dlv_migrator --secret app-db-migrator/password=dlv-migrator-pw
	--secret app-db-app/username=sg_app --secret app-db-app/password=sg-app-pw)

new_db() {
	dlv_psql postgres "CREATE DATABASE $1 OWNER dlv_migrator" >/dev/null
	dlv_psql "$1" "ALTER DEFAULT PRIVILEGES FOR ROLE dlv_migrator IN SCHEMA public GRANT SELECT ON TABLES TO sg_app" >/dev/null
}

# render DB OUT [--set ...]: the chart pointed at the private server.
render() {
	local db=$1 out=$2
	shift 2
	"$helm" template rel "$chart" --set database.host=127.0.0.1 \
		--set database.port="$SG_TEST_PG_PORT" --set database.name="$db" \
		--set database.params=sslmode=disable "$@" >"$out" || fail "helm template $*"
}

# k8s KIND NAME MIGRATIONS_DIR [k8s_run options]
k8s() {
	local kind=$1 name=$2 dir=$3
	shift 3
	python3 "$run" --manifests "$manifest" --kind "$kind" --name "$name" \
		"${secrets[@]}" --path /schemagate="$bin" --path /migrations="$dir" \
		--logs "$DLV_WORK/logs" --json-logs "$@"
}

count() { dlv_psql "$1" 'SELECT count(*) FROM schemagate_migrations'; }

# ---- job mode
new_db dlv_job
manifest="$DLV_WORK/job.yaml"
render dlv_job "$manifest" --set schemagate.mode=job
check "job mode: pre-install Job runs up (exit 0)" \
	k8s Job "$fullname-migrate" "$DLV_WORK/migrations-v3"
check "job mode: 3 migrations applied" test "$(count dlv_job)" = 3
check "job mode: applied_by carries POD_NAME from the downward API" \
	test "$(dlv_psql dlv_job "SELECT count(*) FROM schemagate_migrations WHERE applied_by LIKE '$fullname-migrate-0%'")" = 3
check "job mode: 3 app pods' wait initContainers at once (exit 0)" \
	k8s Deployment "$fullname" "$DLV_WORK/migrations-v3" --pods 3
# A wrong app password must fail authentication (exit 5): proof that wait
# uses the app's Secret, and reads the password from the mounted file.
check "job mode: wait with a wrong app password exits 5" \
	k8s Deployment "$fullname" "$DLV_WORK/migrations-v3" --secret app-db-app/password=wrong --expect 5
# The app identity cannot migrate: proof that wait used those credentials.
check "job mode: the app role has no DDL rights" \
	bash -c "! PGPASSWORD=sg-app-pw '$DLV_PG_BIN/psql' -X -q -h 127.0.0.1 -p $SG_TEST_PG_PORT -U sg_app -d dlv_job -c 'CREATE TABLE x (i int)' 2>/dev/null"

# ---- pre-rollback: the OLD release's Job, whose image has migrations 1-2
manifest="$DLV_WORK/rollback.yaml"
render dlv_job "$manifest" --set schemagate.mode=job --set schemagate.image.tag=0.9.0 \
	--set schemagate.rollback.enabled=true
check "pre-rollback Job runs rollback with the older directory (exit 0)" \
	k8s Job "$fullname-rollback" "$DLV_WORK/migrations-v2"
check "pre-rollback: 2 migrations remain" test "$(count dlv_job)" = 2
check "pre-rollback: table of migration 3 is gone" \
	test "$(dlv_psql dlv_job "SELECT to_regclass('dlv_t3') IS NULL")" = t
check "pre-rollback: the old pods' wait succeeds (exit 0)" \
	k8s Deployment "$fullname" "$DLV_WORK/migrations-v2" --pods 3

# ---- initContainer mode
new_db dlv_init
manifest="$DLV_WORK/init.yaml"
render dlv_init "$manifest" --set schemagate.mode=initContainer
check "initContainer mode: 3 pods' up initContainers at once (exit 0)" \
	k8s Deployment "$fullname" "$DLV_WORK/migrations-v3" --pods 3
check "initContainer mode: each migration applied once" test "$(count dlv_init)" = 3
check "initContainer mode: all by one pod" \
	test "$(dlv_psql dlv_init 'SELECT count(DISTINCT applied_by) FROM schemagate_migrations')" = 1

# ---- Cloud SQL proxy: schemagate must use 127.0.0.1:<proxy port>
new_db dlv_proxy
manifest="$DLV_WORK/proxy.yaml"
render dlv_proxy "$manifest" --set schemagate.mode=initContainer \
	--set cloudSqlProxy.enabled=true --set cloudSqlProxy.port="$SG_TEST_PG_PORT" \
	--set database.host=db.unreachable.invalid
check "proxy mode: 3 pods' up initContainers through the proxy address (exit 0)" \
	k8s Deployment "$fullname" "$DLV_WORK/migrations-v3" --pods 3
check "proxy mode: 3 migrations applied" test "$(count dlv_proxy)" = 3

# ---- Argo CD: PreSync hooks and sync waves, a re-sync of the same revision
argo_sync() {
	python3 "$DLV_SRC/tests/delivery/argocd_sync.py" "$@" -- --path /schemagate="$bin" \
		--logs "$DLV_WORK/logs" --json-logs
}
run_argocd() {
	local dir="$DLV_WORK/argocd" files=() f
	mkdir -p "$dir"
	for f in "$DLV_WORK"/migrations-v3/*.sql; do
		f=${f##*/}
		files+=(--set-file "schemagate.migrations.files.${f//./\\.}=$DLV_WORK/migrations-v3/$f")
	done
	new_db dlv_argo
	# The Secrets live in the same Argo CD application (as an ExternalSecret
	# or SealedSecret would make them), annotated as charts/README.md says.
	secret() {
		printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  annotations:\n%s\nstringData:\n  username: %s\n  password: %s\n---\n' \
			"$1" "$2" "$3" "$4"
	}
	local presync='    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
    argocd.argoproj.io/sync-wave: "-3"'
	{ secret app-db-migrator "$presync" dlv_migrator dlv-migrator-pw; secret app-db-app "$presync" sg_app sg-app-pw; } \
		>"$dir/secrets.yaml"
	manifest="$DLV_WORK/argocd.yaml"
	render dlv_argo "$manifest" --set schemagate.mode=job --set argocd.enabled=true "${files[@]}"
	argo_sync --manifests "$manifest" --manifests "$dir/secrets.yaml" --state "$dir/cluster.json" >"$dir/sync1.log" ||
		{ cat "$dir/sync1.log"; fail "Argo CD: the sync succeeds"; }
	ok "Argo CD: the sync succeeds"
	check "Argo CD: order ConfigMap and Secrets (PreSync -3), migrate Job (PreSync -1), Deployment (Sync 0)" \
		python3 - "$dir/sync1.log" "$fullname" <<-'PY'
		import re, sys
		steps = re.findall(r"^sync: (\w+) wave (-?\d+): (\S+): (applied.*)$", open(sys.argv[1]).read(), re.M)
		got = [(p, int(w), k) for p, w, k, _ in steps]
		full = sys.argv[2]
		want = [("PreSync", -3, "Secret/app-db-app"), ("PreSync", -3, "Secret/app-db-migrator"),
		        ("PreSync", -3, f"ConfigMap/{full}-migrations"), ("PreSync", -1, f"Job/{full}-migrate"),
		        ("Sync", 0, f"Deployment/{full}")]
		print(got)
		sys.exit(0 if got == want else 1)
		PY
	check "Argo CD: the PreSync Job applied the 3 migrations of the ConfigMap" test "$(count dlv_argo)" = 3
	argo_sync --manifests "$manifest" --manifests "$dir/secrets.yaml" --state "$dir/cluster.json" >"$dir/sync2.log" ||
		{ cat "$dir/sync2.log"; fail "Argo CD: a re-sync of the same revision succeeds"; }
	ok "Argo CD: a re-sync of the same revision succeeds"
	check "... replacing the finished Job (BeforeHookCreation), which runs again" \
		grep -q "Job/$fullname-migrate: deleted the hook of the previous sync" "$dir/sync2.log"
	check "... and nothing is applied twice" test "$(count dlv_argo)" = 3
	# A rollback under Argo CD is a sync to the old revision: its image and
	# its migrations (here the ConfigMap's) lack version 3, and with the
	# rollback hook enabled its PreSync rollback Job reverts it first.
	local old=()
	for f in "$DLV_WORK"/migrations-v2/*.sql; do
		f=${f##*/}
		old+=(--set-file "schemagate.migrations.files.${f//./\\.}=$DLV_WORK/migrations-v2/$f")
	done
	cp "$dir/cluster.json" "$dir/cluster-rollback.json"
	render dlv_argo "$DLV_WORK/argocd-old.yaml" --set schemagate.mode=job --set argocd.enabled=true \
		--set schemagate.image.tag=0.9.0 --set schemagate.rollback.enabled=true "${old[@]}"
	argo_sync --manifests "$DLV_WORK/argocd-old.yaml" --manifests "$dir/secrets.yaml" \
		--state "$dir/cluster-rollback.json" >"$dir/sync-rollback.log" ||
		{ cat "$dir/sync-rollback.log"; fail "Argo CD: a sync to the old revision succeeds"; }
	ok "Argo CD: a sync to the old revision succeeds"
	check "... its PreSync rollback Job (wave -2) completed before the migrate Job (wave -1) started" \
		test "$(grep -o 'wave -[0-9]: Job/[^:]*: applied, completed' "$dir/sync-rollback.log" | paste -sd' ')" = \
		"wave -2: Job/$fullname-rollback: applied, completed wave -1: Job/$fullname-migrate: applied, completed"
	check "... and reverted version 3" \
		test "$(dlv_psql dlv_argo "SELECT string_agg(version, ',' ORDER BY version) FROM schemagate_migrations")" = 0001,0002
	# Failure cases: the test above could fail.
	sed 's/BeforeHookCreation/HookFailed/' "$manifest" >"$DLV_WORK/argocd-nobhc.yaml"
	if argo_sync --manifests "$DLV_WORK/argocd-nobhc.yaml" --manifests "$dir/secrets.yaml" \
		--state "$dir/cluster.json" >"$dir/sync3.log"; then
		fail "Argo CD: a re-sync with a Job lacking BeforeHookCreation succeeded"
	fi
	check "Argo CD: without BeforeHookCreation a re-sync fails on the hooks of the previous sync" \
		grep -q "FAILED: already exists" "$dir/sync3.log"
	grep -v 'argocd.argoproj.io/hook' "$dir/secrets.yaml" >"$dir/secrets-sync.yaml"
	if argo_sync --manifests "$manifest" --manifests "$dir/secrets-sync.yaml" \
		--state "$dir/cluster-new.json" >"$dir/sync4.log"; then
		fail "Argo CD: a PreSync Job whose Secret is an ordinary (Sync phase) object succeeded"
	fi
	check "Argo CD: Secrets left in the Sync phase do not exist when the PreSync Job starts" \
		grep -q "Job/$fullname-migrate: FAILED: CreateContainerConfigError: Secret/app-db-migrator not found" "$dir/sync4.log"
}
run_argocd

# ---- serve as a native sidecar
# k8s_run.py plays the kubelet: per-pod loopback IPs, the startupProbe
# polled until /readyz passes, readiness and liveness, SIGTERM after --hold.
run_serve_sidecar() {
	local port slow="$DLV_WORK/migrations-slow"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# version 4 takes 2 s: no pod's startupProbe may pass before it is applied
	cp -r "$DLV_WORK/migrations-v3" "$slow"
	printf 'SELECT pg_sleep(2);\nCREATE TABLE dlv_t4 (id INTEGER PRIMARY KEY);\n' >"$slow/0004_slow.up.sql"
	chmod -R a+rX "$slow"
	new_db dlv_serve
	manifest="$DLV_WORK/serve.yaml"
	render dlv_serve "$manifest" --set schemagate.mode=sidecar --set schemagate.serve.port="$port" \
		--set schemagate.serve.checkInterval=1s
	check "sidecar mode: 3 pods' serve sidecars migrate, pass /readyz, exit 0 on SIGTERM" \
		k8s Deployment "$fullname" "$slow" --pods 3 --hold 2 2>"$DLV_WORK/serve-k8s.log"
	check "sidecar mode: each migration applied once" test "$(count dlv_serve)" = 4
	check "sidecar mode: all by one pod" \
		test "$(dlv_psql dlv_serve 'SELECT count(DISTINCT applied_by) FROM schemagate_migrations')" = 1
	check "sidecar mode: no startupProbe passed before the 2 s migration was applied" \
		python3 -c 'import re, sys; t = [float(x) for x in re.findall(r"startupProbe passed after ([0-9.]+) s", open(sys.argv[1]).read())]; sys.exit(not (len(t) == 3 and min(t) >= 1.9))' "$DLV_WORK/serve-k8s.log"
	check "sidecar mode: the pods checked the schema and logged no failed check" \
		bash -c "grep -l '\"event\":\"serving\"' '$DLV_WORK'/logs/$fullname-*.log | wc -l | grep -qx 3 && ! grep -q check_failed '$DLV_WORK'/logs/$fullname-*.log"
	manifest="$DLV_WORK/serve-wait.yaml"
	render dlv_serve "$manifest" --set schemagate.mode=job --set schemagate.job.waitAs=sidecar \
		--set schemagate.serve.port="$port"
	check "job mode, waitAs=sidecar: 3 pods' serve --wait pass /readyz with the app's credentials" \
		k8s Deployment "$fullname" "$slow" --pods 3
	# nobody migrates this database: serve --wait never gets ready
	new_db dlv_serve_never
	manifest="$DLV_WORK/serve-never.yaml"
	render dlv_serve_never "$manifest" --set schemagate.mode=job --set schemagate.job.waitAs=sidecar \
		--set schemagate.serve.port="$port"
	if k8s Deployment "$fullname" "$slow" --timeout 3 2>"$DLV_WORK/never-k8s.log"; then
		fail "job mode, waitAs=sidecar: a database nobody migrates passed the startupProbe"
	fi
	check "job mode, waitAs=sidecar: a database nobody migrates fails the startupProbe" \
		grep -q 'startupProbe still failing after 3' "$DLV_WORK/never-k8s.log"
	check "... and the app role created nothing there" \
		test "$(dlv_psql dlv_serve_never "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'schemagate%'")" = 0
}
run_serve_sidecar

check "no secret value in any rendered manifest" \
	bash -c "! grep -l -e dlv-migrator-pw -e sg-app-pw -e sg-test-pw '$DLV_WORK'/*.yaml"
