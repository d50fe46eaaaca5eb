#!/bin/sh
# Inside an image build: /opt/edgefleet/venv with EdgeFleet and what ROLE needs, from
# the wheels in /wheels only (no index; docker/images.sh wrote requirements-ROLE.txt).
#   install-venv.sh agent|controlplane
set -eu
role=$1
venv=/opt/edgefleet/venv
if ! python3 -c 'import ensurepip' 2>/dev/null; then  # a base other than edgefleet/base
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links /wheels -r "/wheels/requirements-$role.txt"
"$venv/bin/pip" install --quiet --no-index --find-links /wheels --no-deps edgefleet
"$venv/bin/pip" uninstall --quiet --yes pip setuptools
find "$venv" -name __pycache__ -prune -exec rm -rf {} +
"$venv/bin/python" -m compileall -q "$venv" >/dev/null
