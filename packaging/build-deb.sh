#!/usr/bin/env bash
# Build fiotray's two .debs:
#   fiotray (engineers' laptops): a slim PyInstaller bundle under /opt/fiotray plus the
#     helper (a bundle of its own under /usr/libexec/fiotray: no python3 from the system),
#     polkit action, desktop and autostart entries, icons, man page and copyright;
#   fiotray-server (the factory's VPN server): a bundle of the server alone, without Qt,
#     under /opt/fiotray-server, its systemd unit (installed disabled), its options file
#     /etc/default/fiotray-server, man page and copyright.
# Usage: packaging/build-deb.sh  -> build/fiotray_<version>_<arch>.deb
#                                   build/fiotray-server_<version>_<arch>.deb
# Build on Debian 12: the bundles need the build machine's glibc symbol versions, and the
# build fails when any of their binaries needs one newer than GLIBC_2.35 (Ubuntu 22.04's
# glibc, the oldest of the systems the packages are for; see packaging/README.md).
# Installs the Debian packages it needs (sudo when not root)
# and a build virtualenv in build/venv. Prints the packages' figures at the end (the
# server's prefixed server_).
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
# Debian's own interpreter, not whatever python3 is first on PATH: the bundles carry the
# libpython it was built with (Debian 12's, built against glibc 2.36 but needing <= 2.35).
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
SERVER_DEB=$BUILD/fiotray-server_${VERSION}_${ARCH}.deb
# Default: whoever made the commit being packaged (fiotray is not a Foundries.io product,
# so no address of theirs); a checkout without git history needs FIOTRAY_MAINTAINER.
maintainer=${FIOTRAY_MAINTAINER:-$(git -C "$ROOT" log -1 --format='%an <%ae>' 2>/dev/null || true)}
if [[ -z $maintainer ]]; then
  echo "build-deb: set FIOTRAY_MAINTAINER=\"Name <mail>\" (no git history to take it from)" >&2
  exit 2
fi

# The newest glibc symbol version any binary of a bundle may need: Ubuntu 22.04's glibc.
MAX_GLIBC=2.35

bundle() {  # NAME [bundle_check.py options]: packaging/NAME.spec -> build/dist/NAME, checked
  local name=$1 t0
  shift
  echo "build-deb: bundling $name with PyInstaller" >&2
  t0=$(now_ms)
  "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$BUILD/dist" --workpath "$BUILD/pyinstaller" "packaging/$name.spec" >"$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
  t_bundle=$(secs $(($(now_ms) - t0)))
  "$VENV/bin/python" packaging/bundle_check.py --max-glibc "$MAX_GLIBC" "$@" "$BUILD/dist/$name" \
    | tee -a "$BUILD/bundle-check.log"
  # The bundle must start before it is packaged.
  if [ "$name" = fiotray-helper ]; then
    # No argument: its usage line and exit 2, having imported all its code (nothing as root).
    local out code=0
    out=$("$BUILD/dist/$name/$name" 2>&1) || code=$?
    [ "$code" -eq 2 ] && [[ $out == "fiotray-helper: usage: "* ]] \
      || { echo "build-deb: $name did not start: exit $code, $out" >&2; exit 1; }
  else
    "$BUILD/dist/$name/$name" --version >/dev/null
  fi
}

# dpkg-shlibdeps over the ELF files of build/deb/NAME (the bundles in opt/ and usr/libexec/):
# the Debian packages they link to, rewritten for every system the package is for (Debian 13
# and Ubuntu 24.04's t64 names as alternatives, floors Ubuntu 22.04 meets) and refused when
# a name is not checked (packaging/depends.py).
shlibs_of() {  # NAME
  local name=$1 out
  mkdir -p "$BUILD/deb/debian"
  printf 'Source: fiotray\n\nPackage: %s\nArchitecture: any\n' "$name" >"$BUILD/deb/debian/control"
  mapfile -t elves < <(cd "$BUILD/deb" && find "$name/opt" "$name/usr" -type f \
    -exec sh -c 'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
  out=$(cd "$BUILD/deb" && dpkg-shlibdeps -O "${elves[@]}" 2>"$log") || { cat "$log" >&2; exit 1; }
  rm -rf "$BUILD/deb/debian"
  "$VENV/bin/python" packaging/depends.py <<<"$out" || exit 1
}

# DEBIAN/control from a template, then the .deb: same times and owners whoever builds it,
# md5sums as debhelper writes them (`dpkg --verify` checks the installed files against them).
# Modes must be final before this (see the callers).
make_deb() {  # STAGE TEMPLATE DEB
  local stage=$1 template=$2 deb=$3 shlibs t0
  shlibs=$(shlibs_of "$(basename "$stage")") || exit 1
  shlibs=${shlibs//|/\\|}  # alternatives: the '|' must not end sed's s|||
  installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  grep -v '^#' "$template" \
    | sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@MAINTAINER@|$maintainer|" \
          -e "s|@INSTALLED_SIZE@|$installed_kb|" -e "s|@SHLIBS@|$shlibs|" >"$stage/DEBIAN/control"
  find "$stage" -path "$stage/DEBIAN" -prune -o -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
  t0=$(now_ms)
  rm -f "$deb"
  # --root-owner-group: root owns everything.
  dpkg-deb --root-owner-group -Zxz -z9 --build "$stage" "$deb" >/dev/null
  t_deb=$(secs $(($(now_ms) - t0)))
}

figures() {  # PREFIX DEB BUNDLE: sizes of the .deb, the installed tree and the bundle
  local prefix=$1 deb=$2 bundle=$3 files bundle_kb
  files=$(find "$bundle" -type f | wc -l)
  bundle_kb=$(du -sk "$bundle" | cut -f1)
  printf 'build-deb: %s\n' "$deb"
  awk -v p="$prefix" -v b="$(stat -c %s "$deb")" -v k="$installed_kb" -v bk="$bundle_kb" 'BEGIN {
    printf "figure: %sdeb_size_mb %.1f\n", p, b / 1e6
    printf "figure: %sinstalled_size_mb %.1f\n", p, k * 1024 / 1e6
    printf "figure: %sbundle_size_mb %.1f\n", p, bk * 1024 / 1e6 }'
  echo "figure: ${prefix}bundle_files $files"
  echo "figure: ${prefix}pyinstaller_s $t_bundle"
  echo "figure: ${prefix}dpkg_deb_s $t_deb"
}

# == fiotray, for engineers' laptops ==========================================================
rm -f "$BUILD/bundle-check.log"
# The privileged helper on an interpreter of its own (packaging/fiotray-helper.spec).
bundle fiotray-helper --no-qt
t_helper=$t_bundle
bundle fiotray

# -- the package's tree ----------------------------------------------------------------------
STAGE=$BUILD/deb/fiotray
rm -rf "$BUILD/deb"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin"
cp -a "$BUILD/dist/fiotray" "$STAGE/opt/fiotray"
ln -s ../../opt/fiotray/fiotray "$STAGE/usr/bin/fiotray"
# Helper, polkit action and the (inert) group rule, by the same code as a source install
# (python -m fiotray.helper.install), the helper being its bundle: /usr/libexec/fiotray/
# fiotray-helper (the polkit actions' exec.path) and its _internal/ beside it.
"$VENV/bin/python" -m fiotray.helper.install --package --group-rule \
  --helper-bundle "$BUILD/dist/fiotray-helper" --root "$STAGE" >/dev/null
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

chmod -R u+rwX,go+rX,go-w "$STAGE"
make_deb "$STAGE" packaging/debian/control.in "$DEB"
laptop_figures=$(figures "" "$DEB" "$BUILD/dist/fiotray")
laptop_figures+=$'\n'$(awk -v k="$(du -sk "$BUILD/dist/fiotray-helper" | cut -f1)" -v t="$t_helper" \
  'BEGIN { printf "figure: helper_bundle_size_mb %.1f\nfigure: helper_pyinstaller_s %s\n", k * 1024 / 1e6, t }')

# == fiotray-server, for the factory's VPN server =============================================
bundle fiotray-server --no-qt
SSTAGE=$BUILD/deb/fiotray-server
mkdir -p "$SSTAGE/DEBIAN" "$SSTAGE/opt" "$SSTAGE/usr/bin"
cp -a "$BUILD/dist/fiotray-server" "$SSTAGE/opt/fiotray-server"
ln -s ../../opt/fiotray-server/fiotray-server "$SSTAGE/usr/bin/fiotray-server"
install -D -m 644 packaging/debian/fiotray-server.service \
  "$SSTAGE/lib/systemd/system/fiotray-server.service"
install -D -m 600 packaging/debian/fiotray-server.default "$SSTAGE/etc/default/fiotray-server"
# Root-only places: the admin's creds, token and key (/etc/fiotray-server, as the README and
# the options file suggest) and the daemon's state. Shipped as directories so that dpkg
# owns them and sets their mode on every install and upgrade.
install -d "$SSTAGE/etc/fiotray-server" "$SSTAGE/var/lib/fiotray-server"
for script in postinst prerm postrm; do
  install -m 755 "packaging/debian/fiotray-server.$script" "$SSTAGE/DEBIAN/$script"
done
sshare=$SSTAGE/usr/share
install -d "$sshare/man/man8" "$sshare/doc/fiotray-server"
"$VENV/bin/python" packaging/manpage.py --server | gzip -9n >"$sshare/man/man8/fiotray-server.8.gz"
"$VENV/bin/python" packaging/copyright.py --server "$BUILD/dist/fiotray-server" \
  >"$sshare/doc/fiotray-server/copyright"
(cd "$SSTAGE" && find etc -type f -printf '/%p\n' | sort) >"$SSTAGE/DEBIAN/conffiles"
chmod -R u+rwX,go+rX,go-w "$SSTAGE"
# After the blanket modes above: the options file may name where credentials are.
chmod 600 "$SSTAGE/etc/default/fiotray-server"
chmod 700 "$SSTAGE/etc/fiotray-server" "$SSTAGE/var/lib/fiotray-server"
make_deb "$SSTAGE" packaging/debian/server-control.in "$SERVER_DEB"
server_figures=$(figures server_ "$SERVER_DEB" "$BUILD/dist/fiotray-server")

echo "$laptop_figures"
echo "$server_figures"
# The highest glibc symbol version any bundle needs (bundle_check.py's lines), as a figure.
glibc=$(grep -o 'GLIBC_[0-9.]*' "$BUILD/bundle-check.log" | sort -t_ -k2 -V | tail -n1)
echo "build-deb: highest glibc symbol version needed by the bundles: $glibc (limit GLIBC_$MAX_GLIBC)"
echo "figure: build_total_s $(secs $(($(now_ms) - start)))"
