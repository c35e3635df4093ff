"""What every dialog shares: the style helpers and the WorkDialog shape.

Callers open every dialog with ``open()`` (window-modal, no nested event loop)
and listen to ``accepted``/``finished`` or the dialog's own signals. Work that
talks to the network or the keyring runs as a Backend coroutine through
``Backend.spawn``; meanwhile the dialog shows a busy bar and keeps its inputs
disabled, and a failure is shown inline (the FiotrayError sentence as it is)
instead of closing the dialog. Secrets stay in their line edits until they go
into the backend call, and the line edits are emptied when the dialog closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDir, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend

log = logging.getLogger(__name__)

UNEXPECTED = "Something unexpected failed; see the log."

# -- small helpers ---------------------------------------------------------------------


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor.fromRgbF(
        a.redF() * (1 - t) + b.redF() * t,
        a.greenF() * (1 - t) + b.greenF() * t,
        a.blueF() * (1 - t) + b.blueF() * t,
    )


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5


def muted_color(widget: QWidget) -> QColor:
    # Between text and background: readable on light and dark themes alike, unlike
    # a fixed grey or the placeholder colour some styles make nearly invisible.
    pal = widget.palette()
    return _mix(pal.color(QPalette.ColorRole.WindowText), pal.color(QPalette.ColorRole.Window), 0.4)


def error_color(widget: QWidget) -> QColor:
    return QColor("#ff7b72") if _is_dark(widget) else QColor("#c01c28")


def set_text_color(label: QLabel, color: QColor) -> None:
    pal = label.palette()
    # Not the Disabled group: a disabled note should still look disabled.
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.WindowText, color)
        pal.setColor(group, QPalette.ColorRole.Text, color)
    label.setPalette(pal)


def note_label(text: str, *, rich: bool = False, muted: bool = True) -> QLabel:
    """A wrapped explanatory paragraph (links open in the browser)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    if rich:
        label.setOpenExternalLinks(True)
        # Mouse only: a note with a link would otherwise be a stop in the Tab order.
        label.setTextInteractionFlags(
            Qt.TextInteractionFlag.LinksAccessibleByMouse
            | Qt.TextInteractionFlag.TextSelectableByMouse
        )
    if muted:
        set_text_color(label, muted_color(label))
    return label


def form_layout() -> QFormLayout:
    form = QFormLayout()
    # The same look on every style: fields fill the width (macOS' default does not).
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    return form


def page_widget(*parts: QWidget | QLayout) -> QWidget:
    # Wrapped notes go in a box layout: a QFormLayout spanning row gets their
    # height-for-width wrong and squeezes the text.
    page = QWidget()
    layout = QVBoxLayout(page)
    for part in parts:
        if isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    layout.addStretch(1)
    return page


def line_edit(placeholder: str = "", tooltip: str = "") -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(False)
    if tooltip:
        edit.setToolTip(tooltip)
    return edit


def side_button(text: str, tooltip: str = "") -> QPushButton:
    button = QPushButton(text)
    # Enter in the dialog always means the default button, even after Tab reached this one.
    button.setAutoDefault(False)
    if tooltip:
        button.setToolTip(tooltip)
    return button


def add_file_row(form: QFormLayout, label: str, edit: QLineEdit, browse: QPushButton) -> None:
    """A path field with its Browse… button; the label's mnemonic goes to the field."""
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    row.addWidget(browse)
    form.addRow(label, row)
    label_widget = form.labelForField(row)
    if isinstance(label_widget, QLabel):
        label_widget.setBuddy(edit)


def file_chooser(
    parent: QWidget, title: str, filters: list[str], *, hidden: bool = False
) -> QFileDialog:
    """An open-one-existing-file dialog, Qt's own (the same on every desktop)."""
    dialog = QFileDialog(parent, title)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setNameFilters(filters)
    if hidden:
        dialog.setFilter(dialog.filter() | QDir.Filter.Hidden)
    return dialog


def fixed_font_edit(edit: QLineEdit | QPlainTextEdit) -> None:
    edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))


def display_path(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


class CopyButton(QPushButton):
    """Copies ``payload`` to the clipboard and says so for a moment."""

    # Methods, not closures over the button: a closure connected to the button's own
    # signal makes a cycle that PySide tears down after QApplication, crashing at exit.
    def __init__(self, text: str, tooltip: str) -> None:
        super().__init__(text)
        self.setAutoDefault(False)
        self.setToolTip(tooltip)
        self.payload = ""
        self._label = text
        self._restore = QTimer(self)
        self._restore.setSingleShot(True)
        self._restore.setInterval(1500)
        self._restore.timeout.connect(self._reset)
        self.clicked.connect(self._copy)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.payload)
        self.setText("Copied")
        self._restore.start()

    def _reset(self) -> None:
        self.setText(self._label)


# -- the shared shape ---------------------------------------------------------------------


class WorkDialog(QDialog):
    """Inputs on top, one inline message line, busy bar and buttons at the bottom.

    ``_check()`` decides whether OK is enabled (and what hint to show); OK calls
    ``_submit()``, which usually starts one backend coroutine with ``_start``.
    """

    def __init__(self, backend: Backend | None, parent: QWidget | None, ok_text: str) -> None:
        super().__init__(parent)
        self.backend = backend
        self._task: asyncio.Task[Any] | None = None
        self._active = False
        self._runs = 0  # numbers the calls, so a call abandoned before it started can tell
        self._live_run: int | None = None
        self._started = False
        self._secret_edits: list[QLineEdit] = []
        self._refocus: QWidget | None = None
        self._fitted_height = -1

        self.body = QWidget()
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # server text is never markup
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setProperty("kind", "")
        self.message.hide()

        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setFixedWidth(90)
        self.busy_bar.setMaximumHeight(self.fontMetrics().height())
        self.busy_bar.hide()
        self.busy_label = QLabel()
        # A long status (a long factory name) is clipped rather than widening the dialog.
        self.busy_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.busy_label.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.ok_button.setDefault(True)
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)

        bottom = QHBoxLayout()
        bottom.addWidget(self.busy_bar)
        bottom.addWidget(self.busy_label, 1)
        bottom.addWidget(self.buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.message)
        layout.addLayout(bottom)

    # -- state --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the dialog's backend call is in flight."""
        return self._active

    @property
    def work(self) -> asyncio.Task[Any] | None:
        """The task of the last backend call (awaited by tests and by callers that care)."""
        return self._task

    def _secret(self, edit: QLineEdit) -> QLineEdit:
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setInputMethodHints(
            Qt.InputMethodHint.ImhSensitiveData
            | Qt.InputMethodHint.ImhHiddenText
            | Qt.InputMethodHint.ImhNoPredictiveText
            | Qt.InputMethodHint.ImhNoAutoUppercase
        )
        self._secret_edits.append(edit)
        return edit

    def _check(self) -> tuple[bool, str]:
        """(OK may be pressed, a hint about the input or "")."""
        return True, ""

    def _revalidate(self, *_: object) -> None:
        if self._active:
            return
        ready, hint = self._check()
        self.ok_button.setEnabled(ready)
        if hint:
            self.show_hint(hint)
        else:
            self.clear_message()

    # -- size -------------------------------------------------------------------------------

    def _refit(self, shrink: bool = False) -> None:
        # Qt sizes a window by its sizeHint, which guesses a width for wrapped labels
        # and gets their height wrong (text cut off, or a gap): ask the layout what
        # height the current width needs instead.
        # The height follows the content (grows and shrinks) until the user resizes.
        width = max(self.width(), self.minimumWidth(), self.minimumSizeHint().width())
        needed = self.heightForWidth(width)
        if needed <= 0:
            return
        self.setMinimumHeight(needed)
        follow = shrink or self.height() == self._fitted_height
        target = needed if follow else max(needed, self.height())
        if target != self.height() or width != self.width():
            self.resize(width, target)
        self._fitted_height = target

    def _schedule_refit(self, shrink: bool = False) -> None:
        # After the event loop applied the show/hide that asked for it.
        QTimer.singleShot(0, self, lambda: self._refit(shrink))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._refit(shrink=True)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        needed = self.heightForWidth(event.size().width())
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)

    # -- inline message -------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.message.setProperty("kind", "error")
        set_text_color(self.message, error_color(self))
        self.message.setText(text)
        self.message.show()
        self._schedule_refit()

    def show_hint(self, text: str) -> None:
        self.message.setProperty("kind", "hint")
        set_text_color(self.message, muted_color(self))
        self.message.setText(text)
        self.message.show()
        self._schedule_refit()

    def clear_message(self) -> None:
        self.message.setProperty("kind", "")
        self.message.clear()
        self.message.hide()
        self._schedule_refit()

    # -- running a backend call ---------------------------------------------------------

    def _on_ok(self) -> None:
        if self._active or not self.ok_button.isEnabled():
            return
        self._submit()

    def _submit(self) -> None:
        self.accept()

    def _set_busy(self, busy: bool, text: str = "") -> None:
        if busy:
            # Disabling the inputs (and OK) moves focus away; give it back afterwards,
            # so a failed attempt can be corrected or retried straight away.
            focused = self.focusWidget()  # kept per window, active or not
            self._refocus = focused if focused is not None and self.isAncestorOf(focused) else None
        self._active = busy
        self.body.setEnabled(not busy)
        self.busy_bar.setVisible(busy)
        self.busy_label.setText(text)
        self.busy_label.setVisible(busy)
        if busy:
            self.ok_button.setEnabled(False)
            self.clear_message()
        else:
            self._revalidate()
            if (
                self._refocus is not None
                and self._refocus.isVisible()
                and self._refocus.isEnabled()
            ):
                self._refocus.setFocus()
            self._refocus = None

    def _start(
        self,
        call: Callable[[], Awaitable[Any]],
        busy_text: str,
        on_success: Callable[[Any], None],
    ) -> None:
        # ``call`` makes the coroutine only once the task runs: a task cancelled
        # before it starts then leaves no never-awaited coroutine behind.
        assert self.backend is not None
        self._set_busy(True, busy_text)
        self._runs += 1
        self._live_run, self._started = self._runs, False
        self._task = self.backend.spawn(
            self._run(self._runs, call, on_success), what=self.windowTitle()
        )

    async def _run(
        self, run: int, call: Callable[[], Awaitable[Any]], on_success: Callable[[Any], None]
    ) -> bool:
        if run != self._live_run:
            return False  # the dialog closed before this task got its first turn
        self._started = True
        try:
            result = await call()
        except FiotrayError as exc:
            self._set_busy(False)
            self.show_error(str(exc))
            return False
        except asyncio.CancelledError:
            raise
        except Exception:
            # The backend's own guard would turn this into a notice and leave the
            # dialog spinning; here it is logged once and the dialog stays usable.
            log.exception("%s: unexpected failure", type(self).__name__)
            self._set_busy(False)
            self.show_error(UNEXPECTED)
            return False
        self._set_busy(False)
        on_success(result)
        return True

    def done(self, r: int) -> None:
        # Closing while a call runs abandons it: nothing may touch this dialog afterwards.
        # A task that has not started yet is not cancelled but told to do nothing: a
        # cancel then would drop its coroutines unawaited.
        if self._active:
            self._active, self._live_run = False, None
            if self._started and self._task is not None and not self._task.done():
                self._task.cancel()
        for edit in self._secret_edits:
            edit.setText("")  # setText, not clear(): it also drops the undo history
        super().done(r)
