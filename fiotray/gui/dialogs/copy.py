"""Copy files to or from a device: the paths, then a progress bar, Cancel and the result.

The copy is ops.transfer's (scp over the device's SSH route); this dialog only asks
for the paths and shows the progress events. Cancel while a copy runs stops scp and
shows how much arrived ("Partial copy: ..."), without closing, so the result is read;
closing the dialog while it runs stops the copy too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.format import safe_text, size
from fiotray.gui.dialogs.base import (
    WorkDialog,
    add_file_row,
    form_layout,
    line_edit,
    note_label,
    page_widget,
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
        self.setWindowTitle(f"Copy files to {shown}" if upload else f"Copy from {shown}")
        self.setMinimumWidth(520)

        form = form_layout()
        self.local_edit = line_edit(
            "choose with Browse…, or drop files on the device row" if upload else "a local folder"
        )
        # A path on the device, not a temporary file of this machine's.
        device_tmp = "/var/tmp/"  # noqa: S108
        self.remote_edit = line_edit(device_tmp if upload else "/var/log/messages")
        browse = side_button("&Browse…", "Choose files" if upload else "Choose a folder")
        browse.clicked.connect(self._browse)
        self._sources = list(sources or [])
        if upload:
            self.local_edit.setText("; ".join(self._sources))
            self.local_edit.setReadOnly(True)  # the list comes from Browse… (or a drop)
            add_file_row(form, "&Files:", self.local_edit, browse)
            self.remote_edit.setText(device_tmp)
            form.addRow(f"&To (on {shown}):", self.remote_edit)
        else:
            form.addRow(f"&From (on {shown}):", self.remote_edit)
            downloads = Path.home() / "Downloads"
            self.local_edit.setText(str(downloads if downloads.is_dir() else Path.home()))
            add_file_row(form, "&To folder:", self.local_edit, browse)
        self.recursive = QCheckBox("Copy folders and their contents (&recursive)")
        self.recursive.setChecked(any(os.path.isdir(p) for p in self._sources))
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

    def _browse(self) -> None:
        if self.upload:
            files, _ = QFileDialog.getOpenFileNames(self, "Files to copy")
            if files:
                self._sources = files
                self.local_edit.setText("; ".join(files))
        else:
            folder = QFileDialog.getExistingDirectory(self, "Copy into", self.local_edit.text())
            if folder:
                self.local_edit.setText(folder)

    def _check(self) -> tuple[bool, str]:
        if self.result is not None:
            return False, ""
        if self.upload and not self._sources:
            return False, "Choose the files to copy."
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
        recursive = self.recursive.isChecked()

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
            self.progress.setValue(0)
            self.progress.show()
            self.progress_label.show()
            self._schedule_refit()  # grow for the bar, rather than squeeze the inputs
            self.cancel_button.setEnabled(True)
            return await backend.run_copy(self.job, self.on_progress)

        self._start(call, "Copying…", self._finished)
        # Cancel stays live during the copy: it stops scp (see reject).
        self.cancel_button.setEnabled(True)

    def on_progress(self, event: CopyProgress) -> None:
        self.progress.setValue(event.percent)
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
            self.show_hint(result.summary())
        else:
            last = self.job.last if self.job is not None else None
            if last is not None:  # where it stopped, without the ETA of a copy that ended
                self.progress_label.setText(
                    f"Stopped at {last.percent}% of {safe_text(last.name, 50)}."
                )
            self.show_error(result.summary())
        self.ok_button.setEnabled(False)
        self.ok_button.hide()
        self.cancel_button.setText("Close")

    def reject(self) -> None:
        # While scp runs, Cancel stops it and the dialog stays to show what arrived.
        if self.running and self.job is not None and not self.job.cancelled:
            self.job.cancel()
            self.busy_label.setText("Stopping the copy…")
            return
        super().reject()


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
