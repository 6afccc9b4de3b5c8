#!/bin/sh
# Run by the pgvector image's entrypoint, as the superuser, the first time the data volume starts (empty).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v migrator_password="$MEMORA_MIGRATOR_PASSWORD" -v app_password="$MEMORA_APP_PASSWORD" \
    -f /memora/roles.sql
