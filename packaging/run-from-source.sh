#!/usr/bin/env bash
# Install fiotray from this source tree into .venv (with the Debian packages it
# needs) and start it. With no factory configured it shows the demo factory.
# Usage: packaging/run-from-source.sh [fiotray args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv for the venv; gnome-keyring (Secret Service) keeps sign-in secrets; the
# rest is what Qt's xcb platform needs; wireguard-tools and pkexec bring tunnels up.
APT_PACKAGES=(python3 python3-venv ca-certificates gnome-keyring
              libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 libx11-xcb1
              libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
              libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 fonts-dejavu-core
              wireguard-tools pkexec)
packaging/ensure-debs.sh "${APT_PACKAGES[@]}"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --disable-pip-version-check . >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
exec .venv/bin/fiotray "$@"
