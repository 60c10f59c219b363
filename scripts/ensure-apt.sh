#!/usr/bin/env bash
# ensure-apt.sh BINARY PACKAGE [apt-get install options...]
# Installs Debian's PACKAGE with apt-get only when BINARY (an absolute path)
# is missing, as root or through `sudo -n`; fails clearly when neither can.
# The test command uses it for what its tests run for real (chromium,
# prometheus's promtool).
set -euo pipefail
binary=$1
package=$2
shift 2
if [ -x "$binary" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure-apt: $binary is missing and installing $package needs root, but sudo is not installed." >&2
    echo "  Run the tests as root, install sudo, or install it yourself (apt-get install -y $package)." >&2
    exit 1
  fi
  # -n: fail rather than wait at a password prompt; env: sudo resets the
  # environment, so DEBIAN_FRONTEND must be passed through it.
  sudo="sudo -n"
fi
echo "ensure-apt: installing Debian's $package (for $binary)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" "$package"
test -x "$binary"
