#!/usr/bin/env bash
# Install what the tests need on Debian 12 (apt packages, a venv with the
# project and its test extras) and run the whole suite. Run as root (CI does)
# or with sudo for the apt step. Usage: tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests drive: Secret Service (gnome-keyring on a private D-Bus).
APT_PACKAGES=(python3 python3-venv python3-pip dbus dbus-x11 gnome-keyring libsecret-tools
              ca-certificates procps)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "tests/run.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check fiotray tests bench
# KILL, not TERM: a test stuck in a nested event loop ignores TERM (see pytest-timeout).
exec timeout -s KILL 1800 .venv/bin/python -m pytest -p no:cacheprovider "$@"
