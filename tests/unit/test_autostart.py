"""The autostart toggle with and without the system-wide entry the .deb installs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fiotray.core import autostart


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the user's entry path, the system autostart dir), both in tmp_path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home-config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"relative/xdg:{tmp_path / 'etc-xdg'}")
    system_dir = tmp_path / "etc-xdg" / "autostart"
    return autostart.autostart_path(), system_dir


def install_system_entry(system_dir: Path) -> Path:
    system_dir.mkdir(parents=True)
    path = system_dir / "fiotray.desktop"
    path.write_text(autostart.entry_text(["fiotray"]))
    return path


def test_without_a_system_entry_the_user_entry_is_written_and_removed(
    dirs: tuple[Path, Path],
) -> None:
    user, _ = dirs
    assert autostart.system_entry() is None
    assert not autostart.is_enabled()
    assert autostart.enable(["/usr/bin/fiotray"]) == user
    text = user.read_text()
    assert "Exec=/usr/bin/fiotray --hidden\n" in text
    assert f"X-GNOME-Autostart-Delay={autostart.DELAY_SECONDS}\n" in text
    assert user.stat().st_mode & 0o777 == 0o644
    assert autostart.is_enabled()
    autostart.disable()
    assert not user.exists()
    assert not autostart.is_enabled()


def test_a_system_entry_is_on_until_the_user_turns_it_off(dirs: tuple[Path, Path]) -> None:
    user, system_dir = dirs
    system = install_system_entry(system_dir)
    assert autostart.system_entry() == system
    assert autostart.is_enabled()

    autostart.disable()
    # The user cannot delete /etc/xdg/autostart/fiotray.desktop: a Hidden entry shadows it.
    assert "Hidden=true\n" in user.read_text()
    assert system.is_file()
    assert not autostart.is_enabled()

    assert autostart.enable(["/usr/bin/fiotray"]) == system
    assert not user.exists()  # the package's entry applies again
    assert autostart.is_enabled()


def test_gnome_switch_off_in_the_user_entry_counts_as_off(dirs: tuple[Path, Path]) -> None:
    user, system_dir = dirs
    install_system_entry(system_dir)
    user.parent.mkdir(parents=True)
    user.write_text(
        autostart.entry_text(["fiotray"]).replace(
            "X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"
        )
    )
    assert not autostart.is_enabled()
    assert autostart.enable() == autostart.system_entry()
    assert autostart.is_enabled()


def test_frozen_bundle_starts_itself_not_python_dash_m(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exe = tmp_path / "opt" / "fiotray"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert autostart.launch_command() == [str(exe)]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "fiotray").symlink_to(exe)
    monkeypatch.setenv("PATH", str(bindir))
    assert autostart.launch_command() == [str(bindir / "fiotray")]
