#!/usr/bin/env bash
# Start the local PostgreSQL 15 cluster and create the test role and database (idempotent).
# Usage: scripts/test-postgres.sh ROLE PASSWORD DATABASE
set -euo pipefail
role=${1:?role} password=${2:?password} database=${3:?database}

as_postgres() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sudo -u postgres sh -c "$*"; fi
}
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! pg_lsclusters -h 2>/dev/null | awk '$1 == "15" && $2 == "main"' | grep -q .; then
	sudo_if_needed pg_createcluster 15 main
fi
pg_ctlcluster 15 main status >/dev/null 2>&1 || sudo_if_needed pg_ctlcluster 15 main start
for _ in $(seq 50); do
	as_postgres "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
	sleep 0.2
done

as_postgres "psql -v ON_ERROR_STOP=1 -qAt" <<SQL
SELECT 'CREATE ROLE $role LOGIN PASSWORD ''$password'' CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role LOGIN PASSWORD '$password' CREATEDB;
SELECT 'CREATE DATABASE $database OWNER $role'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database') \gexec
SQL
