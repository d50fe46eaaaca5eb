#!/usr/bin/env bash
# `make images`: every EdgeFleet image, on a machine without an image registry.
#  1. build/wheels: the project's dependencies as wheels (from this venv's index), and
#     build/edgefleet-wheel: the project's own wheel;
#  2. edgefleet/base:bookworm: Debian 12 from debootstrap, `docker import`ed (docker/base.sh);
#  3. docker build FROM that base: controlplane, agent, mosquitto, postgres.
# Tags: edgefleet/<name>:<version> and :latest. BASE=debian:bookworm-slim (with a registry)
# skips step 2. PYTHON picks the interpreter that builds the wheels (default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
base=${BASE:-edgefleet/base:bookworm}
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

command -v docker >/dev/null || { echo "images: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "images: no Docker engine answers (is dockerd running?)" >&2; exit 1; }

# the images run Debian 12's Python 3.11: compiled wheels must be cp311
if [ "$("$python" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" != True ]; then
  echo "images: $python is not Python 3.11 (the images' Python); set PYTHON" >&2
  exit 1
fi
echo "wheels -> build/wheels"
# build/lib: setuptools' staging, may hold removed modules
rm -rf build/wheels build/edgefleet-wheel build/lib
mkdir -p build
# the same source gives the same wheel bytes (zip times from the last commit), so an
# unchanged tree reuses Docker's cached layers instead of reinstalling everything
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir build/wheels '.[s3]' \
  >build/wheels.log 2>&1 || { tail -20 build/wheels.log >&2; exit 1; }
# EdgeFleet's own wheel apart: the images install the dependencies in a layer of their
# own, which Docker keeps while only EdgeFleet's code changed
mkdir -p build/edgefleet-wheel
mv build/wheels/edgefleet-*.whl build/edgefleet-wheel/
"$python" docker/requirements.py agent >build/wheels/requirements-agent.txt
"$python" docker/requirements.py controlplane --extra s3 >build/wheels/requirements-controlplane.txt
if [ "$base" = edgefleet/base:bookworm ]; then
  bash docker/base.sh "$base"
fi
for name in controlplane agent mosquitto postgres; do
  echo "image edgefleet/$name:$version"
  started=$(date +%s)
  DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$base" \
    -f "docker/$name.Dockerfile" -t "edgefleet/$name:$version" -t "edgefleet/$name:latest" . \
    >build/image-$name.log 2>&1 || { tail -30 build/image-$name.log >&2; exit 1; }
  size=$(docker image inspect -f '{{.Size}}' "edgefleet/$name:$version")
  echo "  $((size / 1000000)) MB in $(($(date +%s) - started)) s"
done
