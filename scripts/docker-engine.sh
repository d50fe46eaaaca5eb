#!/usr/bin/env bash
# Make sure a Docker engine answers (for `make images`, `make compose-test` and the system
# tests): Debian's docker.io, Compose (the v2 plugin if installed, else Debian's
# docker-compose 1.29) and debootstrap are installed if missing, and dockerd is started
# if nothing answers (a machine without systemd: in the background, logging to
# /var/log/edgefleet-dockerd.log).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io"; apt_install docker.io
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker-compose"; apt_install docker-compose
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap"; apt_install debootstrap
fi
if [ "$(id -u)" -ne 0 ] && [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
  echo "cannot use /var/run/docker.sock as $(id -un): sudo usermod -aG docker $(id -un)," \
    "then log in again" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl start docker
  else
    echo "starting dockerd"
    as_root sh -c 'nohup dockerd >>/var/log/edgefleet-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
docker info >/dev/null 2>&1 || {
  echo "no Docker engine answers (journalctl -u docker, or /var/log/edgefleet-dockerd.log)" >&2
  exit 1
}
echo "docker: engine $(docker version -f '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null || docker-compose version --short)"
