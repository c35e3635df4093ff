#!/usr/bin/env bash
# Install fiotray from this source tree into .venv (with the Debian packages it
# needs) and start it. With no factory configured it shows the demo factory.
# Usage: packaging/run-from-source.sh [fiotray args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv for the venv; gnome-keyring (Secret Service) keeps sign-in secrets.
APT_PACKAGES=(python3 python3-venv ca-certificates gnome-keyring)
packaging/ensure-debs.sh "${APT_PACKAGES[@]}"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --disable-pip-version-check . >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
exec .venv/bin/fiotray "$@"
