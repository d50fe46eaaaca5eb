#!/bin/sh
# Inside an image build: /opt/edgefleet/venv with EdgeFleet and what ROLE needs, from
# wheels only (no index; docker/images.sh wrote them), in two steps so that Docker keeps
# the first (the dependencies, minutes) while only EdgeFleet's own code changed:
#   install-venv.sh ROLE deps       a new venv with requirements-ROLE.txt from /wheels
#   install-venv.sh ROLE edgefleet  EdgeFleet's wheel from /wheels/edgefleet (no deps);
#                                   then pip and setuptools are removed
# ROLE: agent or controlplane.
set -eu
role=$1
step=$2
venv=/opt/edgefleet/venv
case $step in
deps)
  if ! python3 -c 'import ensurepip' 2>/dev/null; then  # a base other than edgefleet/base
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-index --find-links /wheels -r "/wheels/requirements-$role.txt"
  find "$venv" -name __pycache__ -prune -exec rm -rf {} +
  ;;
edgefleet)
  "$venv/bin/pip" install --quiet --no-compile --no-index --find-links /wheels/edgefleet \
    --no-deps edgefleet
  "$venv/bin/pip" uninstall --quiet --yes pip setuptools
  ;;
*)
  echo "install-venv.sh: the step is deps or edgefleet, not '$step'" >&2
  exit 2
  ;;
esac
# byte-compile what is new (files compiled already, in the deps step, are up to date)
"$venv/bin/python" -m compileall -q "$venv" >/dev/null
