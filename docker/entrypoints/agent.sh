#!/bin/sh
# The agent container's entrypoint. With /etc/edgefleet-agent/agent.toml mounted, it is
# used as it is. Otherwise agent.toml is written into the data volume from:
#   EDGEFLEET_DEVICE_ID, EDGEFLEET_FLEET, EDGEFLEET_BROKER_URL, EDGEFLEET_CONTROL_PLANE_URL
#   EDGEFLEET_ROOT_KEYS     (default /etc/edgefleet-agent/root.pub)
#   EDGEFLEET_TRUST         (optional: the provisioning trust document)
#   EDGEFLEET_ENROLLMENT_TOKEN_FILE (optional: a one-time token, used while not enrolled)
#   EDGEFLEET_LOCAL_API     (default 127.0.0.1:8500: loopback, the API has no auth)
#   EDGEFLEET_LOCAL_GRPC    (optional: the API over gRPC, host:port, "auto" for
#                           EDGEFLEET_LOCAL_API's port + 1, or "off"; default "off")
#   EDGEFLEET_MEMORY_BUDGET_MB (optional: what the models may take; default 3/4 of the
#                           host's RAM, which a container's memory limit does not change)
# Then: edge-agent run|enroll ... --config <that file> (default: run); other commands as given.
set -eu
data=/var/lib/edgefleet-agent
config=/etc/edgefleet-agent/agent.toml

die() { echo "edgefleet-agent-entrypoint: error: $*" >&2; exit 2; }
check() {  # check NAME VALUE: refuse what a TOML basic string would need escaped
  case $2 in *[\"\\]*|*"
"*) die "$1 holds a quote, backslash or newline" ;; esac
}
quoted() { printf '"%s"' "$1"; }

if [ ! -f "$config" ]; then
  for name in EDGEFLEET_DEVICE_ID EDGEFLEET_FLEET EDGEFLEET_BROKER_URL EDGEFLEET_CONTROL_PLANE_URL; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || die "$name is not set (or mount $config)"
  done
  token_file=${EDGEFLEET_ENROLLMENT_TOKEN_FILE:-}
  token=
  if [ -n "$token_file" ] && [ -s "$token_file" ]; then token=$(cat "$token_file"); fi
  for name in EDGEFLEET_DEVICE_ID EDGEFLEET_FLEET EDGEFLEET_BROKER_URL \
      EDGEFLEET_CONTROL_PLANE_URL EDGEFLEET_ROOT_KEYS EDGEFLEET_TRUST EDGEFLEET_LOCAL_API \
      EDGEFLEET_LOCAL_GRPC; do
    eval "check $name \"\${$name:-}\""
  done
  check "$token_file" "$token"
  case ${EDGEFLEET_MEMORY_BUDGET_MB:-} in
    ''|*[!0-9]*) [ -z "${EDGEFLEET_MEMORY_BUDGET_MB:-}" ] \
        || die "EDGEFLEET_MEMORY_BUDGET_MB must be a whole number of MiB" ;;
  esac
  config=$data/agent.toml
  umask 077
  {
    echo "# Written by the container's entrypoint from its environment at each start."
    echo "device_id = $(quoted "$EDGEFLEET_DEVICE_ID")"
    echo "fleet = $(quoted "$EDGEFLEET_FLEET")"
    echo "broker_url = $(quoted "$EDGEFLEET_BROKER_URL")"
    echo "control_plane_url = $(quoted "$EDGEFLEET_CONTROL_PLANE_URL")"
    echo "data_dir = $(quoted "$data")"
    echo "root_keys = [$(quoted "${EDGEFLEET_ROOT_KEYS:-/etc/edgefleet-agent/root.pub}")]"
    echo "local_api = $(quoted "${EDGEFLEET_LOCAL_API:-127.0.0.1:8500}")"
    if [ -n "${EDGEFLEET_LOCAL_GRPC:-}" ]; then
      echo "local_grpc = $(quoted "$EDGEFLEET_LOCAL_GRPC")"
    fi
    if [ -n "${EDGEFLEET_TRUST:-}" ]; then echo "trust = $(quoted "$EDGEFLEET_TRUST")"; fi
    if [ -n "$token" ]; then echo "enrollment_token = $(quoted "$token")"; fi
    if [ -n "${EDGEFLEET_MEMORY_BUDGET_MB:-}" ]; then
      echo "memory_budget_mb = $EDGEFLEET_MEMORY_BUDGET_MB"
    fi
  } >"$config.tmp"
  mv "$config.tmp" "$config"
fi
[ $# -gt 0 ] || set -- run
case $1 in
  run|enroll) exec edge-agent "$@" --config "$config" ;;
  *) exec edge-agent "$@" ;;
esac
