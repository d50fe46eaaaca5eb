#!/bin/sh
# Compose's one-shot `init` service (control-plane image, as root). Idempotent: each key,
# document and token is made once (an interrupted first run picks up where it stopped),
# so `docker compose up` again changes nothing but the revocation list.
#   /root-key   root.key, root.pub          (only this service mounts it)
#   /operator   release.key (+ .pub), trust.json, admin.token  (the edgectl service's)
#   /admin      admin.token                 (the enroll job's)
#   /cp-keys    control-plane.key, device-ca.key, root.pub, trust.json, admin.token
#   /public     root.pub, trust.json        (what agents pin)
#   /etc/mosquitto/edgefleet  broker-config's output (TLS, ACL, persistence in /var/lib/mosquitto)
#   /enrollment/<agent>       made for enroll.sh; each agent mounts only its own
set -eu
umask 077
made=
key() {  # key ROLE DIR: a key pair, unless made already
  [ -s "$2/$1.key" ] || { edgectl keys create --role "$1" --out "$2" >/dev/null; made=1; }
}
key root /root-key
key release /operator
key control-plane /cp-keys
key device-ca /cp-keys
if [ ! -s /operator/trust.json ]; then
  edgectl trust init --root-key /root-key/root.key --release /operator/release.pub \
    --control-plane /cp-keys/control-plane.pub --device-ca /cp-keys/device-ca.pub \
    --out /operator/trust.json.tmp >/dev/null
  mv /operator/trust.json.tmp /operator/trust.json
  made=1
fi
[ -z "$made" ] || echo "init: made the root, release, control-plane and device-CA keys and trust document v1"
if [ ! -s /operator/admin.token ]; then
  python3 -c 'import secrets; print("efk_" + secrets.token_urlsafe(32))' >/operator/admin.token.tmp
  mv /operator/admin.token.tmp /operator/admin.token
  echo "init: made the admin API token (/operator/admin.token)"
fi
cp /root-key/root.pub /operator/trust.json /operator/admin.token /cp-keys/
cp /operator/admin.token /admin/
install -d -m 0755 /public
install -m 0644 /root-key/root.pub /operator/trust.json /public/
chown -R 10001:10001 /operator /admin /cp-keys  # the control plane's and edgectl's user

umask 022  # broker-config makes its keys 0600 itself; the rest is for Mosquitto to read
# DATABASE_URL (for the revocation list) comes from the environment, not the command line
set -- --out /etc/mosquitto/edgefleet --device-ca-key /cp-keys/device-ca.key
if [ -s /etc/mosquitto/edgefleet/mosquitto.conf ]; then
  edgefleet-controlplane broker-config "$@" --crl-only >/dev/null
else
  edgefleet-controlplane broker-config "$@" --host mosquitto --host localhost \
    --identity _edgefleet-cp-1 --identity _edgefleet-cp-2 \
    --broker-user 10002 --persistence /var/lib/mosquitto >/dev/null
  chown 10001:10001 /etc/mosquitto/edgefleet/_edgefleet-cp-*.key
  echo "init: wrote the broker's TLS and ACL configuration"
fi
chmod 0755 /etc/mosquitto/edgefleet
for dir in /enrollment/*/; do  # enroll.sh writes, the agent reads
  chown 10001:10001 "$dir" && chmod 0700 "$dir"
done
