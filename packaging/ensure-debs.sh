#!/usr/bin/env bash
# Install the named Debian packages that are not installed yet (sudo when not root).
# Usage: packaging/ensure-debs.sh PKG...
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing ${missing[*]}" >&2
$SUDO apt-get update -qq
# Installing a daemon (openssh-server) must not start it on this machine: tests start
# their own, in their own network namespaces. policy-rc.d 101 = "do not start".
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  guard=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$guard" >/dev/null
  $SUDO chmod 755 "$guard"
fi
status=0
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
[ -z "$guard" ] || $SUDO rm -f "$guard"
exit $status
