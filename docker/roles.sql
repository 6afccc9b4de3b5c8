-- The roles of docker-compose.yml's database, made once by the superuser when the data volume is new
-- (docker/initdb/10-memora-roles.sh runs this with psql; tests/integration/db/test_compose_roles.py too).
--   memora       migrates (a one-shot service): owns the database, may create roles (migration 0007's group roles)
--   memora_app   the API and the worker: a plain login, made a member of the owner role by `memora db upgrade
--                --service-role memora_app`; no superuser, no CREATEROLE, no CREATEDB
-- pgvector is created here because only a superuser may (it is not a trusted extension).
-- Variables: migrator_password, app_password.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE memora LOGIN CREATEROLE PASSWORD :'migrator_password';
CREATE ROLE memora_app LOGIN PASSWORD :'app_password';
SELECT format('ALTER DATABASE %I OWNER TO memora', current_database()) \gexec
