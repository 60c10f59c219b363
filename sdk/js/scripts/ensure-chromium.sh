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
exec bash "$(dirname "$0")/../../../scripts/ensure-apt.sh" /usr/bin/chromium chromium
