#!/usr/bin/env bash
# Runs a command in a network namespace of its own whose only interface is
# loopback (127.0.0.1), for the end-to-end tests: Chromium's ICE agent
# gathers candidates on every interface of the machine and sends
# connectivity checks from them whatever candidates the page signals, so a
# candidate filter alone cannot keep WebRTC traffic on loopback; an
# interface that is not there can. Installs iproute2 (for `ip`) when it is
# missing. MESHRELAY_E2E_NETNS=0 runs the command as it is (the tests that
# check the links run on 127.0.0.1 then fail on a machine with other
# interfaces).
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: loopback-only.sh COMMAND [ARG...]" >&2
  exit 2
fi
if [ "${MESHRELAY_E2E_NETNS:-1}" = "0" ]; then
  echo "loopback-only: MESHRELAY_E2E_NETNS=0: no namespace; WebRTC may use every interface" >&2
  exec "$@"
fi
if [ "$(id -u)" = "0" ]; then
  if ! command -v ip >/dev/null 2>&1; then
    echo "loopback-only: installing iproute2 (for ip)" >&2
    env DEBIAN_FRONTEND=noninteractive apt-get update
    env DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2
  fi
  unshare=(unshare --net)
else
  # An unprivileged user namespace gives the capability to bring lo up.
  unshare=(unshare --net --map-root-user)
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "loopback-only: ip (iproute2) is missing: apt-get install -y iproute2, or run as root" >&2
  exit 1
fi
if ! "${unshare[@]}" true 2>/dev/null; then
  echo "loopback-only: cannot create a network namespace (${unshare[*]}): run as root," >&2
  echo "  allow unprivileged user namespaces, or set MESHRELAY_E2E_NETNS=0 to run without one" >&2
  exit 1
fi
exec "${unshare[@]}" bash -c 'ip link set lo up && exec "$@"' loopback-only "$@"
