#!/bin/bash
# The part of packaging/test-install.sh that runs inside the fresh chroot (as root, PID 1 of
# its own PID namespace). Usage: inside.sh install | run
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

install_phase() {
  mkdir -p "$STATE"
  # No daemon a package installs may start here (there is no init anyway).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  # The package's Depends first (without Recommends), so that the snapshot taken next holds
  # everything but fiotray's own files.
  depends=$(dpkg-deb -f /root/fiotray.deb Depends)
  apt-get satisfy -y -qq --no-install-recommends "$depends" >"$STATE/apt-deps.log" 2>&1 \
    || { tail -20 "$STATE/apt-deps.log" >&2; fail "installing the Depends"; }
  ok "Depends installed without Recommends: $depends"
  # fiotray has no maintainer scripts, so it starts nothing: no guard for its own install.
  rm -f /usr/sbin/policy-rc.d
  apt-get autoclean -qq  # the shared apt cache keeps only what the mirror still has
  snapshot >"$STATE/before"
  apt-get install -y -qq --no-install-recommends /root/fiotray.deb >"$STATE/apt.log" 2>&1 \
    || { tail -20 "$STATE/apt.log" >&2; fail "apt-get install fiotray.deb"; }
  dpkg-query -W -f='${Status}\n' fiotray | grep -qx 'install ok installed' || fail "not installed"
  ok "apt-get install --no-install-recommends fiotray.deb"
  dpkg --verify fiotray || fail "dpkg --verify fiotray: installed files differ from the package"
  snapshot >"$STATE/installed"
  dpkg -L fiotray | sort >"$STATE/dpkg-L"
  # Installing added exactly the package's own paths (no maintainer script made others).
  comm -13 "$STATE/before" "$STATE/installed" >"$STATE/added"
  extra=$(comm -23 "$STATE/added" "$STATE/dpkg-L")
  [ -z "$extra" ] || fail "install created paths not in dpkg -L: $extra"
  ok "install added $(wc -l <"$STATE/added") paths, all listed by dpkg -L fiotray"
}

as_tester() {  # exec as the test user, no fork (so $! is the program's own PID)
  setpriv --reuid="$TESTER" --regid="$TESTER" --init-groups \
    env -i HOME="/home/$TESTER" USER="$TESTER" LOGNAME="$TESTER" LANG=C.UTF-8 \
    PATH=/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$TESTER_UID" QT_QPA_PLATFORM=offscreen "$@"
}

ask() {  # ask the running tray app over its single-instance socket: ask COMMAND
  as_tester python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip())
' "/run/user/$TESTER_UID/fiotray-$TESTER_UID-demo.sock" "$1"
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
  missing=""
  while IFS= read -r -d '' f; do
    if head -c4 "$f" | grep -q ELF; then
      out=$(ldd "$f" 2>&1 || true)
      if grep -q 'not found' <<<"$out"; then missing+="$f: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"$'\n'; fi
    fi
  done < <(find /opt/fiotray -type f -print0)
  [ -z "$missing" ] || fail "libraries missing (Depends incomplete):"$'\n'"$missing"
  ok "every binary in /opt/fiotray finds its libraries (bundle + Depends)"
  # The helper (fiotray/helper and fiotray/wg beside its launcher) runs on the system's
  # python3: every module those files import must be there, and be the standard library's
  # or the helper's own.
  python3 -IS - <<'EOF' || fail "the helper's imports"
import ast, importlib, pathlib, sys
tree_dir = pathlib.Path("/usr/libexec/fiotray")
sys.path.insert(0, str(tree_dir))  # as the launcher does
names = set()
for path in sorted((tree_dir / "fiotray").rglob("*.py")):
    tree = ast.parse(path.read_text())
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
names.discard("__future__")
for name in sorted(names):
    top = name.partition(".")[0]
    assert top in sys.stdlib_module_names or name.startswith("fiotray."), name
    module = importlib.import_module(name)
    if top == "fiotray":
        assert module.__file__.startswith(str(tree_dir) + "/"), module.__file__
print("ok: the helper's imports exist in /usr/bin/python3:", " ".join(sorted(names)))
EOF
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
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert d["version"] == 1 and d["interfaces"] == [], d' "$STATE/status" || fail "status JSON"
  ok "status through pkexec with the shipped group rule: $(cat "$STATE/status")"

  # A hostile config: PostUp would run a shell command as root.
  key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
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
  python3 -c 'import json, sys; d = json.loads(sys.argv[1])
assert d["ok"] and d["demo"] and d["tunnels"][0]["state"] == "disconnected", d' "$reply" \
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
  [ ! -e "/run/user/$TESTER_UID/fiotray-$TESTER_UID-demo.sock" ] || fail "socket left behind"
  ok "tray app quit cleanly on 'quit' (exit 0, socket removed)"
  as_tester fiotray --demo devices >"$STATE/devices" 2>&1 || fail "fiotray --demo devices: $(cat "$STATE/devices")"
  grep -qx '36 devices' "$STATE/devices" || fail "fiotray --demo devices: $(tail -3 "$STATE/devices")"
  ok "fiotray --demo devices: 36 devices"
  as_tester fiotray --help | grep -q 'ssh-config' || fail "fiotray --help"

  stop_daemons
  trap - EXIT

  # -- undo what this test did, then purge ----------------------------------------------------
  rm /etc/polkit-1/rules.d/49-fiotray-group.rules
  userdel --remove "$TESTER" 2>/dev/null
  groupdel fiotray
  for f in passwd group shadow gshadow subuid subgid; do  # useradd's backups of them
    grep -qx "/etc/$f-" "$STATE/before" || rm -f "/etc/$f-"
  done
  apt-get purge -y -qq fiotray >"$STATE/purge.log" 2>&1 || { cat "$STATE/purge.log" >&2; fail "purge"; }
  ! dpkg-query -W -f='${Status}' fiotray 2>/dev/null | grep -q installed || fail "still installed"
  left=""
  while IFS= read -r path; do
    # Directories other packages share (/usr/bin, /opt, hicolor's) may stay; files may not.
    if [ -e "$path" ] && { [ ! -d "$path" ] || [ -L "$path" ]; }; then left+="$path "; fi
  done <"$STATE/dpkg-L"
  for dir in /opt/fiotray /usr/libexec/fiotray /usr/share/fiotray /usr/share/doc/fiotray; do
    [ ! -e "$dir" ] || left+="$dir "
  done
  [ -z "$left" ] || fail "purge left: $left"
  snapshot >"$STATE/after"
  added=$(comm -13 "$STATE/before" "$STATE/after")
  [ -z "$added" ] || fail "purge left paths that were not there before the install: $added"
  # dpkg removes a directory the package listed once it is empty and no other package owns
  # it: /opt, which the base system makes but no package owns, when fiotray was all in it.
  # That is the only kind of path allowed to be gone.
  gone=""
  while IFS= read -r path; do
    grep -qxF "$path" "$STATE/dpkg-L" || gone+="$path "
  done < <(comm -23 "$STATE/before" "$STATE/after")
  [ -z "$gone" ] || fail "purge removed paths that were not the package's: $gone"
  note=$(comm -23 "$STATE/before" "$STATE/after" | tr '\n' ' ')
  ok "apt-get purge removed all $(wc -l <"$STATE/dpkg-L") paths and left nothing${note:+ (dpkg also removed the empty, unowned: $note)}"
}

case "${1:-}" in
  install) install_phase ;;
  run) run_phase ;;
  *) echo "usage: $0 install|run" >&2; exit 2 ;;
esac
