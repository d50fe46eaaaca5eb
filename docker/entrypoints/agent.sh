#!/bin/sh
# The agent container's entrypoint. With /etc/edgefleet-agent/agent.toml mounted, it is
# used as it is. Otherwise agent.toml is written into the data volume from:
#   EDGEFLEET_DEVICE_ID, EDGEFLEET_FLEET, EDGEFLEET_BROKER_URL, EDGEFLEET_CONTROL_PLANE_URL
#   EDGEFLEET_ROOT_KEYS     (default /etc/edgefleet-agent/root.pub)
#   EDGEFLEET_TRUST         (optional: the provisioning trust document)
#   EDGEFLEET_ENROLLMENT_TOKEN_FILE (optional: a one-time token, used while not enrolled)
#   EDGEFLEET_LOCAL_API     (default 127.0.0.1:8500: loopback, the API has no auth)
# Then: edge-agent run|enroll ... --config <that file> (default: run); other commands as given.
set -eu
data=/var/lib/edgefleet-agent
config=/etc/edgefleet-agent/agent.toml

die() { echo "edgefleet-agent-entrypoint: error: $*" >&2; exit 2; }
quoted() {  # a TOML basic string; refuse what would need escaping
  case $1 in *[\"\\]*|*"
"*) die "$2 holds a quote, backslash or newline" ;; esac
  printf '"%s"' "$1"
}

if [ ! -f "$config" ]; then
  for name in EDGEFLEET_DEVICE_ID EDGEFLEET_FLEET EDGEFLEET_BROKER_URL EDGEFLEET_CONTROL_PLANE_URL; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || die "$name is not set (or mount $config)"
  done
  config=$data/agent.toml
  umask 077
  {
    echo "# Written by the container's entrypoint from its environment at each start."
    echo "device_id = $(quoted "$EDGEFLEET_DEVICE_ID" EDGEFLEET_DEVICE_ID)"
    echo "fleet = $(quoted "$EDGEFLEET_FLEET" EDGEFLEET_FLEET)"
    echo "broker_url = $(quoted "$EDGEFLEET_BROKER_URL" EDGEFLEET_BROKER_URL)"
    echo "control_plane_url = $(quoted "$EDGEFLEET_CONTROL_PLANE_URL" EDGEFLEET_CONTROL_PLANE_URL)"
    echo "data_dir = $(quoted "$data" data)"
    echo "root_keys = [$(quoted "${EDGEFLEET_ROOT_KEYS:-/etc/edgefleet-agent/root.pub}" EDGEFLEET_ROOT_KEYS)]"
    echo "local_api = $(quoted "${EDGEFLEET_LOCAL_API:-127.0.0.1:8500}" EDGEFLEET_LOCAL_API)"
    if [ -n "${EDGEFLEET_TRUST:-}" ]; then
      echo "trust = $(quoted "$EDGEFLEET_TRUST" EDGEFLEET_TRUST)"
    fi
    token_file=${EDGEFLEET_ENROLLMENT_TOKEN_FILE:-}
    if [ -n "$token_file" ] && [ -s "$token_file" ]; then
      echo "enrollment_token = $(quoted "$(cat "$token_file")" "$token_file")"
    fi
  } >"$config.tmp"
  mv "$config.tmp" "$config"
fi
[ $# -gt 0 ] || set -- run
case $1 in
  run|enroll) exec edge-agent "$@" --config "$config" ;;
  *) exec edge-agent "$@" ;;
esac
