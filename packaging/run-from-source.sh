#!/usr/bin/env bash
# Install fiotray from this source tree into .venv (with the Debian packages it
# needs) and start it. With no factory configured it shows the demo factory.
# Usage: packaging/run-from-source.sh [fiotray args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv for the venv; gnome-keyring (Secret Service) keeps sign-in secrets.
APT_PACKAGES=(python3 python3-venv ca-certificates gnome-keyring)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e . >&2
exec .venv/bin/fiotray "$@"
