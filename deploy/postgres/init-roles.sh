#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume (/docker-entrypoint-initdb.d).
# Two roles instead of the superuser:
#   notify_owner  owns the database and its schema; `notify migrate` connects as it (DDL).
#   notify_app    what `notify api` and `notify worker` connect as: reads and writes rows, nothing else
#                 (no DDL, no superuser): the tables migrations create are granted to it automatically.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE notify_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE notify_app LOGIN PASSWORD :'app_password';
CREATE DATABASE notify OWNER notify_owner;
\connect notify
ALTER SCHEMA public OWNER TO notify_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO notify_app;
ALTER DEFAULT PRIVILEGES FOR ROLE notify_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO notify_app;
ALTER DEFAULT PRIVILEGES FOR ROLE notify_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO notify_app;
SQL
