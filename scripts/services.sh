#!/usr/bin/env bash
# Make sure the services the test suite talks to are installed and running:
# Mosquitto (the tests start private brokers from the binary) and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto"; apt_install mosquitto
fi
if ! pgrep -x mosquitto >/dev/null 2>&1 && [ -f /etc/mosquitto/mosquitto.conf ]; then
  as_root /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing postgresql"; apt_install postgresql
fi
if ! pg_ready; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
# The tests connect as 'postgres' over TCP without a password (trust on loopback, as in CI).
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  echo "cannot connect to PostgreSQL as postgres@127.0.0.1 without a password" >&2
  echo "(allow trust for 127.0.0.1 in pg_hba.conf, or set EDGEFLEET_TEST_POSTGRES)" >&2
  [ -n "${EDGEFLEET_TEST_POSTGRES:-}" ] || exit 1
fi
echo "services: mosquitto $(command -v mosquitto || echo /usr/sbin/mosquitto), postgresql on 127.0.0.1:5432"
