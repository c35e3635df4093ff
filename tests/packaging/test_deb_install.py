"""The .deb, built by its one documented command and installed on a fresh Debian 12.

Runs packaging/build-deb.sh (the PyInstaller bundle and the package) and
packaging/test-install.sh (debootstrap, apt install without Recommends, the checks inside,
apt purge). Needs root and the Debian mirror, as CI has; the debootstrap base is cached
under build/cache/. A clean clone takes ~3 minutes here (most of it xz -9 and debootstrap).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEB_LIMIT_MB = 35.0

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


def figures(output: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^figure: (\w+) ([\d.]+)$", output, re.M)}


@pytest.fixture(scope="module")
def built() -> tuple[Path, dict[str, float]]:
    """(the .deb, build-deb.sh's figures), built once for this module."""
    if os.geteuid() != 0:
        pytest.fail("the package tests need root (debootstrap, chroot), as CI has", pytrace=False)
    proc = subprocess.run(
        [str(ROOT / "packaging" / "build-deb.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = re.search(r"^build-deb: (\S+\.deb)$", proc.stdout, re.M)
    assert match, proc.stdout
    deb = Path(match[1])
    assert deb.is_file()
    print(proc.stdout)
    return deb, figures(proc.stdout)


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def test_deb_size_control_and_contents(built: tuple[Path, dict[str, float]]) -> None:
    deb, figs = built
    assert deb.stat().st_size <= DEB_LIMIT_MB * 1e6, f"{deb.stat().st_size / 1e6:.1f} MB"
    assert figs["deb_size_mb"] <= DEB_LIMIT_MB

    control = dpkg_deb("-f", str(deb))
    fields = dict(re.findall(r"^(\S+): (.*(?:\n .*)*)", control, re.M))
    assert fields["Package"] == "fiotray"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    for needed in (
        "wireguard-tools",
        "iproute2",
        "pkexec | policykit-1",
        "python3 (>= 3.11)",
    ):
        assert needed in depends, depends
    names = {d.split()[0] for d in depends}
    # What the bundle links to but does not carry (Qt's xcb, Wayland and GL, fontconfig).
    assert {"libxcb-cursor0", "libegl1", "libgl1", "libwayland-client0", "libfontconfig1"} <= names
    assert any(d.startswith("fonts-") for d in depends)
    assert fields["Recommends"].startswith("gnome-keyring |")

    listing = dpkg_deb("-c", str(deb))
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for path in (
        "/opt/fiotray/fiotray",
        "/usr/bin/fiotray",
        "/usr/libexec/fiotray/fiotray-helper",
        "/usr/libexec/fiotray/fiotray/__init__.py",
        "/usr/libexec/fiotray/fiotray/__pycache__/__init__.cpython-311.pyc",
        "/usr/libexec/fiotray/fiotray/helper/__init__.py",
        "/usr/libexec/fiotray/fiotray/helper/fiotray_helper.py",
        "/usr/libexec/fiotray/fiotray/helper/__pycache__/fiotray_helper.cpython-311.pyc",
        "/usr/libexec/fiotray/fiotray/wg/__init__.py",
        "/usr/libexec/fiotray/fiotray/wg/config.py",
        "/usr/libexec/fiotray/fiotray/wg/__pycache__/config.cpython-311.pyc",
        "/usr/libexec/fiotray/fiotray/wg/dump.py",
        "/usr/libexec/fiotray/fiotray/wg/errors.py",
        "/usr/libexec/fiotray/fiotray/wg/tools.py",
        "/usr/libexec/fiotray/fiotray/wg/__pycache__/tools.cpython-311.pyc",
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
    # Root's code is the helper and fiotray.wg only: nothing else of the app beside it.
    helper_tree = {p for p in paths if p.startswith("/usr/libexec/fiotray/fiotray/")}
    assert not any(p.startswith("/usr/libexec/fiotray/fiotray/core") for p in helper_tree)
    assert "/usr/libexec/fiotray/fiotray_helper.py" not in paths  # the old layout
    # Nothing Qt does not need: no translations, no GTK platform theme.
    assert not any(p.endswith(".qm") or "platformthemes" in p for p in paths)
    # No maintainer scripts: polkit, the icon cache and the menu pick the files up by themselves.
    control_files = subprocess.run(
        ["sh", "-c", f"dpkg-deb --ctrl-tarfile '{deb}' | tar -t"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(f.removeprefix("./") for f in control_files if f not in ("./", ".")) == [
        "conffiles",
        "control",
        "md5sums",
    ]


def test_fresh_debian_install_run_and_purge(built: tuple[Path, dict[str, float]]) -> None:
    deb, _ = built
    proc = subprocess.run(
        [str(ROOT / "packaging" / "test-install.sh"), str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for proof in (
        "ok: apt-get install --no-install-recommends fiotray.deb",
        "ok: fiotray --version: fiotray ",
        "ok: every binary in /opt/fiotray finds its libraries",
        "ok: the helper's imports exist in /usr/bin/python3",
        "ok: polkit actions io.foundries.fiotray.{connect,disconnect,status} registered",
        "ok: pkexec refused without the group rule (exit 127",
        'ok: status through pkexec with the shipped group rule: {"version": 1',
        "ok: hostile config refused, exit 2: fiotray-helper: line 4: PostUp",
        "ok: tray app quit cleanly on 'quit' (exit 0, socket removed)",
        "ok: fiotray --demo devices: 36 devices",
        "ok: apt-get purge removed all ",
        "ok: fresh-system install test passed",
    ):
        assert proof in proc.stdout, proof
