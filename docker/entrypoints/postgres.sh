#!/bin/sh
# First start: initdb into $PGDATA with superuser $POSTGRES_USER (password from
# $POSTGRES_PASSWORD_FILE or $POSTGRES_PASSWORD) and create $POSTGRES_DB; then run the
# server in the foreground (SIGINT: fast shutdown).
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password=${POSTGRES_PASSWORD:-}
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then password=$(cat "$POSTGRES_PASSWORD_FILE"); fi
  [ -n "$password" ] || { echo "edgefleet-postgres: error: set POSTGRES_PASSWORD(_FILE)" >&2; exit 2; }
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "edgefleet-postgres: made the cluster (user $user, database $db)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
