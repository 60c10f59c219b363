#!/usr/bin/env bash
# Installs Debian's chromium (used by the SDK's end-to-end tests through
# playwright-core) only when it is missing. Never downloads a Playwright
# browser build. CHROMIUM_PATH (as in e2e/harness.mjs) names another binary,
# which is then only checked.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ]; then
  if [ -x "$CHROMIUM_PATH" ]; then exit 0; fi
  echo "ensure-chromium: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file" >&2
  exit 1
fi
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure-chromium: /usr/bin/chromium is missing and installing it needs root, but sudo is not installed." >&2
    echo "  Run the tests as root, install sudo, install chromium yourself (apt-get install -y chromium)," >&2
    echo "  or set CHROMIUM_PATH to a Chromium binary." >&2
    exit 1
  fi
  # -n: fail rather than wait at a password prompt; env: sudo resets the
  # environment, so DEBIAN_FRONTEND must be passed through it.
  SUDO="sudo -n"
fi
echo "ensure-chromium: installing Debian's chromium" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
test -x /usr/bin/chromium
