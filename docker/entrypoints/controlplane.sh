#!/bin/sh
# The control-plane image's entrypoint: secrets from files (Docker and Compose secrets,
# volumes) instead of the environment, then the command (default: the server).
#   EDGEFLEET_ADMIN_TOKEN_FILE -> EDGEFLEET_ADMIN_TOKEN (the bootstrap admin API token)
#   EDGECTL_TOKEN_FILE         -> EDGECTL_TOKEN         (for edgectl in this image)
set -eu
from_file() {  # from_file VAR: VAR from the file named by VAR_FILE, unless VAR is set
  eval "file=\${$1_FILE:-} value=\${$1:-}"
  if [ -z "$value" ] && [ -n "$file" ]; then
    [ -r "$file" ] || { echo "edgefleet-entrypoint: error: $1_FILE: cannot read $file" >&2; exit 2; }
    eval "export $1=\$(cat \"\$file\")"
  fi
  unset "$1_FILE"
}
from_file EDGEFLEET_ADMIN_TOKEN
from_file EDGECTL_TOKEN
exec "$@"
