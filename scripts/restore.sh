#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into an EMPTY database and data directory,
# with the control plane stopped:
#   DATABASE_URL=... EDGEFLEET_DATA_DIR=... scripts/restore.sh /backups/2026-12-06
# The checksums are checked first; nothing is written if one differs. Then start the
# control plane as usual: it migrates a backup of an older release to its own schema.
set -euo pipefail
from=${1:?usage: restore.sh BACKUP_DIR}
data=${EDGEFLEET_DATA_DIR:-./edgefleet-data}
url=${DATABASE_URL:-sqlite:///$data/edgefleet.db}

(cd "$from" && sha256sum --quiet --check SHA256SUMS) \
  || { echo "restore: $from fails its checksums; nothing restored" >&2; exit 1; }
if [ -d "$data/blobs/sha256" ] && [ -n "$(ls -A "$data/blobs/sha256")" ]; then
  echo "restore: $data/blobs already holds blobs; restore into an empty data directory" >&2
  exit 2
fi
case $url in
  sqlite:///*)
    db=${url#sqlite:///}
    [ -f "$from/edgefleet.db" ] || { echo "restore: $from holds no SQLite backup" >&2; exit 2; }
    [ ! -e "$db" ] || { echo "restore: $db exists; restore into an empty data directory" >&2; exit 2; }
    mkdir -p "$(dirname "$db")"
    cp "$from/edgefleet.db" "$db"
    ;;
  postgresql://*|postgres://*|postgresql+psycopg://*)
    [ -f "$from/database.pgdump" ] || { echo "restore: $from holds no PostgreSQL dump" >&2; exit 2; }
    eval "$("${PYTHON:-python3}" "$(dirname "$0")/pg_url.py" "$url")"
    PGPASSWORD=$pg_password pg_restore --no-owner --exit-on-error --single-transaction \
      --dbname "$pg_url" "$from/database.pgdump"
    ;;
  *) echo "restore: DATABASE_URL is neither sqlite:/// nor postgresql://" >&2; exit 2 ;;
esac
mkdir -p "$data"
tar -C "$data" -xf "$from/blobs.tar"
echo "restore: database and $(find "$data/blobs" -type f 2>/dev/null | wc -l) blob(s) restored; start the control plane"
