#!/bin/sh
# The citus-setup service of docker-compose.yml: make the coordinator and workers one cluster, then migrate
# Memora and shard its tables. Safe to run again (citus_add_node returns a node already there; distribute skips
# what is distributed; `memora db upgrade` may re-create triggers that distribute then guards again).
set -eu
python - <<'PY'
import os

import psycopg

with psycopg.connect(os.environ["MEMORA_DATABASE_URL"], autocommit=True) as conn:
    # The coordinator in the metadata: reference tables get a copy on it, where their DDL triggers run.
    conn.execute("SELECT citus_set_coordinator_host('citus-coordinator', 5432)")
    for worker in ("citus-worker-1", "citus-worker-2"):
        conn.execute("SELECT citus_add_node(%s, 5432)", (worker,))
    print(conn.execute("SELECT string_agg(nodename, ', ' ORDER BY nodeid) FROM pg_dist_node").fetchone()[0])
PY
memora db upgrade
memora db distribute
