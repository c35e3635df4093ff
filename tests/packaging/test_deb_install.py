"""The two .debs (fiotray, fiotray-server), built by their one documented command and each
installed on a fresh Debian 12 and a fresh Debian 13.

Runs packaging/build-deb.sh (the PyInstaller bundles and the packages; it fails when a
bundle needs a glibc newer than 2.35) and packaging/test-install.sh once per package and
suite (debootstrap, apt install without Recommends, the checks inside, apt purge). Needs
root and the Debian mirror, as CI has; the debootstrap bases are cached under build/cache/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEB_LIMIT_MB = 35.0
# The server's bundle has no Qt: 8.2 MB today, most of it libpython and cryptography.
SERVER_DEB_LIMIT_MB = 10.0

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

# The fresh systems the packages are installed on: Debian 12 (what they are built on) and 13.
SUITES = ["bookworm", "trixie"]
# The newest glibc symbol version the bundles may need: Ubuntu 22.04's glibc.
MAX_GLIBC = (2, 35)


def figures(output: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^figure: (\w+) ([\d.]+)$", output, re.M)}


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, Path], dict[str, float]]:
    """({package: its .deb}, build-deb.sh's figures), built once for this module."""
    if os.geteuid() != 0:
        pytest.fail("the package tests need root (debootstrap, chroot), as CI has", pytrace=False)
    proc = subprocess.run(
        [str(ROOT / "packaging" / "build-deb.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    debs = {}
    for line in re.findall(r"^build-deb: (\S+\.deb)$", proc.stdout, re.M):
        deb = Path(line)
        assert deb.is_file()
        debs[deb.name.split("_")[0]] = deb
    assert set(debs) == {"fiotray", "fiotray-server"}, proc.stdout
    print(proc.stdout)
    return debs, figures(proc.stdout)


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def control_fields(deb: Path) -> dict[str, str]:
    return dict(re.findall(r"^(\S+): (.*(?:\n .*)*)", dpkg_deb("-f", str(deb)), re.M))


def control_members(deb: Path) -> list[str]:
    listing = subprocess.run(
        ["sh", "-c", f"dpkg-deb --ctrl-tarfile '{deb}' | tar -t"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(f.removeprefix("./") for f in listing if f not in ("./", "."))


def test_deb_size_control_and_contents(built: tuple[dict[str, Path], dict[str, float]]) -> None:
    deb, figs = built[0]["fiotray"], built[1]
    assert deb.stat().st_size <= DEB_LIMIT_MB * 1e6, f"{deb.stat().st_size / 1e6:.1f} MB"
    assert figs["deb_size_mb"] <= DEB_LIMIT_MB

    fields = control_fields(deb)
    assert fields["Package"] == "fiotray"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    for needed in (
        "wireguard-tools",
        "iproute2",
        "pkexec",
        # Debian 13 and Ubuntu 24.04 renamed these (64-bit time_t); both names, new first.
        "libglib2.0-0t64 (>= 2.26.0) | libglib2.0-0 (>= 2.26.0)",
        # Floors from shlibs files lowered to what the bundle imports (Ubuntu 22.04 has 1.4.8).
        "libzstd1 (>= 1.3.0)",
        "libx11-xcb1",
    ):
        assert needed in depends, depends
    # The helper has an interpreter of its own: no Python from the system.
    assert not any(d.startswith("python3") for d in depends), depends
    names = {alt.split()[0] for d in depends for alt in d.split("|")}
    # Every name is one checked in all four systems (packaging/depends.py).
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import depends as depends_py
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert names <= depends_py.CHECKED, names - depends_py.CHECKED
    # What the bundle links to but does not carry (Qt's xcb, Wayland and GL, fontconfig).
    assert {"libxcb-cursor0", "libegl1", "libgl1", "libwayland-client0", "libfontconfig1"} <= names
    assert any(d.startswith("fonts-") for d in depends)
    assert fields["Recommends"].startswith("gnome-keyring |")

    listing = dpkg_deb("-c", str(deb))
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for path in (
        "/opt/fiotray/fiotray",
        "/usr/bin/fiotray",
        # The helper: a one-folder bundle with its own libpython and standard library.
        "/usr/libexec/fiotray/fiotray-helper",
        "/usr/libexec/fiotray/_internal/libpython3.11.so.1.0",
        "/usr/libexec/fiotray/_internal/base_library.zip",
        "/usr/share/polkit-1/actions/io.foundries.fiotray.policy",
        "/usr/share/fiotray/polkit/49-fiotray-group.rules",
        "/usr/share/applications/fiotray.desktop",
        "/etc/xdg/autostart/fiotray.desktop",
        "/usr/share/icons/hicolor/scalable/apps/fiotray.svg",
        "/usr/share/icons/hicolor/symbolic/apps/fiotray-symbolic.svg",
        "/usr/share/icons/hicolor/symbolic/status/fiotray-connected-symbolic.svg",
        "/usr/share/man/man1/fiotray.1.gz",
        "/usr/share/doc/fiotray/copyright",
    ):
        assert path in paths, path
    # The group rule is off by default: nothing in polkit's rules directory.
    assert not any(p.startswith("/etc/polkit-1") for p in paths)
    # Root's code is the helper's bundle only: no module tree for a system python3 (the old
    # layouts), no Qt, no part of the app but fiotray.helper and fiotray.wg (inside the
    # executable's archive; tests/unit/test_helper.py keeps them to the standard library).
    helper_tree = {p for p in paths if p.startswith("/usr/libexec/fiotray/")}
    assert not any(p.startswith("/usr/libexec/fiotray/fiotray/") for p in helper_tree)
    assert "/usr/libexec/fiotray/fiotray_helper.py" not in paths
    assert not any(part in p for p in helper_tree for part in ("Qt", "PySide6", "site-packages"))
    modes = {line.split()[5].removeprefix("."): line.split()[0] for line in listing.splitlines()}
    assert modes["/usr/libexec/fiotray/fiotray-helper"] == "-rwxr-xr-x"
    # Root-owned (--root-owner-group), written by root only, no symlink.
    helper_modes = [m for p, m in modes.items() if p in helper_tree]
    assert all(m[5] != "w" and m[8] != "w" and m[0] != "l" for m in helper_modes)
    assert all(" root/root " in line for line in listing.splitlines())
    # Nothing Qt does not need: no translations, no GTK platform theme.
    assert not any(p.endswith(".qm") or "platformthemes" in p for p in paths)
    # No maintainer scripts: polkit, the icon cache and the menu pick the files up by themselves.
    assert control_members(deb) == ["conffiles", "control", "md5sums"]


def test_server_deb_size_control_and_contents(
    built: tuple[dict[str, Path], dict[str, float]],
) -> None:
    deb, figs = built[0]["fiotray-server"], built[1]
    assert deb.stat().st_size <= SERVER_DEB_LIMIT_MB * 1e6, f"{deb.stat().st_size / 1e6:.1f} MB"
    assert figs["server_deb_size_mb"] <= SERVER_DEB_LIMIT_MB
    assert figs["server_bundle_files"] > 100

    fields = control_fields(deb)
    assert fields["Package"] == "fiotray-server"
    assert fields["Version"] == control_fields(built[0]["fiotray"])["Version"]
    depends = [d.strip() for d in fields["Depends"].split(",")]
    for needed in ("wireguard-tools", "iproute2", "iptables"):
        assert needed in depends, depends
    names = {alt.split()[0] for d in depends for alt in d.split("|")}
    # What the bundle's Python links to (ssl, zlib, ...); nothing of a desktop.
    assert {"libc6", "libssl3", "zlib1g"} <= names
    # Debian 13 and Ubuntu 24.04's name for libssl3 first (packaging/depends.py).
    assert "libssl3t64 (>= 3.0.0) | libssl3 (>= 3.0.0)" in depends
    assert not any(
        n.startswith(("libx", "libgl", "libegl", "libwayland", "libfontconfig")) for n in names
    )
    assert not any(n.startswith(("python3", "pkexec", "fonts-")) for n in names)

    listing = dpkg_deb("-c", str(deb))
    entries = {line.split()[5].removeprefix("."): line.split()[0] for line in listing.splitlines()}
    for path, mode in (
        ("/opt/fiotray-server/fiotray-server", "-rwxr-xr-x"),
        ("/usr/bin/fiotray-server", "lrwxrwxrwx"),
        ("/lib/systemd/system/fiotray-server.service", "-rw-r--r--"),
        # It names where the credentials are: root's alone.
        ("/etc/default/fiotray-server", "-rw-------"),
        ("/etc/fiotray-server/", "drwx------"),
        ("/var/lib/fiotray-server/", "drwx------"),
        ("/usr/share/man/man8/fiotray-server.8.gz", "-rw-r--r--"),
        ("/usr/share/doc/fiotray-server/copyright", "-rw-r--r--"),
        # `enable` makes the server's key with cryptography (fiotray.core.wgconf).
        ("/opt/fiotray-server/_internal/cryptography/hazmat/bindings/_rust.abi3.so", "-rwxr-xr-x"),
        ("/opt/fiotray-server/_internal/fiotray/server/daemon.pyc", "-rw-r--r--"),
    ):
        assert entries.get(path) == mode, (path, entries.get(path))
    paths = set(entries)
    # No Qt, no GUI, no keyring: none of it runs on a server.
    for part in ("PySide6", "shiboken6", "qasync", "/fiotray/gui", "keyring", "libQt"):
        assert not any(part in p for p in paths), part
    # Not enabled by the package: no link in /etc/systemd/system.
    assert not any(p.startswith("/etc/systemd") for p in paths)
    assert control_members(deb) == [
        "conffiles",
        "control",
        "md5sums",
        "postinst",
        "postrm",
        "prerm",
    ]
    conffiles = subprocess.run(
        ["sh", "-c", f"dpkg-deb --ctrl-tarfile '{deb}' | tar -xO ./conffiles"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert conffiles == "/etc/default/fiotray-server\n"


def test_bundles_need_glibc_2_35_at_most(built: tuple[dict[str, Path], dict[str, float]]) -> None:
    """Every binary of the three bundles, by readelf, as build-deb.sh checked it."""
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import bundle_check
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    highest = {}
    for name in ("fiotray", "fiotray-helper", "fiotray-server"):
        bundle = ROOT / "build" / "dist" / name
        elves = bundle_check.elf_files(bundle)
        assert len(elves) > 10, name
        assert bundle_check.glibc_problems(bundle, elves, MAX_GLIBC) == [], name
        highest[name] = bundle_check.highest_glibc(elves)[0]
    print("highest GLIBC_ version needed:", {n: ".".join(map(str, v)) for n, v in highest.items()})
    # Debian 12's libpython needs 2.35 (libm); anything higher would have failed the build.
    assert max(highest.values()) == MAX_GLIBC


def test_helper_bundle_holds_the_helper_and_the_standard_library_only(
    built: tuple[dict[str, Path], dict[str, float]],
) -> None:
    """What root runs: PyInstaller's table of the helper's Python modules, as built."""
    toc = (ROOT / "build" / "pyinstaller" / "fiotray-helper" / "PYZ-00.toc").read_text()
    modules = set(re.findall(r"\('([\w.]+)',", toc))
    ours = {m for m in modules if m.partition(".")[0] not in sys.stdlib_module_names}
    assert ours == {
        "fiotray",
        "fiotray.helper",
        "fiotray.helper.fiotray_helper",
        "fiotray.wg",
        "fiotray.wg.config",
        "fiotray.wg.dump",
        "fiotray.wg.errors",
        "fiotray.wg.tools",
    }


def test_helper_bundle_ignores_the_environment(
    built: tuple[dict[str, Path], dict[str, float]], tmp_path: Path
) -> None:
    """What a caller could set for PyInstaller's bootloader or for Python changes nothing.

    pkexec clears the environment anyway (the install test checks that through pkexec); this
    is the bundle by itself: a one-folder bootloader takes _internal/ from its own path, and
    the interpreter is isolated (no PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, site).
    """
    helper = ROOT / "build" / "dist" / "fiotray-helper" / "fiotray-helper"
    marker = tmp_path / "ran"
    (tmp_path / "fiotray").mkdir()
    for path in (tmp_path / "sitecustomize.py", tmp_path / "fiotray" / "__init__.py"):
        path.write_text(f"open({str(marker)!r}, 'w')\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "_PYI_ARCHIVE_FILE": str(helper),
        "_PYI_PARENT_PROCESS_LEVEL": "1",
        "_PYI_APPLICATION_HOME_DIR": str(tmp_path),
        "PYTHONPATH": str(tmp_path),
        "PYTHONHOME": str(tmp_path),
        "PYTHONSTARTUP": str(tmp_path / "sitecustomize.py"),
        "PYTHONINSPECT": "1",
    }
    proc = subprocess.run(
        [str(helper)], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("fiotray-helper: usage: "), proc.stderr
    assert not marker.exists()


def _install_test(deb: Path, suite: str) -> str:
    """packaging/test-install.sh on one package and suite; its output, once it passed."""
    proc = subprocess.run(
        [str(ROOT / "packaging" / "test-install.sh"), "--suite", suite, str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


DEBIAN = {"bookworm": "Debian GNU/Linux 12 (bookworm)", "trixie": "Debian GNU/Linux 13 (trixie)"}


@pytest.mark.parametrize("suite", SUITES)
def test_fresh_debian_install_run_and_purge(
    built: tuple[dict[str, Path], dict[str, float]], suite: str
) -> None:
    out = _install_test(built[0]["fiotray"], suite)
    for proof in (
        f"ok: system: {DEBIAN[suite]}, libc6 ",
        "ok: apt-get install --no-install-recommends fiotray.deb",
        "ok: fiotray --version: fiotray ",
        "ok: every binary in /opt/fiotray finds its libraries",
        "ok: every binary in /usr/libexec/fiotray finds its libraries",
        "ok: no python3 on the system, and /usr/libexec/fiotray/fiotray-helper status as root "
        'answers: {"version": 1',
        "ok: the helper's ",
        "are root's, written by root only, no symlink, all the package's",
        "ok: pkexec status with _PYI_*, PYTHON* and LD_LIBRARY_PATH set by the caller",
        "ok: polkit actions io.foundries.fiotray.{connect,disconnect,status} registered",
        "ok: pkexec refused without the group rule (exit 127",
        'ok: status through pkexec with the shipped group rule: {"version": 1',
        "ok: hostile config refused, exit 2: fiotray-helper: line 4: PostUp",
        "ok: tray app quit cleanly on 'quit' (exit 0, socket removed)",
        "ok: fiotray --demo devices: 36 devices",
        "ok: apt-get purge removed all ",
        "ok: fresh-system install test passed",
    ):
        assert proof in out, proof


@pytest.mark.parametrize("suite", SUITES)
def test_fresh_debian_install_of_the_server_run_and_purge(
    built: tuple[dict[str, Path], dict[str, float]], suite: str
) -> None:
    out = _install_test(built[0]["fiotray-server"], suite)
    for proof in (
        f"ok: system: {DEBIAN[suite]}, libc6 ",
        "ok: apt-get install --no-install-recommends fiotray-server.deb",
        "ok: fiotray-server --version: fiotray-server ",
        "ok: fiotray-server --help lists the commands",
        "ok: every binary in /opt/fiotray-server finds its libraries",
        "ok: no Qt, PySide6, shiboken6, qasync or fiotray.gui file in /opt/fiotray-server",
        "not enabled (systemctl is-enabled: disabled; no link in /etc/systemd/system)",
        "ok: systemd-analyze verify /lib/systemd/system/fiotray-server.service: no complaint",
        "ok: /etc/default/fiotray-server 0600 root (a conffile), /etc/fiotray-server and "
        "/var/lib/fiotray-server 0700 root",
        "ok: fiotray-server -f demo --state-dir <new dir> peers list: nothing, exit 0",
        "ok: fiotray-server -n nosuchif status: exit 1, one line: fiotray-server: ",
        "ok: the unit's command, not configured yet: exit 1 at once",
        "ok: reinstall over itself: the admin's options kept (0600), still not enabled",
        "ok: apt-get remove: program and unit gone; options, /etc/fiotray-server and state kept",
        "ok: apt-get purge removed all ",
        "ok: fresh-system install test passed",
    ):
        assert proof in out, proof
