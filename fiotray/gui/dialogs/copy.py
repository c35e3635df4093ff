"""Copy files to or from a device: the paths, then a progress bar, Cancel and the result.

An upload takes files (Files…), a folder with its contents (Folder…) or what was dropped
on the device row; a download takes a path on the device and a local folder (Browse…).

The copy is ops.transfer's (scp over the device's SSH route); this dialog only asks
for the paths and shows the progress events. Cancel while a copy runs stops scp and
shows how much arrived ("Partial copy: ..."), without closing, so the result is read;
closing the dialog while it runs stops the copy too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDir, QEvent, QObject
from PySide6.QtGui import QDragMoveEvent, QDropEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.core.format import safe_text, size
from fiotray.gui.dialogs.base import (
    WorkDialog,
    add_file_row,
    form_layout,
    line_edit,
    note_label,
    page_widget,
    set_text_color,
    side_button,
)

if TYPE_CHECKING:
    from fiotray.core.transfer import CopyJob, CopyProgress, CopyResult
    from fiotray.gui.backend import Backend


class CopyDialog(WorkDialog):
    """``upload=True``: local files to a path on the device; else a device file to a folder."""

    def __init__(
        self,
        backend: Backend | None,
        factory: str,
        device: str,
        *,
        upload: bool,
        parent: QWidget | None = None,
        sources: list[str] | None = None,
    ) -> None:
        super().__init__(backend, parent, "Copy")
        self.factory, self.device, self.upload = factory, device, upload
        self.job: CopyJob | None = None
        self.result: CopyResult | None = None
        shown = safe_text(device, 60)
        self.title = f"Copy files to {shown}" if upload else f"Copy from {shown}"
        self.setWindowTitle(self.title)
        # An upload's field shares its row with two buttons.
        self.setMinimumWidth(600 if upload else 520)

        form = form_layout()
        # A path on the device, not a temporary file of this machine's.
        device_tmp = "/var/tmp/"  # noqa: S108
        self.remote_edit = line_edit(device_tmp if upload else "/var/log/messages")
        self._sources = list(sources or [])
        self._file_dialog: QFileDialog | None = None
        self._asker: QInputDialog | None = None
        self.recursive: QCheckBox | None
        if upload:
            self.local_edit = line_edit("nothing chosen yet")
            self.local_edit.setReadOnly(True)  # the list comes from the buttons (or a drop)
            self._show_sources()
            # Two buttons: no file dialog picks files and folders in one go, and a folder
            # is what a user copies as often as a file.
            self.files_button = side_button("F&iles…", "Choose files to copy")
            self.files_button.clicked.connect(self._choose_files)
            self.folder_button = side_button(
                "F&older…", "Choose a folder to copy, with its contents"
            )
            self.folder_button.clicked.connect(self._choose_folder)
            row = QHBoxLayout()
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(self.local_edit, 1)
            row.addWidget(self.files_button)
            row.addWidget(self.folder_button)
            form.addRow("&Copy:", row)
            label = form.labelForField(row)
            if isinstance(label, QLabel):
                label.setBuddy(self.local_edit)
            self.remote_edit.setText(device_tmp)
            form.addRow(f"&To (on {shown}):", self.remote_edit)
            self.recursive = None
        else:
            form.addRow(f"&From (on {shown}):", self.remote_edit)
            downloads = Path.home() / "Downloads"
            self.local_edit = line_edit("a local folder")
            self.local_edit.setText(str(downloads if downloads.is_dir() else Path.home()))
            browse = side_button("&Browse…", "Choose the folder to copy into")
            browse.clicked.connect(self._choose_dest)
            add_file_row(form, "&To folder:", self.local_edit, browse)
            # Only a download needs the question: an upload's folders are known on disk.
            self.recursive = QCheckBox(
                "The path is a folder: copy it and its contents (&recursive)"
            )
            form.addRow("", self.recursive)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.hide()
        self.progress_label = QLabel()
        self.progress_label.hide()
        note = note_label(
            "Through the device's SSH route (as Open SSH terminal), with scp over SFTP: a "
            "path on the device is a file name, never shell text."
        )
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(page_widget(form, note))
        # Outside the body, which is disabled while the copy runs: the bar stays bright.
        outer = self.layout()
        assert isinstance(outer, QVBoxLayout)
        outer.insertWidget(1, self.progress)
        outer.insertWidget(2, self.progress_label)
        for edit in (self.local_edit, self.remote_edit):
            edit.textChanged.connect(self._revalidate)
        # What is left to type; a read-only file list with focus would show all selected.
        self.remote_edit.setFocus()
        self._revalidate()

    # -- input ----------------------------------------------------------------------------

    @property
    def file_dialog(self) -> QFileDialog | None:
        """The chooser last opened by Files…, Folder… or Browse… (tests drive it)."""
        return self._file_dialog

    def _chooser(self, title: str, mode: QFileDialog.FileMode, start: str) -> QFileDialog:
        # Qt's own dialog opened with open(): no nested event loop, and the same on every
        # desktop (a native one can hang without a portal). Hidden files are shown: what is
        # copied to a device is often a dotfile or a folder in ~/.config.
        dialog = QFileDialog(self, title)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        dialog.setFileMode(mode)
        if mode == QFileDialog.FileMode.Directory:
            dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setFilter(dialog.filter() | QDir.Filter.Hidden)
        if os.path.isdir(start):
            dialog.setDirectory(start)
        # Its selection signals come before finished: the choice is taken, then it goes.
        dialog.finished.connect(self._chooser_done)
        self._file_dialog = dialog
        return dialog

    def _chooser_done(self) -> None:
        if self._file_dialog is not None:
            self._file_dialog.deleteLater()
            self._file_dialog = None

    def _start_folder(self) -> str:
        """Where a chooser opens: next to what was chosen last, else the home folder."""
        if self._sources:
            return os.path.dirname(self._sources[0].rstrip("/")) or str(Path.home())
        return str(Path.home())

    def _choose_files(self) -> None:
        dialog = self._chooser(
            "Files to copy", QFileDialog.FileMode.ExistingFiles, self._start_folder()
        )
        dialog.filesSelected.connect(self._set_sources)
        dialog.open()

    def _choose_folder(self) -> None:
        dialog = self._chooser(
            "Folder to copy", QFileDialog.FileMode.Directory, self._start_folder()
        )
        dialog.fileSelected.connect(self._set_folder)
        dialog.open()

    def _choose_dest(self) -> None:
        dialog = self._chooser("Copy into", QFileDialog.FileMode.Directory, self.local_edit.text())
        dialog.fileSelected.connect(self.local_edit.setText)
        dialog.open()

    def _set_sources(self, paths: list[str]) -> None:
        if paths:
            self._sources = list(paths)
            self._show_sources()

    def _set_folder(self, folder: str) -> None:
        self._set_sources([folder])

    def _show_sources(self) -> None:
        # A folder ends in '/': it goes with everything in it.
        shown = [p.rstrip("/") + "/" if os.path.isdir(p) else p for p in self._sources]
        self.local_edit.setText("; ".join(shown))
        # The end shows when the field is too narrow: the names, not a long common start.
        self.local_edit.setCursorPosition(len(self.local_edit.text()))
        self.local_edit.setToolTip("\n".join(shown))

    @property
    def sources(self) -> list[str]:
        return list(self._sources)

    def _recursive(self) -> bool:
        if self.recursive is None:  # an upload: scp needs -r exactly when a folder goes
            return any(os.path.isdir(p) for p in self._sources)
        return self.recursive.isChecked()

    def _check(self) -> tuple[bool, str]:
        if self.result is not None:
            return False, ""
        if self.upload and not self._sources:
            return False, "Choose the files or the folder to copy."
        if not self.upload and not self.remote_edit.text():
            return False, f"Which file on {self.device}?"
        if not self.upload and not os.path.isdir(self.local_edit.text()):
            return False, "The local folder does not exist."
        return True, ""

    # -- running ----------------------------------------------------------------------------

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        remote = self.remote_edit.text()
        recursive = self._recursive()

        async def call() -> CopyResult:
            if self.upload:
                plan = await backend.plan_copy_to(
                    self.factory, self.device, self._sources, remote, recursive=recursive
                )
            else:
                plan = await backend.plan_copy_from(
                    self.factory, self.device, remote, self.local_edit.text(), recursive=recursive
                )
            self.job = backend.copy_job(plan)
            self.job.ask = self._ask  # a key's passphrase, in a password dialog over this one
            self.progress.setValue(0)
            self.progress.show()
            self.progress_label.show()
            self._schedule_refit()  # grow for the bar, rather than squeeze the inputs
            self.cancel_button.setEnabled(True)
            try:
                return await backend.run_copy(self.job, self.on_progress)
            except FiotrayError:
                self.setWindowTitle(f"Failed — {self.title}")  # the reason shows below
                self._show_stopped()
                raise

        self._start(call, "Copying…", self._finished)
        # Cancel stays live during the copy: it stops scp (see reject).
        self.cancel_button.setEnabled(True)

    @property
    def asker(self) -> QInputDialog | None:
        """The passphrase dialog while ssh waits for it (tests answer it)."""
        return self._asker

    async def _ask(self, prompt: str) -> str | None:
        """ssh's prompt in a password dialog, window-modal over this one; None when it is
        dismissed (ssh then tries its next key, and the failure says what happened)."""
        asker = QInputDialog(self)
        asker.setWindowTitle(f"Passphrase — {self.title}")
        asker.setInputMode(QInputDialog.InputMode.TextInput)
        asker.setTextEchoMode(QLineEdit.EchoMode.Password)
        asker.setLabelText(prompt_label(prompt))
        asker.setOkButtonText("&Continue")
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def finished(code: int) -> None:
            if not answer.done():
                accepted = code == QDialog.DialogCode.Accepted.value
                answer.set_result(asker.textValue() if accepted else None)

        asker.finished.connect(finished)
        self._asker = asker
        self.busy_label.setText("Waiting for the key's passphrase…")
        asker.open()
        try:
            return await answer
        finally:
            # Cancelled (the copy stopped, ssh gave up): the question goes with it.
            asker.setTextValue("")
            asker.close()
            asker.deleteLater()
            self._asker = None
            self.busy_label.setText("Copying…")

    def on_progress(self, event: CopyProgress) -> None:
        # The bar and the title follow the whole copy where its size is known (a folder's
        # files each go 0-100%); the line below names the file and its own percentage.
        whole = min(100, event.copied * 100 // event.total) if event.total else event.percent
        self.progress.setValue(whole)
        # In the title too: a taskbar, or a window behind others, shows how far it got.
        self.setWindowTitle(f"{whole}% — {self.title}")
        of = f" of {size(event.total)}" if event.total else ""
        eta = f", {event.eta} left" if event.eta else ""
        self.progress_label.setText(
            f"{safe_text(event.name, 50)}: {event.percent}% — {size(event.copied)}{of}, "
            f"{size(int(event.rate))}/s{eta}"
        )

    def _finished(self, result: Any) -> None:
        self.result = result
        if result.ok:
            self.progress.setValue(100)
            last = self.job.last if self.job is not None else None
            if last is not None and last.total is not None:
                # scp's last figure is rounded ("361.0 KiB of 361.3 KiB"): all of it came.
                self.on_progress(dataclasses.replace(last, copied=result.copied))
            self.show_hint(result.summary())
            # The result, not a hint about the input: in the text's own colour, not muted.
            self.message.setProperty("kind", "done")
            set_text_color(self.message, self.palette().color(QPalette.ColorRole.WindowText))
        else:
            self._show_stopped()
            self.show_error(result.summary())
        state = "Done" if result.ok else "Stopped" if result.cancelled else "Failed"
        self.setWindowTitle(f"{state} — {self.title}")
        self.ok_button.setEnabled(False)
        self.ok_button.hide()
        self.cancel_button.setText("Close")

    def _show_stopped(self) -> None:
        last = self.job.last if self.job is not None else None
        if last is not None:  # where it stopped, without the ETA of a copy that ended
            self.progress_label.setText(
                f"Stopped at {last.percent}% of {safe_text(last.name, 50)}."
            )

    def reject(self) -> None:
        # While scp runs, Cancel stops it and the dialog stays to show what arrived.
        if self.running and self.job is not None and not self.job.cancelled:
            self.job.cancel()
            self.busy_label.setText("Stopping the copy…")
            return
        super().reject()


def prompt_label(prompt: str) -> str:
    """ssh's prompt as the passphrase dialog says it: which key, and how not to be asked."""
    retry = prompt.startswith("Wrong passphrase, try again. ")
    prompt = prompt.removeprefix("Wrong passphrase, try again. ")
    match = re.fullmatch(r"Enter passphrase for key '(.*)': ?", prompt)
    if match is None:
        text = safe_text(prompt.strip(), 200)
    else:
        key = safe_text(match[1], 120)
        text = (
            f"Passphrase for the SSH key {key}:\n"
            "(ssh-add adds the key to your SSH agent; then nothing asks for it)"
        )
    return f"Wrong passphrase, try again.\n{text}" if retry else text


class FileDrops(QObject):
    """Local files dropped on a row of `view` call ``on_drop(row, paths)``.

    An event filter on the view's viewport, so the window that owns the view needs one
    line to take drops. Only local files are taken (a URL from a browser is refused),
    and only over a row.
    """

    def __init__(self, view: QAbstractItemView, on_drop: Callable[[int, list[str]], None]) -> None:
        super().__init__(view)
        self.view = view
        self.on_drop = on_drop
        view.setAcceptDrops(True)
        view.viewport().setAcceptDrops(True)
        view.viewport().installEventFilter(self)

    def _row(self, event: QDropEvent | QDragMoveEvent) -> int:
        return self.view.indexAt(event.position().toPoint()).row()

    @staticmethod
    def _paths(event: QDropEvent | QDragMoveEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        urls = mime.urls()
        if not all(url.isLocalFile() for url in urls):
            return []
        return [url.toLocalFile() for url in urls]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        assert isinstance(event, QDropEvent)  # DragEnter and DragMove derive from it
        paths = self._paths(event)
        # DragEnter must be accepted for DragMove to follow; the row is judged on the move.
        ok = bool(paths) and (kind == QEvent.Type.DragEnter or self._row(event) >= 0)
        if ok:
            event.acceptProposedAction()
        else:
            event.ignore()
        if ok and kind == QEvent.Type.Drop:
            self.on_drop(self._row(event), paths)
        return True
