#!/usr/bin/env bash
# Install what the tests need on Debian 12 (apt packages, a venv with the
# project and its test extras) and run the whole suite. Run as root (CI does)
# or with sudo for the apt step. Usage: tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests drive: Secret Service (gnome-keyring on a private D-Bus).
APT_PACKAGES=(python3 python3-venv python3-pip dbus dbus-x11 gnome-keyring libsecret-tools
              ca-certificates procps
              wireguard-tools wireguard-go iproute2 iptables iputils-ping openssh-server openssh-client
              polkitd pkexec libxml2-utils
              xvfb openbox trayer xdotool x11-utils imagemagick xterm
              libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 libx11-xcb1
              libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
              libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 fonts-dejavu-core
              # tests/packaging: packaging/build-deb.sh and packaging/test-install.sh (which
              # also install these themselves when run on their own).
              libpython3.11 binutils dpkg-dev desktop-file-utils debootstrap
              debian-archive-keyring)

packaging/ensure-debs.sh "${APT_PACKAGES[@]}"

# Debian's own python3 by default: tests run fiotray as an unprivileged user too, who
# cannot reach an interpreter under /root (pyenv and the like).
if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
if [ -x .venv/bin/python ] && [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$(command -v "$PYTHON")")" ]; then
  echo "tests/run.sh: rebuilding .venv for $PYTHON" >&2
  rm -rf .venv
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,mcp]'

.venv/bin/ruff check fiotray tests bench packaging
# KILL, not TERM: a test stuck in a nested event loop ignores TERM (see pytest-timeout).
exec timeout -s KILL 1800 .venv/bin/python -m pytest -p no:cacheprovider "$@"
