#!/usr/bin/env bash
# Make sure this Debian/Ubuntu machine can create a Python 3.11+ virtual environment.
set -euo pipefail
python=${1:-python3}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v "$python" >/dev/null 2>&1; then
  echo "installing python3"; as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3 python3-venv >/dev/null
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "EdgeFleet needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if ! "$python" -m venv "$probe/venv" >/dev/null 2>&1; then
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  echo "installing python${version}-venv"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "python${version}-venv" >/dev/null \
    || DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi
