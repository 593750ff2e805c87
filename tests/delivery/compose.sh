#!/usr/bin/env bash
# compose.sh - the docker-compose example (container/compose.yaml).
#
# docker-compose config must accept the file; then the app service's three
# replicas run as processes at once, with the service's exact entrypoint
# and environment, against a private PostgreSQL standing in for the "db"
# service. The application after "--" is replaced by a recorder, so the
# test proves each replica exec'd it in place after the migrations.
# shellcheck source=tests/delivery/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dlv_init compose

bin=$(dlv_binary)
compose="$DLV_SRC/container/compose.yaml"
command -v docker-compose >/dev/null || fail "docker-compose is missing (apt-get install docker-compose)"

# Compose v2 warns "the attribute `version` is obsolete" (issue 26)
check "container/compose.yaml has no obsolete top-level version key" \
	bash -c "! grep -qE '^version:' '$compose'"
printf 'compose-test-pw\n' >"$DLV_WORK/db-password.txt"
check "docker-compose config accepts container/compose.yaml" \
	bash -c "docker-compose -f '$compose' config >'$DLV_WORK/config.yaml'"
check "the app service has 3 replicas running schemagate up --" python3 -c "
import yaml, sys
s = yaml.safe_load(open('$DLV_WORK/config.yaml'))['services']['app']
sys.exit(not (s['deploy']['replicas'] == 3 and s['entrypoint'][:3] == ['schemagate', 'up', '--']))"
check "the app service runs read-only, non-root, without capabilities" python3 -c "
import yaml, sys
s = yaml.safe_load(open('$DLV_WORK/config.yaml'))['services']['app']
sys.exit(not (s['read_only'] is True and s['user'].startswith('65532') and s['cap_drop'] == ['ALL']))"

dlv_start_pg
dlv_psql postgres "CREATE ROLE app LOGIN PASSWORD 'compose-test-pw'" >/dev/null
dlv_psql postgres "CREATE DATABASE app OWNER app" >/dev/null
dlv_fixtures "$DLV_WORK/migrations" 3
mkdir -p "$DLV_WORK/record"

check "3 replicas' entrypoints at once: all exit 0 after exec'ing the app" \
	python3 "$DLV_SRC/tests/delivery/compose_run.py" "$DLV_WORK/config.yaml" \
	--exe schemagate="$bin" --path /run/secrets/db_password="$DLV_WORK/db-password.txt" \
	--path /migrations="$DLV_WORK/migrations" --host db:5432=127.0.0.1:"$SG_TEST_PG_PORT" \
	--record "$DLV_WORK/record"
check "each migration applied once" \
	test "$(dlv_psql app 'SELECT count(*) FROM schemagate_migrations')" = 3
check "by the app role" \
	test "$(dlv_psql app "SELECT tableowner FROM pg_tables WHERE tablename = 'dlv_t3'")" = app
