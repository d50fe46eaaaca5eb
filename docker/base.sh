#!/usr/bin/env bash
# The base image every EdgeFleet Dockerfile starts FROM, made without a registry: a
# Debian 12 (bookworm) root filesystem from debootstrap, trimmed and `docker import`ed.
#   docker/base.sh [IMAGE]          (default edgefleet/base:bookworm; root, or sudo)
# Kept if it exists already (docker image rm it to rebuild). DEBIAN_MIRROR picks a mirror.
set -euo pipefail
image=${1:-edgefleet/base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image: already built"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
work=$(mktemp -d /var/tmp/edgefleet-base.XXXXXX)
trap 'as_root rm -rf "$work"' EXIT
echo "debootstrap bookworm from $mirror (about a minute)"
as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }
# Security updates come from the same places as Debian's own images; nothing is cached.
as_root tee "$work/root/etc/apt/sources.list" >/dev/null <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
as_root tee "$work/root/etc/apt/apt.conf.d/90edgefleet" >/dev/null <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
as_root rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* \
  "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/share/info" \
  "$work/root/usr/share/locale" "$work/root/var/log/"*
as_root tar --numeric-owner -C "$work/root" -c . \
  | docker import -m "debootstrap --variant=minbase bookworm" \
      -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
