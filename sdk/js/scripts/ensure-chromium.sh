#!/usr/bin/env bash
# Installs Debian's chromium (used by the SDK's end-to-end tests through
# playwright-core) only when /usr/bin/chromium is missing. Never downloads a
# Playwright browser build.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "ensure-chromium: installing Debian's chromium" >&2
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
test -x /usr/bin/chromium
