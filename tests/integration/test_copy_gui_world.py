"""Copying files in the tray app end to end: real X, tray, tunnel, sshd, X input only.

The engineer right-clicks a device, picks "Copy files to device…", chooses a file in
the file dialog (its path typed into the name field), types the folder on the device
and presses Enter: the file arrives on the device byte for byte. Then "Copy from
device…" brings a device's file into a local folder. With a key locked by a
passphrase and no agent, a folder chosen with Folder… goes after the passphrase is
typed into the dialog that asks for it (once for both hops of the jump route). The
dialog's title says when a copy is done ("Done — ..."), which is what the test waits
for. Screenshots go to artifacts/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.app_socket import AppSocket, wait_for
from tests.engineer import Engineer
from tests.integration.test_copy_real import (  # noqa: F401 - fixtures, used by name
    PASSPHRASE,
    _random_file,
    device_dir,
    locked_key,
)
from tests.integration.test_gui_world import (
    filter_to,
    gui_engineer,  # noqa: F401 - the fixture, used by name
    new_window,
    open_devices_window,
    row_center,
    settle_and_shot,
    start_app,
)
from tests.system_user import SystemUser
from tests.xsession import XSession

pytestmark = pytest.mark.real


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _title(xsession: XSession, window: str) -> str:
    return xsession.run("xdotool", "getwindowname", window, check=False).stdout.strip()


def _wait_done(xsession: XSession, dialog: str, what: str) -> str:
    return wait_for(
        f"{what} done (the dialog's title)",
        lambda: (t := _title(xsession, dialog)).startswith(("Done", "Failed", "Stopped")) and t,
        timeout=60,
    )


def _context_menu_item(xsession: XSession, app: AppSocket, device: str, key: str, what: str) -> str:
    """Right-click `device`'s row, press `key` (the item's mnemonic): the window it opens."""
    devices = filter_to(xsession, app, device)
    before = set(xsession.visible_windows("fiotray"))
    xsession.click_at(*row_center(devices), button=3)
    new_window(xsession, "fiotray", before, "the row's context menu")
    before = set(xsession.visible_windows("fiotray"))
    xsession.key(key)
    return new_window(xsession, "fiotray", before, what)


def test_copy_files_to_and_from_a_device_from_its_menu(
    gui_engineer: Engineer,  # noqa: F811
    xsession: XSession,
    device_dir: Path,  # noqa: F811
    device_user: SystemUser,
) -> None:
    engineer, world = gui_engineer, gui_engineer.world
    device = world.devices[0]
    local_dir = engineer.home / "files"
    local_dir.mkdir(mode=0o700)
    shutil.chown(local_dir, engineer.user.uid, engineer.user.gid)
    local = _random_file(local_dir / "firmware.bin", 3 * 1024 * 1024 + 4321, engineer)
    # What the device has for the download: the device user's, as sshd would write it.
    on_device = device_dir / "messages.log"
    on_device.write_bytes(os.urandom(512 * 1024 + 17))
    shutil.chown(on_device, device_user.uid, device_user.gid)

    proc, app, log = start_app(engineer, xsession, "fiotray-copy-world", "--hidden")
    try:
        open_devices_window(xsession, app)

        # Upload: "Copy files &to device…", then F&iles… and the path typed into Qt's
        # file dialog (its name field has the focus), Enter to choose it.
        dialog = _context_menu_item(
            xsession, app, device.name, "t", "the Copy files to device dialog"
        )
        assert _title(xsession, dialog) == f"Copy files to {device.name}"
        before = set(xsession.visible_windows("fiotray"))
        xsession.key("alt+i")
        new_window(xsession, "fiotray", before, "the file dialog of Files…")
        xsession.type(str(local))
        settle_and_shot(xsession, "x11-world-copy-choose-file")
        xsession.key("Return")
        wait_for(
            "the file dialog to close",
            lambda: set(xsession.visible_windows("fiotray")) == before,
        )
        xsession.key("alt+t")  # &To: the device's folder, its text selected
        xsession.type(f"{device_dir}/")
        settle_and_shot(xsession, "x11-world-copy-to-dialog")
        xsession.key("Return")
        wait_for(
            "the copy to the device done (the dialog's title)",
            lambda: _title(xsession, dialog).startswith(("Done", "Failed", "Stopped")),
            timeout=60,
        )
        settle_and_shot(xsession, "x11-world-copy-to-done")
        assert _title(xsession, dialog) == f"Done — Copy files to {device.name}"
        arrived = device_dir / local.name
        assert _sha256(arrived) == _sha256(local)
        assert arrived.stat().st_uid == device_user.uid  # written by the device's sshd
        xsession.key("Escape")  # Close
        wait_for("the dialog closed", lambda: dialog not in xsession.visible_windows("fiotray"))

        # Download: "Copy f&rom device…"; the device's path first (it has the focus),
        # then &To folder: the local folder, Enter.
        dialog = _context_menu_item(xsession, app, device.name, "r", "the Copy from device dialog")
        assert _title(xsession, dialog) == f"Copy from {device.name}"
        xsession.type(str(on_device))
        xsession.key("alt+t")
        xsession.type(str(local_dir))
        settle_and_shot(xsession, "x11-world-copy-from-dialog")
        xsession.key("Return")
        wait_for(
            "the copy from the device done (the dialog's title)",
            lambda: _title(xsession, dialog).startswith(("Done", "Failed", "Stopped")),
            timeout=60,
        )
        settle_and_shot(xsession, "x11-world-copy-from-done")
        assert _title(xsession, dialog) == f"Done — Copy from {device.name}"
        fetched = local_dir / on_device.name
        assert _sha256(fetched) == _sha256(on_device)
        assert fetched.stat().st_uid == engineer.user.uid
        xsession.key("Escape")
        wait_for("the dialog closed", lambda: dialog not in xsession.visible_windows("fiotray"))

        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output


def test_a_folder_with_a_locked_key_asks_its_passphrase_once(
    gui_engineer: Engineer,  # noqa: F811
    locked_key: Path,  # noqa: F811
    xsession: XSession,
    device_dir: Path,  # noqa: F811
) -> None:
    engineer, world = gui_engineer, gui_engineer.world
    device = world.devices[0]
    folder = engineer.home / "logs"
    (folder / "deep").mkdir(parents=True)
    files = {"a.log": 70_000, "deep/b.bin": 300_000}
    for rel, size in files.items():
        _random_file(folder / rel, size, engineer)
    for path in (folder, folder / "deep"):
        shutil.chown(path, engineer.user.uid, engineer.user.gid)

    proc, app, _ = start_app(engineer, xsession, "fiotray-copy-locked-world", "--hidden")
    try:
        open_devices_window(xsession, app)
        dialog = _context_menu_item(
            xsession, app, device.name, "t", "the Copy files to device dialog"
        )
        before = set(xsession.visible_windows("fiotray"))
        xsession.key("alt+o")  # F&older…
        new_window(xsession, "fiotray", before, "the folder dialog of Folder…")
        xsession.type(str(folder))
        settle_and_shot(xsession, "x11-world-copy-choose-folder")
        xsession.key("Return")
        wait_for(
            "the folder dialog to close",
            lambda: set(xsession.visible_windows("fiotray")) == before,
        )
        xsession.key("alt+t")
        xsession.type(f"{device_dir}/")
        before = set(xsession.visible_windows("fiotray"))
        xsession.key("Return")
        # The jump hop's ssh asks first; its answer also serves the device's ssh.
        asker = new_window(xsession, "fiotray", before, "the passphrase dialog")
        assert _title(xsession, asker) == f"Passphrase — Copy files to {device.name}"
        xsession.type(PASSPHRASE)
        settle_and_shot(xsession, "x11-world-copy-passphrase")
        xsession.key("Return")
        title = _wait_done(xsession, dialog, "the folder's copy")
        settle_and_shot(xsession, "x11-world-copy-folder-done")
        assert title == f"Done — Copy files to {device.name}"
        for rel in files:
            assert _sha256(device_dir / "logs" / rel) == _sha256(folder / rel), rel
        xsession.key("Escape")
        wait_for("the dialog closed", lambda: dialog not in xsession.visible_windows("fiotray"))

        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
