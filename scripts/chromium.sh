#!/usr/bin/env bash
# Make sure Debian's Chromium is installed (for the browser tests, tests/browser, which
# drive /usr/bin/chromium with Playwright; Playwright never downloads a browser here).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || {
  echo "/usr/bin/chromium does not run (apt-get install chromium)" >&2
  exit 1
}
