#!/bin/bash
# The part of packaging/test-install.sh that runs inside the fresh chroot (as root, PID 1 of
# its own PID namespace).
# Usage: inside.sh install PKG [EXTRA...]   install /root/PKG.deb (EXTRA: packages a real
#                                           system of its kind has, installed before it)
#        inside.sh run                      the checks of fiotray (the laptop package)
#        inside.sh run-server               the checks of fiotray-server
set -euo pipefail
export LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

STATE=/root/fiotray-test
TESTER=fiotray-tester
HELPER=/usr/libexec/fiotray/fiotray-helper

# Every path on the system but the kernel's, runtime, temporary, log, cache and package
# manager state and root's home (where this test keeps its notes).
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \
    -o -path /var/lib/dpkg -o -path /root \) -prune -o -print | sort
}

# dpkg -L PKG with each path's directory resolved: on a merged-/usr system the package's
# /lib/systemd/system/x is /usr/lib/systemd/system/x on disk, as the snapshot sees it.
package_paths() {  # PKG
  dpkg -L "$1" | while IFS= read -r path; do
    [ "$path" != /. ] || continue
    printf '%s/%s\n' "$(readlink -f "${path%/*}/")" "${path##*/}" | sed 's|^//|/|'
  done | sort -u
}

install_phase() {  # PKG [EXTRA...]
  local pkg=$1
  shift
  mkdir -p "$STATE"
  # No daemon a package installs may start here (there is no init anyway).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  # The package's Depends first (without Recommends), so that the snapshot taken next holds
  # everything but the package's own files.
  depends=$(dpkg-deb -f "/root/$pkg.deb" Depends)
  apt-get satisfy -y -qq --no-install-recommends "$depends" >"$STATE/apt-deps.log" 2>&1 \
    || { tail -20 "$STATE/apt-deps.log" >&2; fail "installing the Depends"; }
  ok "Depends installed without Recommends: $depends"
  if [ $# -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "$@" >"$STATE/apt-extra.log" 2>&1 \
      || { tail -20 "$STATE/apt-extra.log" >&2; fail "installing $*"; }
    ok "also installed, as a real system of this kind has it: $*"
  fi
  # The package's own maintainer scripts (fiotray has none) must start nothing by
  # themselves: no guard for its own install.
  rm -f /usr/sbin/policy-rc.d
  apt-get autoclean -qq  # the shared apt cache keeps only what the mirror still has
  snapshot >"$STATE/before"
  apt-get install -y -qq --no-install-recommends "/root/$pkg.deb" >"$STATE/apt.log" 2>&1 \
    || { tail -20 "$STATE/apt.log" >&2; fail "apt-get install $pkg.deb"; }
  dpkg-query -W -f='${Status}\n' "$pkg" | grep -qx 'install ok installed' || fail "not installed"
  ok "apt-get install --no-install-recommends $pkg.deb"
  dpkg --verify "$pkg" || fail "dpkg --verify $pkg: installed files differ from the package"
  snapshot >"$STATE/installed"
  package_paths "$pkg" >"$STATE/dpkg-L"
  # Installing added exactly the package's own paths (no maintainer script made others).
  comm -13 "$STATE/before" "$STATE/installed" >"$STATE/added"
  extra=$(comm -23 "$STATE/added" "$STATE/dpkg-L")
  [ -z "$extra" ] || fail "install created paths not in dpkg -L: $extra"
  ok "install added $(wc -l <"$STATE/added") paths, all listed by dpkg -L $pkg"
}

# apt-get purge PKG, then: nothing of it is left (DIR...: its own directories), the system's
# file list is the one from before the install, and nothing else is gone.
purge_phase() {  # PKG DIR...
  local pkg=$1
  shift
  apt-get purge -y -qq "$pkg" >"$STATE/purge.log" 2>&1 || { cat "$STATE/purge.log" >&2; fail "purge"; }
  ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed || fail "still installed"
  left=""
  while IFS= read -r path; do
    # Directories other packages share (/usr/bin, /opt, hicolor's) may stay; files may not.
    grep -qxF "$path" "$STATE/before" && continue
    if [ -e "$path" ] && { [ ! -d "$path" ] || [ -L "$path" ]; }; then left+="$path "; fi
  done <"$STATE/dpkg-L"
  for dir in "$@"; do
    [ ! -e "$dir" ] || left+="$dir "
  done
  [ -z "$left" ] || fail "purge left: $left"
  snapshot >"$STATE/after"
  added=$(comm -13 "$STATE/before" "$STATE/after")
  [ -z "$added" ] || fail "purge left paths that were not there before the install: $added"
  # dpkg removes a directory the package listed once it is empty and no other package owns
  # it: /opt, which the base system makes but no package owns, when the package was all in
  # it. That is the only kind of path allowed to be gone.
  gone=""
  while IFS= read -r path; do
    grep -qxF "$path" "$STATE/dpkg-L" || gone+="$path "
  done < <(comm -23 "$STATE/before" "$STATE/after")
  [ -z "$gone" ] || fail "purge removed paths that were not the package's: $gone"
  note=$(comm -23 "$STATE/before" "$STATE/after" | tr '\n' ' ')
  ok "apt-get purge removed all $(wc -l <"$STATE/dpkg-L") paths and left nothing${note:+ (dpkg also removed the empty, unowned: $note)}"
}

# Every ELF file under DIR finds its libraries (the bundle's own plus the Depends).
libraries_resolve() {  # DIR
  local missing="" out f
  while IFS= read -r -d '' f; do
    if head -c4 "$f" | grep -q ELF; then
      out=$(ldd "$f" 2>&1 || true)
      if grep -q 'not found' <<<"$out"; then missing+="$f: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"$'\n'; fi
    fi
  done < <(find "$1" -type f -print0)
  [ -z "$missing" ] || fail "libraries missing (Depends incomplete):"$'\n'"$missing"
  ok "every binary in $1 finds its libraries (bundle + Depends)"
}

as_tester() {  # exec as the test user, no fork (so $! is the program's own PID)
  setpriv --reuid="$TESTER" --regid="$TESTER" --init-groups \
    env -i HOME="/home/$TESTER" USER="$TESTER" LOGNAME="$TESTER" LANG=C.UTF-8 \
    PATH=/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$TESTER_UID" QT_QPA_PLATFORM=offscreen "$@"
}

ask() {  # ask the running tray app over its single-instance socket: ask COMMAND
  # (nc, not python3: the system has none.) The app answers one line and closes.
  local sock="/run/user/$TESTER_UID/fiotray-$TESTER_UID.sock" reply
  [ -S "$sock" ] || return 1
  reply=$(printf '%s\n' "$1" | as_tester timeout 5 nc -U "$sock") || return 1
  [ -n "$reply" ] || return 1
  printf '%s\n' "$reply"
}

# What root runs through pkexec: a one-folder bundle (never one file, which would unpack to a
# temporary directory), every file and directory of it, and every directory above it,
# root's and written by nobody else; no symlink; all of it the package's own files.
helper_files_root_only() {
  local dir=${HELPER%/*} bad path
  [ -f "$dir/_internal/base_library.zip" ] && ls "$dir"/_internal/libpython3*.so* >/dev/null 2>&1 \
    || fail "$dir is not a one-folder bundle (no _internal/ with libpython and the stdlib)"
  bad=$(find "$dir" \( ! -user root -o ! -group root -o -perm /022 -o -type l \) -printf '%M %u:%g %p\n')
  [ -z "$bad" ] || fail "helper files not root's alone:"$'\n'"$bad"
  path=$dir
  while [ "$path" != / ]; do
    path=${path%/*}; path=${path:-/}
    [ "$(stat -c '%U %G' "$path")" = "root root" ] && [ $(( 0$(stat -c %a "$path") & 022 )) -eq 0 ] \
      || fail "$path above the helper: $(stat -c '%A %U:%G' "$path")"
  done
  # Every file under the helper's directory is one dpkg installed and checks (dpkg --verify).
  extra=$(comm -23 <(find "$dir" -type f | sort) <(dpkg -L fiotray | sort))
  [ -z "$extra" ] || fail "files under $dir that are not the package's: $extra"
  ok "the helper's $(find "$dir" -type f | wc -l) files and the directories to / are root's, written by root only, no symlink, all the package's"
}

run_phase() {
  mount -t sysfs sysfs /sys  # this network namespace's view of /sys/class/net
  ip link set lo up  # the demo's fake factory API listens on 127.0.0.1
  DBUS_PID="" POLKIT_PID="" TRAY_PID=""
  stop_daemons() {
    for pid in $TRAY_PID $POLKIT_PID $DBUS_PID; do
      kill "$pid" 2>/dev/null || true
    done
  }
  trap stop_daemons EXIT

  # -- the bundle ---------------------------------------------------------------------------
  [ "$(fiotray --version)" = "fiotray $(dpkg-query -W -f='${Version}' fiotray | cut -d- -f1)" ] \
    || fail "fiotray --version: $(fiotray --version)"
  ok "fiotray --version: $(fiotray --version)"
  libraries_resolve /opt/fiotray
  libraries_resolve /usr/libexec/fiotray
  # The helper is a bundle with its own interpreter: the system has no python3 at all, and
  # the helper runs (as root, directly: status only reads) all the same.
  if command -v python3 >/dev/null || ls /usr/bin/python3* >/dev/null 2>&1; then
    fail "a python3 is on the system: $(ls /usr/bin/python3* 2>&1)"
  fi
  dpkg-query -W -f='${Status}' python3 2>/dev/null | grep -q 'install ok installed' \
    && fail "python3 is installed (the package must not need it)"
  [ "$("$HELPER" status)" = '{"version": 1, "interfaces": []}' ] \
    || fail "$HELPER status as root: $("$HELPER" status 2>&1)"
  ok "no python3 on the system, and $HELPER status as root answers: $("$HELPER" status)"
  helper_files_root_only
  zcat /usr/share/man/man1/fiotray.1.gz | grep -q '^\.TH FIOTRAY 1' || fail "man page"
  grep -qx 'Exec=fiotray --hidden' /etc/xdg/autostart/fiotray.desktop || fail "autostart Exec"
  grep -q '^X-GNOME-Autostart-Delay=' /etc/xdg/autostart/fiotray.desktop || fail "autostart delay"
  ok "man page, autostart entry (hidden, delayed)"

  # -- polkit on the chroot's own system bus ----------------------------------------------------
  mkdir -p /run/dbus
  rm -f /run/dbus/system_bus_socket
  DBUS_PID=$(dbus-daemon --system --fork --nopidfile --print-pid=1)
  /usr/lib/polkit-1/polkitd --no-debug >/root/polkitd.log 2>&1 &
  POLKIT_PID=$!
  for _ in $(seq 100); do pkaction >/dev/null 2>&1 && break; sleep 0.1; done
  for action in connect disconnect status; do
    pkaction --action-id "io.foundries.fiotray.$action" --verbose >"$STATE/pkaction" 2>&1 \
      || fail "pkaction io.foundries.fiotray.$action: $(cat "$STATE/pkaction")"
    grep -q "org.freedesktop.policykit.exec.path -> $HELPER" "$STATE/pkaction" \
      || fail "io.foundries.fiotray.$action does not name $HELPER"
  done
  ok "polkit actions io.foundries.fiotray.{connect,disconnect,status} registered for $HELPER"

  useradd --create-home --shell /bin/bash "$TESTER"
  TESTER_UID=$(id -u "$TESTER")
  install -d -m 700 -o "$TESTER" -g "$TESTER" "/run/user/$TESTER_UID"
  set +e
  as_tester pkexec --disable-internal-agent "$HELPER" status >/dev/null 2>"$STATE/err"
  code=$?
  set -e
  # No session, no agent: without the group rule polkit refuses (127), it never prompts.
  [ "$code" -eq 127 ] && grep -q 'Not authorized' "$STATE/err" \
    || fail "pkexec status without the group rule: exit $code $(cat "$STATE/err")"
  ok "pkexec refused without the group rule (exit 127: $(head -n1 "$STATE/err"))"

  # The shipped, inert group rule, enabled the way the README says.
  groupadd --system fiotray
  usermod --append --groups fiotray "$TESTER"
  cp /usr/share/fiotray/polkit/49-fiotray-group.rules /etc/polkit-1/rules.d/
  code=1
  for _ in $(seq 50); do  # polkitd reloads rules by itself (~1.5 s)
    set +e
    as_tester pkexec --disable-internal-agent "$HELPER" status >"$STATE/status" 2>"$STATE/err"
    code=$?
    set -e
    [ "$code" -eq 0 ] && break
    sleep 0.2
  done
  [ "$code" -eq 0 ] || fail "pkexec status with the group rule: exit $code $(cat "$STATE/err")"
  [ "$(cat "$STATE/status")" = '{"version": 1, "interfaces": []}' ] || fail "status JSON: $(cat "$STATE/status")"
  ok "status through pkexec with the shipped group rule: $(cat "$STATE/status")"
  # pkexec starts it with a cleared environment: what the caller sets for the PyInstaller
  # bootloader (its _PYI_ variables) or for Python reaches nothing.
  evil=/home/$TESTER/evil
  as_tester sh -c "mkdir -p $evil/fiotray && echo 'open(\"/tmp/evil-ran\", \"w\")' | tee $evil/sitecustomize.py >$evil/fiotray/__init__.py"
  as_tester env _PYI_ARCHIVE_FILE="$HELPER" _PYI_PARENT_PROCESS_LEVEL=1 \
    _PYI_APPLICATION_HOME_DIR="$evil" PYTHONPATH="$evil" PYTHONHOME="$evil" \
    PYTHONSTARTUP="$evil/sitecustomize.py" LD_LIBRARY_PATH="$evil" \
    pkexec --disable-internal-agent "$HELPER" status >"$STATE/status" 2>"$STATE/err" \
    || fail "pkexec status with a hostile environment: $(cat "$STATE/err")"
  [ "$(cat "$STATE/status")" = '{"version": 1, "interfaces": []}' ] && [ ! -e /tmp/evil-ran ] \
    || fail "pkexec status with a hostile environment: $(cat "$STATE/status" "$STATE/err")"
  rm -rf "$evil"
  ok "pkexec status with _PYI_*, PYTHON* and LD_LIBRARY_PATH set by the caller: the same answer, nothing of theirs ran"

  # A hostile config: PostUp would run a shell command as root.
  key=$(head -c 32 /dev/urandom | base64)
  printf '[Interface]\nPrivateKey = %s\nAddress = 10.99.0.2/32\nPostUp = touch /tmp/pwned\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.99.0.0/24\nEndpoint = 192.0.2.1:51820\n' \
    "$key" "$key" >"$STATE/hostile.conf"
  set +e
  as_tester pkexec --disable-internal-agent "$HELPER" up fiohostile <"$STATE/hostile.conf" \
    >"$STATE/out" 2>"$STATE/err"
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "hostile config: exit $code, expected 2 ($(cat "$STATE/err"))"
  [ "$(wc -l <"$STATE/err")" -eq 1 ] && grep -q '^fiotray-helper: .*PostUp' "$STATE/err" \
    || fail "hostile config: reason not one line naming PostUp: $(cat "$STATE/err")"
  [ ! -e /tmp/pwned ] || fail "hostile config: the PostUp command ran"
  [ ! -e /sys/class/net/fiohostile ] || fail "hostile config: an interface was made"
  ! ls /run/fiotray/fiohostile.* >/dev/null 2>&1 || fail "hostile config: state was written"
  ok "hostile config refused, exit 2: $(cat "$STATE/err"); nothing ran, no interface, no file"

  # -- the tray app (offscreen: no display here) and the CLI ---------------------------------------
  t0=$(now_ms)
  as_tester fiotray --demo --hidden >"$STATE/tray.out" 2>&1 &
  TRAY_PID=$!
  reply=""
  for _ in $(seq 300); do
    reply=$(ask status 2>/dev/null) && break
    kill -0 "$TRAY_PID" 2>/dev/null || fail "fiotray --demo --hidden exited: $(cat "$STATE/tray.out")"
    sleep 0.05
  done
  [ -n "$reply" ] || fail "the tray app never answered on its socket: $(cat "$STATE/tray.out")"
  echo "figure: installed_tray_answers_s $(secs $(($(now_ms) - t0)))"
  grep -q '^{"ok": true, ' <<<"$reply" && grep -q '"demo": true' <<<"$reply" \
    && grep -q '"tunnels": \[{[^]]*"state": "disconnected"' <<<"$reply" \
    || fail "status reply: $reply"
  ok "tray app up (offscreen) and answering: $(head -c 120 <<<"$reply")..."
  [ "$(ask quit)" = '{"ok": true}' ] || fail "quit request"
  code=""
  for _ in $(seq 150); do
    if ! kill -0 "$TRAY_PID" 2>/dev/null; then
      set +e; wait "$TRAY_PID"; code=$?; set -e
      break
    fi
    sleep 0.1
  done
  [ -n "$code" ] || fail "the tray app did not quit within 15 s"
  [ "$code" -eq 0 ] || fail "the tray app exited $code: $(cat "$STATE/tray.out")"
  TRAY_PID=""
  [ ! -e "/run/user/$TESTER_UID/fiotray-$TESTER_UID.sock" ] || fail "socket left behind"
  ok "tray app quit cleanly on 'quit' (exit 0, socket removed)"
  as_tester fiotray --demo devices >"$STATE/devices" 2>&1 || fail "fiotray --demo devices: $(cat "$STATE/devices")"
  grep -qx '36 devices' "$STATE/devices" || fail "fiotray --demo devices: $(tail -3 "$STATE/devices")"
  ok "fiotray --demo devices: 36 devices"
  as_tester fiotray --help | grep -q 'ssh-config' || fail "fiotray --help"
  # The MCP server is an extra the package leaves out: it says so, and where to get one.
  set +e; as_tester fiotray --demo mcp </dev/null >"$STATE/mcp" 2>&1; code=$?; set -e
  [ "$code" -eq 1 ] && grep -q "This fiotray (the .deb) has no MCP server" "$STATE/mcp" \
    || fail "fiotray mcp in the package (exit $code): $(cat "$STATE/mcp")"
  ok "fiotray mcp: the package says how to get the MCP server"

  stop_daemons
  trap - EXIT

  # -- undo what this test did, then purge ----------------------------------------------------
  rm /etc/polkit-1/rules.d/49-fiotray-group.rules
  userdel --remove "$TESTER" 2>/dev/null
  groupdel fiotray
  for f in passwd group shadow gshadow subuid subgid; do  # useradd's backups of them
    grep -qx "/etc/$f-" "$STATE/before" || rm -f "/etc/$f-"
  done
  purge_phase fiotray /opt/fiotray /usr/libexec/fiotray /usr/share/fiotray /usr/share/doc/fiotray
}

# -- fiotray-server: the VPN server's package ---------------------------------------------------
run_server_phase() {
  local unit=/lib/systemd/system/fiotray-server.service options=/etc/default/fiotray-server
  mount -t sysfs sysfs /sys  # this network namespace's view of /sys/class/net: no WireGuard

  # -- the bundle -------------------------------------------------------------------------
  version=$(dpkg-query -W -f='${Version}' fiotray-server | cut -d- -f1)
  [ "$(fiotray-server --version)" = "fiotray-server $version" ] \
    || fail "fiotray-server --version: $(fiotray-server --version)"
  ok "fiotray-server --version: $(fiotray-server --version)"
  fiotray-server --help >"$STATE/help" || fail "fiotray-server --help: exit $?"
  grep -q 'daemon' "$STATE/help" && grep -q -- '--oauthcreds' "$STATE/help" \
    || fail "fiotray-server --help: $(cat "$STATE/help")"
  ok "fiotray-server --help lists the commands and upstream's options"
  libraries_resolve /opt/fiotray-server
  qt=$(find /opt/fiotray-server \( -iname '*qt*' -o -iname '*pyside*' -o -iname '*shiboken*' \
    -o -path '*/fiotray/gui*' \) -print)
  [ -z "$qt" ] || fail "Qt or GUI files in the server's bundle: $qt"
  ok "no Qt, PySide6, shiboken6, qasync or fiotray.gui file in /opt/fiotray-server ($(find /opt/fiotray-server -type f | wc -l) files)"
  zcat /usr/share/man/man8/fiotray-server.8.gz | grep -q '^\.TH FIOTRAY-SERVER 8' || fail "man page"
  grep -q '^Files: opt/fiotray-server/_internal/\*' /usr/share/doc/fiotray-server/copyright \
    || fail "copyright"
  ok "man page fiotray-server(8), copyright"

  # -- the unit, its options file, the root-only directories ----------------------------------
  [ -f "$unit" ] || fail "$unit missing"
  grep -qx 'ExecStart=/usr/bin/fiotray-server $FIOTRAY_SERVER_OPTIONS daemon $FIOTRAY_DAEMON_OPTIONS' \
    "$unit" || fail "the unit's ExecStart: $(grep ExecStart "$unit")"
  enabled=$(find /etc/systemd/system -name fiotray-server.service -print)
  [ -z "$enabled" ] || fail "the unit is enabled after install: $enabled"
  state=$(systemctl is-enabled fiotray-server.service 2>&1 || true)
  [ "$state" = disabled ] || fail "systemctl is-enabled fiotray-server: $state"
  ok "unit $unit installed, not enabled (systemctl is-enabled: $state; no link in /etc/systemd/system)"
  # Offline (no systemd runs here): the unit's syntax, its directives and the ExecStart binary.
  # --man=no: minbase has no man-db to open Documentation=man:fiotray-server(8) with (the
  # page itself is checked above).
  if ! systemd-analyze verify --man=no "$unit" >"$STATE/verify" 2>&1 || [ -s "$STATE/verify" ]; then
    fail "systemd-analyze verify $unit: $(cat "$STATE/verify")"
  fi
  ok "systemd-analyze verify $unit: no complaint"
  for want in "$options 600 root root" "/etc/fiotray-server 700 root root" \
    "/var/lib/fiotray-server 700 root root"; do
    read -r path mode _ <<<"$want"
    have=$(stat -c '%a %U %G' "$path")
    [ "$path $have" = "$want" ] || fail "$path: $have, not $mode root root"
  done
  dpkg-query -W -f='${Conffiles}\n' fiotray-server | grep -q "^ $options " \
    || fail "$options is not a conffile"
  ok "$options 0600 root (a conffile), /etc/fiotray-server and /var/lib/fiotray-server 0700 root"
  # (The bracket keeps grep from finding its own command line.)
  ! grep -qs 'fiotray-serve[r]' /proc/[0-9]*/cmdline || fail "a fiotray-server process runs after the install"

  # -- the CLI, without a WireGuard interface (an empty network namespace) ----------------------
  tmp=$(mktemp -d)
  fiotray-server -f demo --state-dir "$tmp" peers list >"$STATE/out" 2>"$STATE/err" \
    || fail "peers list: exit $? $(cat "$STATE/err")"
  [ ! -s "$STATE/out" ] && [ ! -s "$STATE/err" ] \
    || fail "peers list on a new state dir printed: $(cat "$STATE/out" "$STATE/err")"
  rm -rf "$tmp"
  ok "fiotray-server -f demo --state-dir <new dir> peers list: nothing, exit 0"
  set +e
  fiotray-server -n nosuchif status >"$STATE/out" 2>"$STATE/err"
  code=$?
  set -e
  [ "$code" -eq 1 ] && [ "$(wc -l <"$STATE/err")" -eq 1 ] && grep -q '^fiotray-server: ' "$STATE/err" \
    && ! grep -q Traceback "$STATE/err" \
    || fail "status on a missing interface: exit $code, $(cat "$STATE/err")"
  ok "fiotray-server -n nosuchif status: exit 1, one line: $(cat "$STATE/err")"
  # What the unit runs with the options file as shipped (nothing set yet): the words as
  # systemd splits unbraced $VARS (sh's field splitting does the same for these values).
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  set +e
  # shellcheck source=packaging/debian/fiotray-server.default
  (set -a && . "$options" && eval "set -- $exec_start" && exec "$@") >"$STATE/out" 2>"$STATE/err"
  code=$?
  set -e
  [ "$code" -eq 1 ] && [ "$(wc -l <"$STATE/err")" -eq 1 ] && ! grep -q Traceback "$STATE/err" \
    || fail "the unit's command, not configured yet: exit $code, $(cat "$STATE/err")"
  ok "the unit's command, not configured yet: exit 1 at once (Restart=on-failure, then StartLimit): $(cat "$STATE/err")"

  # -- an upgrade (the same version again) keeps the admin's options and enables nothing ----
  sed -i 's/^FIOTRAY_DAEMON_OPTIONS=.*/FIOTRAY_DAEMON_OPTIONS="--interval 60"/' "$options"
  dpkg -i /root/fiotray-server.deb >"$STATE/reinstall.log" 2>&1 \
    || { cat "$STATE/reinstall.log" >&2; fail "dpkg -i again"; }
  grep -qx 'FIOTRAY_DAEMON_OPTIONS="--interval 60"' "$options" || fail "the admin's options were replaced"
  [ "$(stat -c %a "$options")" = 600 ] || fail "$options is $(stat -c %a "$options") after the upgrade"
  [ -z "$(find /etc/systemd/system -name fiotray-server.service -print)" ] \
    || fail "the upgrade enabled the unit"
  ok "reinstall over itself: the admin's options kept (0600), still not enabled"

  # -- remove, then purge, after the admin enabled it and the daemon kept files -------------------
  systemctl enable fiotray-server.service >"$STATE/enable" 2>&1 || fail "systemctl enable: $(cat "$STATE/enable")"
  link=/etc/systemd/system/multi-user.target.wants/fiotray-server.service
  [ -L "$link" ] || fail "systemctl enable made no $link: $(cat "$STATE/enable")"
  (umask 077 && wg genkey >/etc/fiotray-server/private.key)  # as the admin's key would be
  printf '{}\n' >/var/lib/fiotray-server/status.json  # as the daemon's state would be
  apt-get remove -y -qq fiotray-server >"$STATE/remove.log" 2>&1 || { cat "$STATE/remove.log" >&2; fail "remove"; }
  [ -f "$options" ] && [ -f /etc/fiotray-server/private.key ] && [ -f /var/lib/fiotray-server/status.json ] \
    || fail "remove (not purge) deleted the configuration or the state"
  [ ! -e /usr/bin/fiotray-server ] && [ ! -e "$unit" ] || fail "remove left the program or the unit"
  ok "apt-get remove: program and unit gone; options, /etc/fiotray-server and state kept"
  purge_phase fiotray-server /opt/fiotray-server /etc/fiotray-server /var/lib/fiotray-server \
    /usr/share/doc/fiotray-server "$options" "$link"
}

case "${1:-}" in
  install) shift; install_phase "$@" ;;
  run) run_phase ;;
  run-server) run_server_phase ;;
  *) echo "usage: $0 install PKG [EXTRA...] | run | run-server" >&2; exit 2 ;;
esac
