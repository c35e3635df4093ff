#!/usr/bin/env bash
# Fresh-system install test of fiotray's .debs (run as root; CI runs it through
# tests/packaging/test_deb_install.py).
#
# Usage: packaging/test-install.sh [--suite SUITE] build/fiotray_<version>_<arch>.deb
#        packaging/test-install.sh [--suite SUITE] build/fiotray-server_<version>_<arch>.deb
# SUITE: bookworm (Debian 12, the default) or trixie (Debian 13); the packages are built on
# Debian 12 and tested on both.
#
# 1. debootstrap a minimal Debian SUITE (minbase) into a temporary directory (the base is
#    cached under build/cache/, keyed by suite, arch, mirror and debootstrap version, for 7
#    days),
# 2. in it: apt-get install --no-install-recommends the .deb (its Depends only; for the
#    server, systemd first, as a real server has it; for fiotray, netcat-openbsd, the test's
#    own client of the tray app's socket: the system has no python3),
# 3. then, in new mount, PID and network namespaces (everything started there dies with
#    them; /proc and /sys are mounted there only):
#    fiotray: fiotray --version; every binary of the bundle resolves its libraries; no
#    python3 on the system, and the helper (a bundle of its own) answering status as root;
#    its files root's and written by root only; the chroot's own system D-Bus and
#    polkitd; the polkit actions registered; pkexec refused before, and allowed by the
#    shipped group rule after, it is enabled; the helper refusing a hostile config (PostUp)
#    with exit 2 and one line, creating nothing; status answered through pkexec; the tray
#    app (offscreen) answering on its single-instance socket and quitting with 0 on `quit`;
#    the CLI on the demo factory;
#    fiotray-server: --version and --help; every binary resolves its libraries; no Qt file;
#    the unit installed and not enabled, and systemd-analyze verify content with it; the
#    options file 0600 and a conffile, the state and config directories 0700; peers list on
#    a new state dir; status on a missing interface failing with one line; the unit's
#    command with the options as shipped failing at once; a reinstall keeping the admin's
#    options; remove keeping configuration and state,
# 4. apt-get purge (the server's after `systemctl enable` and with files in its
#    directories): every file the package installed or made is gone, and the system's file
#    list is the same as before the install.
# Prints "ok: ..." per check and "figure: ..." lines; exits non-zero at the first failure.
set -euo pipefail
usage="usage: $0 [--suite bookworm|trixie] PATH.deb (fiotray or fiotray-server)"
SUITE=bookworm
if [ "${1:-}" = --suite ] && [ $# -ge 2 ]; then
  SUITE=$2
  shift 2
fi
case $SUITE in
  bookworm | trixie) ;;
  *) echo "$0: suite $SUITE: only bookworm (Debian 12) and trixie (Debian 13) are tested" >&2; exit 2 ;;
esac
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root (debootstrap, chroot, namespaces)" >&2; exit 2; }
DEB=$(readlink -f "$1")
PKG=$(dpkg-deb -f "$DEB" Package)
case $PKG in
  # netcat-openbsd: the test talks to the tray app over its socket with nc -U (no python3).
  fiotray) RUN=run EXTRA=(netcat-openbsd) ;;
  # A VPN server runs systemd: the unit is checked with its tools (minbase has no init).
  fiotray-server) RUN=run-server EXTRA=(systemd) ;;
  *) echo "$0: $DEB is neither fiotray nor fiotray-server" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
# debian-archive-keyring: Debian 12's has trixie's keys from 2023.3+deb12u1 on; an older
# one installed is upgraded (ensure-debs.sh installs only what is missing).
packaging/ensure-debs.sh debootstrap debian-archive-keyring
if [ ! -e "/usr/share/keyrings/debian-archive-$SUITE-stable.gpg" ]; then
  echo "$0: no $SUITE key in debian-archive-keyring: upgrading it" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debian-archive-keyring >/dev/null
  [ -e "/usr/share/keyrings/debian-archive-$SUITE-stable.gpg" ] \
    || { echo "$0: debian-archive-keyring has no key for $SUITE: cannot debootstrap it" >&2; exit 1; }
fi

ARCH=$(dpkg --print-architecture)
# The host's own Debian mirror (deb822 or one-line sources), as apt on this machine uses it.
MIRROR=$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
          | awk '$1 == "URIs:" || $1 == "deb" { print $2 }' | grep -v security | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${FIOTRAY_TEST_CACHE:-$ROOT/build/cache}
mkdir -p "$CACHE/apt-archives/partial"

WORK=$(mktemp -d /var/tmp/fiotray-install-test.XXXXXX)
CHROOT=$WORK/root
cleanup() {
  # Mounts live in the test's own mount namespaces and vanish with them; this is a guard
  # against a kernel or unshare that did not give us one. Never rm -rf across a mount.
  if grep -q " $CHROOT/" /proc/self/mountinfo; then
    grep " $CHROOT/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r umount -l
  fi
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
start=$(now_ms)

# -- 1. the base system --------------------------------------------------------------------------
key=$(printf '%s %s %s minbase %s' "$SUITE" "$ARCH" "$MIRROR" \
  "$(dpkg-query -W -f='${Version}' debootstrap)" | sha256sum | cut -c1-16)
base=$CACHE/debootstrap-$SUITE-$ARCH-$key.tar
t0=$(now_ms)
if [ -f "$base" ] && [ -n "$(find "$base" -mtime -7)" ]; then
  mkdir "$CHROOT"
  tar -C "$CHROOT" -xpf "$base"
  echo "ok: base system from the cache ($(basename "$base"))"
else
  rm -f "$CACHE"/debootstrap-"$SUITE"-"$ARCH"-*.tar
  debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$CHROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  # Written under a temporary name and renamed: a cut-short run never leaves a half tarball.
  tar -C "$CHROOT" -cpf "$base.tmp.$$" . && mv "$base.tmp.$$" "$base"
  echo "ok: debootstrap --variant=minbase $SUITE from $MIRROR"
fi
echo "figure: base_system_s $(secs $(($(now_ms) - t0)))"
libc6=$(chroot "$CHROOT" dpkg-query -W -f='${Version}' libc6)
echo "ok: system: $(. "$CHROOT/etc/os-release" && echo "$PRETTY_NAME"), libc6 $libc6"

cp "$DEB" "$CHROOT/root/$PKG.deb"
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
cp packaging/test-install-inside.sh "$CHROOT/root/inside.sh"

# In the chroot, in its own mount and PID namespaces: the apt cache and /proc are mounted
# there only, and whatever a package's scripts start dies with the namespace.
in_chroot() {  # [--net] SCRIPT ARGS...: run the inside script
  local net=()
  if [ "$1" = --net ]; then net=(--net); shift; fi
  unshare --mount --pid --fork --propagation private "${net[@]}" --mount-proc="$CHROOT/proc" \
    /bin/sh -c 'mount --bind "$1" "$2/var/cache/apt/archives" && shift 2 && exec chroot "$@"' \
    sh "$CACHE/apt-archives" "$CHROOT" "$CHROOT" \
    /bin/sh -c '/bin/bash /root/inside.sh "$@"; exit $?' sh "$@"
}
# (Not bash as the namespace's PID 1: pkexec refuses to serve a process whose parent is
# PID 1, "dead parents", so the script must be a child of the namespace's init.)

# -- 2. install ---------------------------------------------------------------------------------
t0=$(now_ms)
in_chroot install "$PKG" "${EXTRA[@]}"
echo "figure: apt_install_s $(secs $(($(now_ms) - t0)))"

# -- 3. and 4. run it, then purge (no network: a new, empty network namespace) ---------------
t0=$(now_ms)
in_chroot --net "$RUN"
echo "figure: run_and_purge_s $(secs $(($(now_ms) - t0)))"
echo "figure: install_test_total_s $(secs $(($(now_ms) - start)))"
echo "ok: fresh-system install test passed"
