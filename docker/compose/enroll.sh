#!/bin/sh
# Compose's one-shot `enroll` service: a one-time enrollment token for each agent named
# in $AGENTS that has none yet, in /enrollment/<id>/token: that agent's own volume, read
# at its first start (once enrolled, its identity lives in its data volume and the token
# is spent).
set -eu
umask 077
for id in $AGENTS; do
  [ -s "/enrollment/$id/token" ] && continue
  tries=0
  until answer=$(edgectl devices enroll "$id" --fleet "$FLEET" --json 2>/tmp/enroll.err); do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "enroll: $id: $(cat /tmp/enroll.err)" >&2; exit 1; }
    sleep 2
  done
  token=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  printf '%s\n' "$token" >"/enrollment/$id/token.tmp"
  mv "/enrollment/$id/token.tmp" "/enrollment/$id/token"
  echo "enroll: $id may enroll into fleet $FLEET"
done
