#!/usr/bin/env bash
# Start (or reuse) the Debian PostgreSQL cluster on 127.0.0.1 and make a role for the tests and
# for a local Postgres-backed Dagster instance. Run as root (CI, dev containers); the server
# itself runs as the `postgres` user. Prints shell `export` lines, so use it as
#     eval "$(bash deploy/local-postgres.sh)"
# Needs Debian's `postgresql` package (apt-get install --no-install-recommends postgresql).
#
# The role gets a fresh random password on every call; it lives only in the environment of the
# shell that evals the output (MMFR_TEST_POSTGRES_URL for the tests, DAGSTER_PG_* for
# deploy/dagster-postgres.yaml), never in a file.
set -euo pipefail

ROLE=${MMFR_PG_ROLE:-mmfr}
DB=${MMFR_PG_DB:-mmfr_dagster}

if [ "$(id -u)" != 0 ]; then
  echo "local-postgres.sh: run as root (it manages the cluster through pg_ctlcluster)" >&2
  exit 1
fi
if ! command -v pg_lsclusters >/dev/null; then
  echo "local-postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION main"; then
  # Package installs normally create it; some images set create_main_cluster = false.
  pg_createcluster "$VERSION" main >&2
fi
# Loopback only, whatever the cluster's own postgresql.conf says (Debian's includes conf.d/).
printf "listen_addresses = '127.0.0.1'\n" > "/etc/postgresql/$VERSION/main/conf.d/mmfr-loopback.conf"
if ! pg_ctlcluster "$VERSION" main status >/dev/null 2>&1; then
  pg_ctlcluster "$VERSION" main start >&2
fi
PORT=$(pg_conftool -s "$VERSION" main show port)

as_postgres() { runuser -u postgres -- "$@"; }
for _ in $(seq 1 30); do
  as_postgres pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 1
done
as_postgres pg_isready -h 127.0.0.1 -p "$PORT" >&2

PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# Over the local socket (peer auth as postgres); the password goes to psql on stdin, not on a
# command line that `ps` could show.
as_postgres psql -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres \
  -v role="$ROLE" -v db="$DB" >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN CREATEDB PASSWORD '$PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL

cat <<EOF
export MMFR_TEST_POSTGRES_URL='postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres'
export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=$PORT DAGSTER_PG_USER=$ROLE
export DAGSTER_PG_PASSWORD='$PASSWORD' DAGSTER_PG_DB=$DB
EOF
