#!/usr/bin/env bash
# Build fiotray's .deb: a slim PyInstaller bundle under /opt/fiotray plus the helper, polkit
# action, desktop and autostart entries, icons, man page and copyright.
# Usage: packaging/build-deb.sh            -> build/fiotray_<version>_<arch>.deb
# Build on the oldest distro the package is for (Debian 12: the bundle needs the build
# machine's glibc or newer). Installs the Debian packages it needs (sudo when not root)
# and a build virtualenv in build/venv. Prints the package's figures at the end.
# Env: FIOTRAY_MAINTAINER="Name <mail>" for the control file's Maintainer field.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Milliseconds since the epoch; awk (always there, unlike bc) does the arithmetic.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
start=$(now_ms)

# libpython3.11: PyInstaller bundles the shared libpython; binutils: strip and readelf;
# dpkg-dev: dpkg-shlibdeps; desktop-file-utils: desktop-file-validate.
packaging/ensure-debs.sh python3 python3-venv libpython3.11 binutils dpkg-dev \
  desktop-file-utils

BUILD=$ROOT/build
VENV=$BUILD/venv
PY=/usr/bin/python3
# Debian's own interpreter, not whatever python3 is first on PATH: the bundle carries the
# libpython it was built with, and the helper's precompiled cache must match /usr/bin/python3.
if [ -x "$VENV/bin/python" ] && [ "$(readlink -f "$VENV/bin/python")" != "$(readlink -f "$PY")" ]; then
  rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check '.[package]' >"$log" 2>&1; then
  cat "$log" >&2; exit 1
fi

# Reproducible dates (man page, file times) from the last commit when there is one.
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}

VERSION=$("$VENV/bin/python" -c 'import fiotray; print(fiotray.__version__)')-1
ARCH=$(dpkg --print-architecture)
DEB=$BUILD/fiotray_${VERSION}_${ARCH}.deb

echo "build-deb: bundling with PyInstaller" >&2
t0=$(now_ms)
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$BUILD/dist" --workpath "$BUILD/pyinstaller" packaging/fiotray.spec >"$log" 2>&1 \
  || { cat "$log" >&2; exit 1; }
t_bundle=$(secs $(($(now_ms) - t0)))
"$VENV/bin/python" packaging/bundle_check.py "$BUILD/dist/fiotray"
# The bundle must start before it is packaged.
"$BUILD/dist/fiotray/fiotray" --version >/dev/null

# -- the package's tree ----------------------------------------------------------------------
STAGE=$BUILD/deb/fiotray
rm -rf "$BUILD/deb"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin"
cp -a "$BUILD/dist/fiotray" "$STAGE/opt/fiotray"
ln -s ../../opt/fiotray/fiotray "$STAGE/usr/bin/fiotray"
# Helper, polkit action and the (inert) group rule: the same code and layout as a source
# install (python -m fiotray.helper.install), so the two cannot drift apart.
"$VENV/bin/python" -m fiotray.helper.install --package --group-rule --root "$STAGE" >/dev/null
share=$STAGE/usr/share
install -D -m 644 resources/fiotray.desktop "$share/applications/fiotray.desktop"
# The system-wide autostart entry is the one fiotray itself writes (hidden, delayed), so the
# settings toggle can tell it apart and hide it (see fiotray/core/autostart.py).
mkdir -p "$STAGE/etc/xdg/autostart"
"$VENV/bin/python" -c 'import sys; from fiotray.core.autostart import entry_text
sys.stdout.write(entry_text(["fiotray"]))' >"$STAGE/etc/xdg/autostart/fiotray.desktop"
desktop-file-validate "$share/applications/fiotray.desktop" "$STAGE/etc/xdg/autostart/fiotray.desktop"
for kind in scalable symbolic; do
  for sub in apps status; do
    install -d "$share/icons/hicolor/$kind/$sub"
    install -m 644 resources/icons/hicolor/$kind/$sub/*.svg "$share/icons/hicolor/$kind/$sub/"
  done
done
install -d "$share/man/man1" "$share/doc/fiotray"
"$VENV/bin/python" packaging/manpage.py | gzip -9n >"$share/man/man1/fiotray.1.gz"
"$VENV/bin/python" packaging/copyright.py >"$share/doc/fiotray/copyright"
# Files in /etc are conffiles: kept on remove, deleted on purge.
(cd "$STAGE" && find etc -type f -printf '/%p\n' | sort) >"$STAGE/DEBIAN/conffiles"

# -- control: Depends from what the binaries link to -----------------------------------------
mkdir -p "$BUILD/deb/debian"
printf 'Source: fiotray\n\nPackage: fiotray\nArchitecture: any\n' >"$BUILD/deb/debian/control"
mapfile -t elves < <(cd "$BUILD/deb" && find fiotray/opt -type f \
  -exec sh -c 'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
shlibs=$(cd "$BUILD/deb" && dpkg-shlibdeps -O "${elves[@]}" 2>"$log") || { cat "$log" >&2; exit 1; }
shlibs=${shlibs#shlibs:Depends=}
rm -rf "$BUILD/deb/debian"
installed_kb=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
# Default: whoever made the commit being packaged (fiotray is not a Foundries.io product,
# so no address of theirs); a checkout without git history needs FIOTRAY_MAINTAINER.
maintainer=${FIOTRAY_MAINTAINER:-$(git -C "$ROOT" log -1 --format='%an <%ae>' 2>/dev/null || true)}
if [[ -z $maintainer ]]; then
  echo "build-deb: set FIOTRAY_MAINTAINER=\"Name <mail>\" (no git history to take it from)" >&2
  exit 2
fi
grep -v '^#' packaging/debian/control.in \
  | sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@MAINTAINER@|$maintainer|" \
        -e "s|@INSTALLED_SIZE@|$installed_kb|" -e "s|@SHLIBS@|$shlibs|" >"$STAGE/DEBIAN/control"

# Same times and modes whoever builds it: root owns everything (--root-owner-group).
find "$STAGE" -path "$STAGE/DEBIAN" -prune -o -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
chmod -R u+rwX,go+rX,go-w "$STAGE"
# md5sums, as debhelper writes them: lets `dpkg --verify fiotray` check the installed files.
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
t0=$(now_ms)
rm -f "$DEB"
dpkg-deb --root-owner-group -Zxz -z9 --build "$STAGE" "$DEB" >/dev/null
t_deb=$(secs $(($(now_ms) - t0)))
total=$(secs $(($(now_ms) - start)))

deb_bytes=$(stat -c %s "$DEB")
printf 'build-deb: %s\n' "$DEB"
awk -v b="$deb_bytes" -v k="$installed_kb" 'BEGIN {
  printf "figure: deb_size_mb %.1f\nfigure: installed_size_mb %.1f\n", b / 1e6, k * 1024 / 1e6 }'
echo "figure: pyinstaller_s $t_bundle"
echo "figure: dpkg_deb_s $t_deb"
echo "figure: build_total_s $total"
