"""The copy dialog on the demo backend, with a stand-in for scp that draws scp's meter on
the pseudo-terminal core.transfer gives it: progress, the result, Cancel mid-copy.

The real scp through the VPN world is tests/integration/test_copy_real.py's.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QPushButton, QWidget

from fiotray.core.transfer import CopyPlan
from fiotray.gui.dialogs.copy import CopyDialog

# The devices window's fixture and helpers (no test of that module is imported).
from tests.gui.test_devices_window import find_row, show_loaded, window

SIZE = 4 * 1024 * 1024
# scp's meter lines, as OpenSSH's progressmeter.c draws them; "hang" stops half-way.
FAKE_SCP = r"""
import sys, time
name = "payload.bin"
out = sys.stdout
out.write("\r" + name + "   0%    0     0.0KB/s   --:-- ETA"); out.flush()
time.sleep(0.05)
out.write("\r" + name + "  50% 2048KB   2.0MB/s   00:01 ETA"); out.flush()
if sys.argv[1] == "hang":
    time.sleep(60)
if sys.argv[1] == "fail":
    sys.stderr.write("scp: /var/tmp/payload.bin: No space left on device\n")
    sys.exit(1)
out.write("\r" + name + " 100% 4096KB   4.0MB/s   00:01    \n"); out.flush()
"""
# Screenshots to look at go where FIOTRAY_SHOTS says; without it, grabbed and checked only.
SHOTS = os.environ.get("FIOTRAY_SHOTS")


async def until(check, what: str, timeout: float = 10) -> None:
    """A bounded wait on the Qt loop for `check()`."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


def dialog_with_fake_scp(
    qtbot, backend, tmp_path: Path, mode: str, script: str = FAKE_SCP
) -> CopyDialog:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"\0" * SIZE)

    async def plan_copy_to(factory, device, sources, dest, *, recursive):
        argv = [sys.executable, "-c", script, mode]
        return CopyPlan("upload", device, argv, (str(payload),), dest, SIZE)

    backend.plan_copy_to = plan_copy_to
    dialog = CopyDialog(backend, "demo", "gateway-01", upload=True, sources=[str(payload)])
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def shot_of(widget: QWidget, name: str) -> None:
    image = widget.grab()
    assert not image.isNull()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(SHOTS) / name))


def shot(dialog: CopyDialog, name: str) -> None:
    image = dialog.grab()
    assert not image.isNull() and image.width() >= dialog.minimumWidth()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(SHOTS) / name))


async def test_copy_shows_progress_and_the_result(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "ok")
    assert dialog.windowTitle() == "Copy files to gateway-01"
    assert dialog.ok_button.isEnabled()
    dialog.ok_button.click()
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.result is not None and dialog.result.ok
    assert dialog.progress.value() == 100
    assert dialog.message.text() == (
        f"Copied 1 file, 4.0 MiB ({SIZE} bytes), to gateway-01:/var/tmp/."
    )
    assert dialog.message.property("kind") == "done"
    assert not dialog.ok_button.isVisible() and dialog.cancel_button.text() == "Close"
    # The exact size at the end, whatever scp's rounding: 4 MiB of 4 MiB.
    assert dialog.progress_label.text() == "payload.bin: 100% — 4.0 MiB of 4.0 MiB, 4.0 MiB/s"
    assert dialog.windowTitle() == "Done — Copy files to gateway-01"
    shot(dialog, "copy-done.png")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


async def test_cancel_mid_copy_says_what_arrived_and_stays_open(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "hang")
    dialog.ok_button.click()
    await until(lambda: "50%" in dialog.progress_label.text(), "no 50% reading")
    assert dialog.progress.value() == 50 and dialog.cancel_button.isEnabled()
    assert dialog.windowTitle() == "50% — Copy files to gateway-01"
    await tick_refit()
    shot(dialog, "copy-running.png")
    dialog.cancel_button.click()  # stops scp; the dialog stays
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.isVisible()
    assert dialog.result is not None and dialog.result.cancelled
    assert dialog.message.text() == (
        f"Partial copy: {2048 * 1024} of {SIZE} bytes; gateway-01:/var/tmp/ may be "
        "incomplete (kept)."
    )
    assert dialog.message.property("kind") == "error"
    assert dialog.windowTitle() == "Stopped — Copy files to gateway-01"
    shot(dialog, "copy-cancelled.png")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


# A folder of two files, 1 MiB and 3 MiB: the second stops half-way.
FOLDER_SCP = r"""
import sys, time
out = sys.stdout
out.write("\ra.bin 100% 1024KB   1.0MB/s   00:01    \n"); out.flush()
out.write("\rpayload.bin  50% 1536KB   1.5MB/s   00:01 ETA"); out.flush()
time.sleep(60)
"""


async def test_a_folders_bar_follows_the_whole_copy(qtbot, backend, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\0" * (SIZE // 4))
    (folder / "payload.bin").write_bytes(b"\0" * (SIZE // 4 * 3))

    async def plan_copy_to(factory, device, sources, dest, *, recursive):
        assert recursive and sources == [str(folder)]
        argv = [sys.executable, "-c", FOLDER_SCP]
        return CopyPlan("upload", device, argv, (str(folder),), dest, SIZE)

    backend.plan_copy_to = plan_copy_to
    dialog = CopyDialog(backend, "demo", "gateway-01", upload=True, sources=[str(folder)])
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.ok_button.click()
    await until(lambda: "payload.bin" in dialog.progress_label.text(), "no second file")
    # 1 MiB + 1.5 MiB of 4 MiB: the bar is the copy's, the line the file's.
    assert dialog.progress.value() == 62
    assert dialog.windowTitle() == "62% — Copy files to gateway-01"
    assert dialog.progress_label.text().startswith("payload.bin: 50% — 2.5 MiB of 4.0 MiB")
    dialog.cancel_button.click()
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.result is not None and dialog.result.cancelled


async def test_a_failed_copy_says_why_in_one_line(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "fail")
    dialog.ok_button.click()
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.message.text() == (
        "Copy to gateway-01 failed: /var/tmp/payload.bin: no space left on device."
    )
    assert dialog.message.property("kind") == "error"
    assert dialog.windowTitle() == "Failed — Copy files to gateway-01"
    assert dialog.progress_label.text() == "Stopped at 50% of payload.bin."
    assert dialog.ok_button.isEnabled()  # to try again once there is room
    shot(dialog, "copy-failed.png")


# ssh asking for a key's passphrase through $SSH_ASKPASS, as it does under
# SSH_ASKPASS_REQUIRE=force: the copy goes on with the right answer only.
ASKING_SCP = r"""
import os, subprocess, sys
prompt = "Enter passphrase for key '/home/me/.ssh/id_ed25519': "
got = subprocess.run([os.environ["SSH_ASKPASS"], prompt], capture_output=True, text=True)
if got.returncode == 0 and got.stdout == "open sesame\n":
    sys.stdout.write("\rpayload.bin 100% 4096KB   4.0MB/s   00:01    \n")
    sys.exit(0)
sys.stderr.write("dev@10.42.42.7: Permission denied (publickey).\n")
sys.exit(255)
"""


async def _asked(dialog: CopyDialog):
    await until(lambda: dialog.asker is not None and dialog.asker.isVisible(), "no prompt")
    assert dialog.asker is not None
    return dialog.asker


async def test_a_keys_passphrase_is_asked_in_a_password_dialog(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "ok", script=ASKING_SCP)
    dialog.ok_button.click()
    asker = await _asked(dialog)
    assert asker.isModal() and asker.textEchoMode() == QLineEdit.EchoMode.Password
    assert asker.labelText() == (
        "Passphrase for the SSH key /home/me/.ssh/id_ed25519:\n"
        "(ssh-add adds the key to your SSH agent; then nothing asks for it)"
    )
    assert dialog.busy_label.text() == "Waiting for the key's passphrase…"
    edit = asker.findChild(QLineEdit)
    QTest.keyClicks(edit, "open sesame")
    await tick_refit()
    shot_of(asker, "copy-passphrase.png")
    QTest.keyClick(edit, Qt.Key.Key_Return)
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.result is not None and dialog.result.ok, dialog.message.text()
    assert dialog.asker is None


async def test_a_dismissed_passphrase_says_what_to_do(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "ok", script=ASKING_SCP)
    dialog.ok_button.click()
    asker = await _asked(dialog)
    QTest.keyClick(asker, Qt.Key.Key_Escape)
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.message.text() == (
        "Copy to gateway-01 failed: no passphrase was given for the SSH key "
        "/home/me/.ssh/id_ed25519. To copy without being asked, add the key to your SSH "
        "agent: ssh-add /home/me/.ssh/id_ed25519"
    )
    assert dialog.windowTitle() == "Failed — Copy files to gateway-01"
    shot(dialog, "copy-passphrase-dismissed.png")


async def test_cancel_while_the_passphrase_is_asked_closes_the_prompt(qtbot, backend, tmp_path):
    dialog = dialog_with_fake_scp(qtbot, backend, tmp_path, "ok", script=ASKING_SCP)
    dialog.ok_button.click()
    asker = await _asked(dialog)
    assert dialog.cancel_button.isEnabled()
    # What Cancel does (a person meets the modal prompt first; a quit gets here too).
    dialog.reject()
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    assert dialog.result is not None and dialog.result.cancelled
    assert dialog.asker is None
    assert not shiboken6.isValid(asker) or not asker.isVisible()  # closed, then deleted


@pytest.mark.parametrize("upload", [True, False])
async def test_inputs_are_checked(qtbot, backend, upload, tmp_path):
    dialog = CopyDialog(backend, "demo", "gateway-01", upload=upload)
    qtbot.addWidget(dialog)
    dialog.open()
    if upload:
        assert not dialog.ok_button.isEnabled()
        assert dialog.message.text() == "Choose the files or the folder to copy."
    else:
        dialog.remote_edit.setText("")
        assert not dialog.ok_button.isEnabled()
        dialog.remote_edit.setText("/var/log/messages")
        dialog.local_edit.setText(str(tmp_path / "absent"))
        assert dialog.message.text() == "The local folder does not exist."
        dialog.local_edit.setText(str(tmp_path))
        assert dialog.ok_button.isEnabled()
    shot(dialog, f"copy-{'to' if upload else 'from'}-empty.png")


async def test_files_or_a_folder_are_chosen_with_qt_file_dialogs(qtbot, backend, tmp_path):
    """Files… picks files, Folder… one folder (copied with -r), through Qt's own dialog
    driven as a person would: a name typed into it, then accepted."""
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"x")
    folder = tmp_path / "logs"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "c.log").write_text("c")
    dialog = CopyDialog(backend, "demo", "gateway-01", upload=True)
    qtbot.addWidget(dialog)
    dialog.open()

    dialog.files_button.click()
    chooser = dialog.file_dialog
    assert chooser is not None and chooser.isVisible() and chooser.isModal()
    assert chooser.fileMode() == QFileDialog.FileMode.ExistingFiles
    chooser.setDirectory(str(tmp_path))
    chooser.selectFile('"a.bin" "b.bin"')  # the name field's text for two files
    chooser.accept()
    assert dialog.sources == [str(tmp_path / "a.bin"), str(tmp_path / "b.bin")]
    assert not dialog._recursive() and dialog.ok_button.isEnabled()
    await until(lambda: dialog.file_dialog is None, "the files chooser still open")

    dialog.folder_button.click()
    chooser = dialog.file_dialog
    assert chooser is not None and chooser.fileMode() == QFileDialog.FileMode.Directory
    assert chooser.testOption(QFileDialog.Option.ShowDirsOnly)
    assert chooser.directory().absolutePath() == str(tmp_path)  # where the last ones were
    chooser.selectFile(str(folder))
    chooser.accept()
    assert dialog.sources == [str(folder)] and dialog._recursive()
    assert dialog.local_edit.text() == f"{folder}/"
    shot(dialog, "copy-to-folder.png")

    # Dismissed: the choice stays as it was.
    dialog.files_button.click()
    assert dialog.file_dialog is not None
    dialog.file_dialog.reject()
    assert dialog.sources == [str(folder)]


async def test_download_destination_is_chosen_as_a_folder(qtbot, backend, tmp_path):
    into = tmp_path / "into"
    into.mkdir()
    dialog = CopyDialog(backend, "demo", "gateway-01", upload=False)
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.recursive is not None and not dialog.recursive.isChecked()
    dialog.remote_edit.setText("/var/log")
    dialog.recursive.setChecked(True)
    dialog.local_edit.setText(str(tmp_path))
    browse = [b for b in dialog.findChildren(QPushButton) if b.text() == "&Browse…"]
    browse[0].click()
    chooser = dialog.file_dialog
    assert chooser is not None and chooser.fileMode() == QFileDialog.FileMode.Directory
    assert chooser.directory().absolutePath() == str(tmp_path)
    chooser.selectFile(str(into))
    chooser.accept()
    assert dialog.local_edit.text() == str(into) and dialog.ok_button.isEnabled()
    assert dialog._recursive()
    shot(dialog, "copy-from-folder.png")


async def tick_refit() -> None:
    """The dialog refits on a zero-timer after showing the bar: let it run."""
    await asyncio.sleep(0.05)


# -- files dropped on a device row ------------------------------------------------------


def _drag(window, row: int, urls: list[QUrl]) -> list[bool]:
    """DragEnter, DragMove and Drop of `urls` over `row`; whether each was accepted."""
    mime = QMimeData()
    mime.setUrls(urls)
    rect = window.table.visualRect(window.proxy.index(row, 0))
    pos = rect.center()
    copy, left, none = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    events = [
        QDragEnterEvent(pos, copy, mime, left, none),
        QDragMoveEvent(pos, copy, mime, left, none),
        QDropEvent(QPointF(pos), copy, mime, left, none),
    ]
    accepted = []
    for event in events:
        QApplication.sendEvent(window.table.viewport(), event)
        accepted.append(event.isAccepted())
    return accepted


async def test_files_dropped_on_a_device_row_open_the_copy_dialog(window, backend, tmp_path):
    await show_loaded(window)
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)
    row, device = find_row(window, lambda d: d.vpn_enabled and not d.vpn_pending)
    folder = tmp_path / "logs"
    folder.mkdir()
    dropped = [str(tmp_path / "a.bin"), str(folder)]
    (tmp_path / "a.bin").write_bytes(b"x")
    assert _drag(window, row, [QUrl.fromLocalFile(p) for p in dropped]) == [True, True, True]
    dialog = window.findChild(CopyDialog)
    assert dialog is not None and dialog.isVisible()
    assert (dialog.device, dialog.upload, dialog._sources) == (device.device.name, True, dropped)
    assert dialog.recursive is None and dialog._recursive()  # a folder came with them
    assert dialog.local_edit.text() == f"{dropped[0]}; {folder}/"
    assert dialog.ok_button.isEnabled()
    dialog.reject()

    # A web link is no file to copy: refused at once.
    assert _drag(window, row, [QUrl("https://example.com/a.bin")])[0] is False
    # A device SSH cannot reach: the window says why, no dialog.
    off, name = find_row(window, lambda d: not d.vpn_enabled and not d.vpn_address)
    await asyncio.sleep(0.05)  # the closed dialog goes
    _drag(window, off, [QUrl.fromLocalFile(dropped[0])])
    assert f"Cannot copy to {name.device.name}: VPN is off" in window.message_bar.text.text()


__all__ = ["window"]
