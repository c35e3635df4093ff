"""Unprivileged system users for tests that need a real non-root caller (pkexec, ssh).

Created once per test session with `useradd`, removed with `userdel` at the end.
Tests that use them must run as root (CI does); without root they fail with a
clear message rather than skip, since a skip would hide a broken CI set-up.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The app's user: runs fiotray, pkexec and ssh. Short names: useradd limits them to 32.
APP_USER = "fiotray-t"
# The login on test devices and jump hosts, as on Foundries' LmP images.
DEVICE_USER = "fio"


@dataclass(frozen=True)
class SystemUser:
    name: str
    uid: int
    gid: int
    home: Path
    created: bool  # False when it already existed (and so is left in place)

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for commands run as this user."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            **extra,
        }

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run argv as this user (runuser keeps root out of the child)."""
        return subprocess.run(["runuser", "-u", self.name, "--", *argv], **kwargs)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root to create system users (CI runs as root)", pytrace=False)


def ensure_user(name: str, home: Path) -> SystemUser:
    _require_root()
    try:
        entry = pwd.getpwnam(name)
        return SystemUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), created=False)
    except KeyError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    # '*' as password: no password login, but not "locked", so sshd (UsePAM no) accepts keys.
    subprocess.run(
        [
            "useradd",
            "--user-group",
            "--home-dir",
            str(home),
            "--no-create-home",
            "--shell",
            "/bin/sh",
            "--password",
            "*",
            name,
        ],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    return SystemUser(name, entry.pw_uid, entry.pw_gid, home, created=True)


def remove_user(user: SystemUser) -> None:
    if user.created:
        subprocess.run(["userdel", user.name], capture_output=True)
        shutil.rmtree(user.home, ignore_errors=True)


@contextlib.contextmanager
def temporary_user(name: str) -> Iterator[SystemUser]:
    """`name` for the duration of the block, with a home in a temp dir; removed after
    (unless it existed before)."""
    base = Path(tempfile.mkdtemp(prefix=f"fiotray-{name}-"))
    base.chmod(0o755)
    user = ensure_user(name, base / name)
    try:
        yield user
    finally:
        remove_user(user)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def app_user() -> Iterator[SystemUser]:
    """The engineer at the laptop: an unprivileged account that runs fiotray."""
    with temporary_user(APP_USER) as user:
        yield user


@pytest.fixture(scope="session")
def device_user() -> Iterator[SystemUser]:
    """`fio`, the login on test devices and jump hosts."""
    with temporary_user(DEVICE_USER) as user:
        yield user
