#!/usr/bin/env bash
# Back up a control plane's database and filesystem blob store into a new directory:
#   DATABASE_URL=... EDGEFLEET_DATA_DIR=... scripts/backup.sh /backups/2026-12-06
# (the server's own settings; DATABASE_URL unset: SQLite in the data dir). It may run
# while the control plane serves. The database first, the blobs second: blobs are
# content-addressed and never change, and a model version is recorded only after its
# blobs are stored, so every blob the dump names is in the later copy. Writes:
#   database.pgdump (pg_dump --format=custom) or edgefleet.db (SQLite's online backup),
#   blobs.tar (blobs/sha256/..., uploads in progress left out), SHA256SUMS.
# Keys are not in it: back them up on their own (docs/operations.md).
set -euo pipefail
out=${1:?usage: backup.sh OUT_DIR (a directory that does not exist yet)}
data=${EDGEFLEET_DATA_DIR:-./edgefleet-data}
url=${DATABASE_URL:-sqlite:///$data/edgefleet.db}
python=${PYTHON:-python3}

umask 077  # the dump holds every table: readable by whoever runs this only
[ ! -e "$out" ] || { echo "backup: $out exists; give a new directory" >&2; exit 2; }
[ -d "$data" ] || { echo "backup: no data directory $data (EDGEFLEET_DATA_DIR)" >&2; exit 2; }
mkdir -p "$out"
case $url in
  sqlite:///*)
    db=${url#sqlite:///}
    [ -f "$db" ] || { echo "backup: no SQLite database at $db" >&2; exit 2; }
    "$python" -c 'import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)' "$db" "$out/edgefleet.db"
    ;;
  postgresql://*|postgres://*|postgresql+psycopg://*)
    # the password goes to libpq in PGPASSWORD, not on a command line others can read
    eval "$("$python" "$(dirname "$0")/pg_url.py" "$url")"
    PGPASSWORD=$pg_password pg_dump --format=custom --no-owner --file "$out/database.pgdump" \
      --dbname "$pg_url"
    ;;
  *) echo "backup: DATABASE_URL is neither sqlite:/// nor postgresql://" >&2; exit 2 ;;
esac
if [ -d "$data/blobs/sha256" ]; then
  tar -C "$data" -cf "$out/blobs.tar" blobs/sha256
else
  tar -cf "$out/blobs.tar" --files-from /dev/null  # no blob yet (or an object store)
fi
(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "backup: $(du -sh "$out" | cut -f1) in $out"
