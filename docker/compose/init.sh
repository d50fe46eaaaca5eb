#!/bin/sh
# Compose's one-shot `init` service (control-plane image, as root). Idempotent: what
# exists is kept, so `docker compose up` again changes nothing but the revocation list.
#   /operator  root.key, release.key (+ .pub), admin.token   (edgectl's; not the server's)
#   /cp-keys   control-plane.key, device-ca.key, root.pub, trust.json, admin.token
#   /public    root.pub, trust.json                          (what agents pin)
#   /etc/mosquitto/edgefleet  broker-config's output (TLS, ACL, persistence in /var/lib/mosquitto)
#   /enrollment (made for enroll.sh)
set -eu
umask 077
if [ ! -s /operator/trust.json ]; then
  edgectl keys create --role root --out /operator >/dev/null
  edgectl keys create --role release --out /operator >/dev/null
  edgectl keys create --role control-plane --out /cp-keys >/dev/null
  edgectl keys create --role device-ca --out /cp-keys >/dev/null
  edgectl trust init --root-key /operator/root.key --release /operator/release.pub \
    --control-plane /cp-keys/control-plane.pub --device-ca /cp-keys/device-ca.pub \
    --out /operator/trust.json.tmp >/dev/null
  mv /operator/trust.json.tmp /operator/trust.json
  echo "init: made the root, release, control-plane and device-CA keys and trust document v1"
fi
if [ ! -s /operator/admin.token ]; then
  python3 -c 'import secrets; print("efk_" + secrets.token_urlsafe(32))' >/operator/admin.token
  echo "init: made the admin API token (/operator/admin.token)"
fi
cp /operator/root.pub /operator/trust.json /operator/admin.token /cp-keys/
install -d -m 0755 /public
install -m 0644 /operator/root.pub /operator/trust.json /public/
chown -R 10001:10001 /operator /cp-keys  # the control plane's and edgectl's user

umask 022  # broker-config makes its keys 0600 itself; the rest is for Mosquitto to read
set -- --out /etc/mosquitto/edgefleet --database-url "$DATABASE_URL" --device-ca-key /cp-keys/device-ca.key
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
install -d -o 10001 -g 10001 -m 0700 /enrollment  # enroll.sh writes, agents read
