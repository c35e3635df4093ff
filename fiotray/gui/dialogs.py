"""The app's dialogs: sign in, add or import a tunnel, settings, help.

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
import dataclasses
import ipaddress
import itertools
import logging
import re
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDir, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QStyle,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.screen import fit_to_screen

if TYPE_CHECKING:
    from fiotray.core.factories import Factory
    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend

log = logging.getLogger(__name__)

UNEXPECTED = "Something unexpected failed; see the log."
TOKENS_PAGE = "https://app.foundries.io/settings/tokens/"
CREDENTIALS_PAGE = "https://app.foundries.io/settings/credentials/"
FIOCTL_DEFAULT = "~/.config/fioctl.yaml"
OAUTH_TIP = (
    "The OAuth server for application credentials, when it is not app.foundries.io. The API "
    "host is derived from it (app → api) unless you set the API URL."
)


# -- small helpers ---------------------------------------------------------------------


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor.fromRgbF(
        a.redF() * (1 - t) + b.redF() * t,
        a.greenF() * (1 - t) + b.greenF() * t,
        a.blueF() * (1 - t) + b.blueF() * t,
    )


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5


def _muted_color(widget: QWidget) -> QColor:
    # Between text and background: readable on light and dark themes alike, unlike
    # a fixed grey or the placeholder colour some styles make nearly invisible.
    pal = widget.palette()
    return _mix(pal.color(QPalette.ColorRole.WindowText), pal.color(QPalette.ColorRole.Window), 0.4)


def _error_color(widget: QWidget) -> QColor:
    return QColor("#ff7b72") if _is_dark(widget) else QColor("#c01c28")


def _set_text_color(label: QLabel, color: QColor) -> None:
    pal = label.palette()
    # Not the Disabled group: a disabled note should still look disabled.
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.WindowText, color)
        pal.setColor(group, QPalette.ColorRole.Text, color)
    label.setPalette(pal)


def _note(text: str, *, rich: bool = False, muted: bool = True) -> QLabel:
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
        _set_text_color(label, _muted_color(label))
    return label


def _form() -> QFormLayout:
    form = QFormLayout()
    # The same look on every style: fields fill the width (macOS' default does not).
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    return form


def _page(*parts: QWidget | QLayout) -> QWidget:
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


def _line_edit(placeholder: str = "", tooltip: str = "") -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(False)
    if tooltip:
        edit.setToolTip(tooltip)
    return edit


def _side_button(text: str, tooltip: str = "") -> QPushButton:
    button = QPushButton(text)
    # Enter in the dialog always means the default button, even after Tab reached this one.
    button.setAutoDefault(False)
    if tooltip:
        button.setToolTip(tooltip)
    return button


def _add_file_row(form: QFormLayout, label: str, edit: QLineEdit, browse: QPushButton) -> None:
    """A path field with its Browse… button; the label's mnemonic goes to the field."""
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    row.addWidget(browse)
    form.addRow(label, row)
    label_widget = form.labelForField(row)
    if isinstance(label_widget, QLabel):
        label_widget.setBuddy(edit)


def _file_dialog(
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


def _fixed_font_edit(edit: QLineEdit | QPlainTextEdit) -> None:
    edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))


def _display_path(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


class _CopyButton(QPushButton):
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


class _WorkDialog(QDialog):
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
        _set_text_color(self.message, _error_color(self))
        self.message.setText(text)
        self.message.show()
        self._schedule_refit()

    def show_hint(self, text: str) -> None:
        self.message.setProperty("kind", "hint")
        _set_text_color(self.message, _muted_color(self))
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


# -- sign in -------------------------------------------------------------------------------


class SignInDialog(_WorkDialog):
    """Sign in to a factory with an API token, application credentials or fioctl's file."""

    signedIn = Signal(object)  # Factory

    TOKEN, CLIENT, FIOCTL = range(3)

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "Sign In")
        self.setWindowTitle("Sign in to a factory")
        self.setMinimumWidth(520)
        self.profile: Factory | None = None

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(self._token_page(), "API &token")
        self.tabs.addTab(self._client_page(), "&Application credentials")
        self.tabs.addTab(self._fioctl_page(), "From fio&ctl")
        self.tabs.currentChanged.connect(self._tab_changed)

        # An expander, not a checkable button: a checked tool button looks pressed in.
        self._advanced_open = False
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("A&dvanced: self-hosted or staging factory")
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.clicked.connect(self._advanced_clicked)

        self.api_url = _line_edit(
            "https://api.foundries.io",
            "The factory's REST API, when it is not api.foundries.io. Leave empty to use the "
            "default (or, with application credentials, the host derived from the OAuth URL).",
        )
        self.oauth_url = _line_edit("https://app.foundries.io/oauth", OAUTH_TIP)
        self.advanced = QWidget()
        self._adv_form = _form()
        self._adv_form.setContentsMargins(0, 0, 0, 0)
        self._adv_form.addRow("API &URL:", self.api_url)
        self._adv_form.addRow("&OAuth URL:", self.oauth_url)
        self.advanced.setLayout(self._adv_form)
        self.advanced.hide()
        auto_demo = backend.demo and backend.services.auto_demo
        if backend.demo and not auto_demo:
            # --demo: its factory lives on the embedded fake: sign-in there, not foundries.io.
            demo_profile = next(iter(backend.factories()), None)
            if demo_profile is not None:
                self.api_url.setText(demo_profile.api_url)
                self.oauth_url.setText(demo_profile.oauth_url)
                self._advanced_open = True

        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        if auto_demo:
            # Started as a demo because nothing was set up: this sign-in is for real.
            layout.addWidget(
                _note(
                    "You are looking at the demo. Sign in to your own factory: it is saved "
                    "(secrets in the system keyring) and fiotray leaves the demo."
                )
            )
        layout.addWidget(self.tabs)
        layout.addWidget(self.advanced_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.advanced)

        for edit in (
            self.token_factory,
            self.token,
            self.client_id,
            self.client_secret,
            self.client_factory,
            self.fioctl_path,
            self.api_url,
            self.oauth_url,
        ):
            edit.textChanged.connect(self._revalidate)

        self.setTabOrder(self.tabs, self.token_factory)
        self.setTabOrder(self.token_factory, self.token)
        self.setTabOrder(self.advanced_toggle, self.api_url)
        self.setTabOrder(self.api_url, self.oauth_url)
        self.setTabOrder(self.oauth_url, self.ok_button)
        self.setTabOrder(self.ok_button, self.cancel_button)

        self._tab_changed(self.TOKEN)
        self.token_factory.setFocus()

    def _advanced_clicked(self) -> None:
        self.set_advanced_open(not self._advanced_open)

    def set_advanced_open(self, shown: bool) -> None:
        self._advanced_open = shown
        self._tab_changed(self.tabs.currentIndex())

    # -- pages ----------------------------------------------------------------------------

    def _token_page(self) -> QWidget:
        self.token_factory = _line_edit("e.g. acme", "Your factory's name, as in its web address.")
        self.token = self._secret(
            _line_edit("paste the token", "An API token; kept only in the system keyring.")
        )
        form = _form()
        form.addRow("&Factory:", self.token_factory)
        form.addRow("API to&ken:", self.token)
        return _page(
            _note(
                f'Use an API token you made at <a href="{TOKENS_PAGE}">'
                "app.foundries.io/settings/tokens</a>. It goes to the system keyring only.",
                rich=True,
            ),
            form,
        )

    def _client_page(self) -> QWidget:
        self.client_id = _line_edit("client id", "The application credentials' client id.")
        self.client_secret = self._secret(
            _line_edit("client secret", "Kept only in the system keyring.")
        )
        self.client_factory = _line_edit(
            "optional when the credentials have one factory",
            "Leave empty when the credentials belong to exactly one factory: that one is used.",
        )
        form = _form()
        form.addRow("Client &ID:", self.client_id)
        form.addRow("Client &secret:", self.client_secret)
        form.addRow("&Factory:", self.client_factory)
        return _page(
            _note(
                "The application credentials <code>fioctl login</code> asks for, made at "
                f'<a href="{CREDENTIALS_PAGE}">app.foundries.io/settings/credentials</a>. '
                "The secret and the tokens go to the system keyring only.",
                rich=True,
            ),
            form,
        )

    def _fioctl_page(self) -> QWidget:
        self.fioctl_path = _line_edit(
            FIOCTL_DEFAULT, "fioctl's configuration file, written by `fioctl login`."
        )
        self.fioctl_path.setText(FIOCTL_DEFAULT)
        self.fioctl_browse = _side_button("&Browse…", "Choose fioctl's configuration file")
        self.fioctl_browse.clicked.connect(self._browse_fioctl)
        self._file_dialog: QFileDialog | None = None
        form = _form()
        _add_file_row(form, "Fi&le:", self.fioctl_path, self.fioctl_browse)
        return _page(
            _note(
                "Use the application credentials fioctl already has. The client secret and "
                "tokens are copied into the system keyring; the YAML file is left as it is "
                "(it keeps the secret in plain text, so consider deleting it from there "
                "afterwards)."
            ),
            form,
        )

    def _browse_fioctl(self) -> None:
        if self._file_dialog is None:
            # fioctl.yaml lives under the hidden ~/.config.
            dialog = _file_dialog(
                self,
                "fioctl configuration file",
                ["YAML files (*.yaml *.yml)", "All files (*)"],
                hidden=True,
            )
            dialog.fileSelected.connect(self._fioctl_chosen)
            self._file_dialog = dialog
        current = self._fioctl_file()
        if current is not None:
            self._file_dialog.setDirectory(str(current.parent))
            self._file_dialog.selectFile(str(current))
        self._file_dialog.open()

    def _fioctl_chosen(self, path: str) -> None:
        self.fioctl_path.setText(_display_path(Path(path)))

    # -- behaviour --------------------------------------------------------------------------

    def _urls_used(self, index: int | None = None) -> tuple[QLineEdit, ...]:
        """The server URLs this way in uses (fioctl.yaml names its own servers)."""
        index = self.tabs.currentIndex() if index is None else index
        if index == self.TOKEN:
            return (self.api_url,)  # an API token goes straight to the API, no OAuth
        if index == self.CLIENT:
            return (self.api_url, self.oauth_url)
        return ()

    def _tab_changed(self, index: int) -> None:
        used = self._urls_used(index)
        self.advanced_toggle.setEnabled(bool(used))
        self.advanced_toggle.setToolTip("" if used else "fioctl.yaml names its own servers.")
        self.advanced_toggle.setArrowType(
            Qt.ArrowType.DownArrow if self._advanced_open and used else Qt.ArrowType.RightArrow
        )
        self.advanced.setVisible(self._advanced_open and bool(used))
        self._adv_form.setRowVisible(self.oauth_url, self.oauth_url in used)
        self._schedule_refit(shrink=True)
        self._revalidate()

    def _fioctl_file(self) -> Path | None:
        text = self.fioctl_path.text().strip()
        return Path(text).expanduser() if text else None

    def _url_problem(self, edit: QLineEdit, what: str) -> str:
        from fiotray.core.factories import validate_url

        text = edit.text().strip()
        if not text or edit not in self._urls_used():
            return ""
        try:
            validate_url(text, what)
        except FiotrayError as exc:
            return str(exc)
        return ""

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.factories import validate_factory_name

        index = self.tabs.currentIndex()
        problems: list[str] = []
        if index == self.FIOCTL:
            path = self._fioctl_file()
            if path is None:
                return False, ""
            if not path.is_file():
                return False, (
                    f"There is no file at {_display_path(path)}: sign in with fioctl first, "
                    "or use another tab."
                )
            return True, ""
        if index == self.TOKEN:
            factory, required = self.token_factory.text().strip(), True
            filled = bool(factory and self.token.text().strip())
        else:
            factory, required = self.client_factory.text().strip(), False
            filled = bool(self.client_id.text().strip() and self.client_secret.text().strip())
            if any(c.isspace() for c in self.client_id.text().strip()):
                problems.append("The client id cannot contain spaces.")
        if factory:
            try:
                validate_factory_name(factory)
            except FiotrayError as exc:
                problems.append(str(exc))
        elif required:
            filled = False
        for edit, what in ((self.api_url, "API URL"), (self.oauth_url, "OAuth URL")):
            problem = self._url_problem(edit, what)
            if problem:
                problems.append(problem)
        return filled and not problems, " ".join(problems)

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        index = self.tabs.currentIndex()
        api_url = (self.api_url.text().strip() or None) if index != self.FIOCTL else None
        if index == self.TOKEN:
            factory = self.token_factory.text().strip()
            self._start(
                lambda: backend.sign_in_token(factory, self.token.text().strip(), api_url=api_url),
                f"Signing in to {factory}…",
                self._signed_in,
            )
        elif index == self.CLIENT:
            factory_or_none = self.client_factory.text().strip() or None
            oauth_url = self.oauth_url.text().strip() or None
            client_id = self.client_id.text().strip()
            self._start(
                lambda: backend.sign_in_client(
                    client_id,
                    self.client_secret.text().strip(),
                    factory=factory_or_none,
                    oauth_url=oauth_url,
                    api_url=api_url,
                ),
                f"Signing in to {factory_or_none}…" if factory_or_none else "Signing in…",
                self._signed_in,
            )
        else:
            path = self._fioctl_file()
            self._start(
                lambda: backend.sign_in_fioctl(path),
                "Importing fioctl's credentials…",
                self._signed_in,
            )

    def _signed_in(self, profile: Factory) -> None:
        self.profile = profile
        self.signedIn.emit(profile)
        self.accept()


# -- add a Foundries tunnel --------------------------------------------------------------


class AddFoundriesTunnelDialog(_WorkDialog):
    """A tunnel to a factory's VPN server; afterwards, what the server's admin must run."""

    tunnelAdded = Signal(object)  # Tunnel

    def __init__(
        self, backend: Backend, factory: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(backend, parent, "Add Tunnel")
        self.setWindowTitle("Add a Foundries tunnel")
        self.setMinimumWidth(520)
        self.profile: Tunnel | None = None
        self._tunnel_names: set[str] = set()
        self._tunnel_factories: dict[str, str] = {}
        load_problem = ""
        try:
            factories = [p.factory for p in backend.factories()]
            for t in backend.tunnels():
                self._tunnel_names.add(t.name)
                if t.factory:
                    self._tunnel_factories.setdefault(t.factory, t.name)
        except FiotrayError as exc:
            factories, load_problem = [], str(exc)

        self.factory = QComboBox()
        self.factory.addItems(factories)
        self.factory.setToolTip("The signed-in factory whose VPN server the tunnel goes to.")
        if factory in factories:
            self.factory.setCurrentText(factory)
        self.factory.setEnabled(bool(factories))
        self.address = _line_edit(
            "e.g. 10.42.42.200",
            "This laptop's address in the factory's VPN network: one no device uses. The "
            "server's admin admits the laptop with it.",
        )
        self.name = _line_edit("", "The tunnel's name in fiotray (letters, digits, '-', '_').")

        # Two pages shown one at a time; not a QStackedWidget, which is as tall as its
        # tallest page and would leave a gap under the short form.
        self.form_page = self._form_page(bool(factories))
        self.result_page = self._result_page()
        self.result_page.hide()
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form_page)
        layout.addWidget(self.result_page)

        self.factory.currentTextChanged.connect(self._factory_changed)
        self.address.textChanged.connect(self._revalidate)
        self.name.textChanged.connect(self._revalidate)
        self.setTabOrder(self.factory, self.address)
        self.setTabOrder(self.address, self.name)
        self.setTabOrder(self.name, self.ok_button)
        self._factory_changed(self.factory.currentText())
        if load_problem:
            self.show_error(load_problem)
        (self.address if factories else self.cancel_button).setFocus()

    def _form_page(self, have_factories: bool) -> QWidget:
        form = _form()
        form.addRow("&Factory:", self.factory)
        if not have_factories:
            form.addRow("", _note("Sign in to a factory first."))
        form.addRow("VPN &address:", self.address)
        form.addRow("&Name:", self.name)
        self.factory_note = _note("")
        self.factory_note.hide()
        page = _page(
            _note(
                "fiotray makes a WireGuard key pair on this laptop (the private key goes "
                "straight to the system keyring) and a tunnel to the factory's VPN server "
                "that carries the whole VPN network."
            ),
            form,
            self.factory_note,
        )
        page.layout().setContentsMargins(0, 0, 0, 0)
        return page

    def _result_page(self) -> QWidget:
        page = QWidget()
        self.result_title = QLabel()
        self.result_title.setWordWrap(True)
        font = self.result_title.font()
        font.setBold(True)
        self.result_title.setFont(font)

        self.public_key = QLineEdit()
        self.public_key.setReadOnly(True)
        _fixed_font_edit(self.public_key)
        self.copy_key = _CopyButton("Copy &Key", "Copy this laptop's public key")
        key_row = QHBoxLayout()
        key_row.addWidget(self.public_key, 1)
        key_row.addWidget(self.copy_key)

        self.admin_line = QPlainTextEdit()
        self.admin_line.setReadOnly(True)
        self.admin_line.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.admin_line.setTabChangesFocus(True)
        _fixed_font_edit(self.admin_line)
        lines = self.admin_line.fontMetrics().lineSpacing()
        self.admin_line.setFixedHeight(lines * 3 + 2 * self.admin_line.frameWidth() + 10)
        self.admin_line.setToolTip("Run this on the VPN server, as root.")
        self.copy_line = _CopyButton("Copy &Line", "Copy the line for the admin")
        line_row = QHBoxLayout()
        line_row.addWidget(self.admin_line, 1)
        line_row.addWidget(self.copy_line, 0, Qt.AlignmentFlag.AlignTop)

        key_label = QLabel("This laptop's &public key:")
        key_label.setBuddy(self.public_key)
        line_label = QLabel("For the VPN server's admin, to run on the &server:")
        line_label.setBuddy(self.admin_line)

        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.result_title)
        layout.addSpacing(6)
        layout.addWidget(key_label)
        layout.addLayout(key_row)
        layout.addSpacing(6)
        layout.addWidget(line_label)
        layout.addLayout(line_row)
        layout.addWidget(
            _note(
                "The server's admin must run this line once before the tunnel can work: "
                "until then it comes up, but no handshake happens. factory-wireguard-server "
                "rewrites its peers from the device list every few minutes, so the admin "
                "should also keep this peer in the server's own configuration.",
                muted=False,
            )
        )
        layout.addStretch(1)
        return page

    def _factory_changed(self, factory: str) -> None:
        self.name.setPlaceholderText(f"optional, default: {factory}" if factory else "optional")
        existing = self._tunnel_factories.get(factory)
        self.factory_note.setText(
            f"This laptop already has a tunnel to {factory}: “{existing}”." if existing else ""
        )
        self.factory_note.setVisible(bool(existing))
        self._revalidate()

    def _chosen_name(self) -> str:
        return self.name.text().strip() or self.factory.currentText()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.tunnels import NAME_RE

        if not self.factory.currentText():
            return False, ""
        problems: list[str] = []
        address = self.address.text().strip()
        ok_address = False
        if address:
            try:
                ipaddress.IPv4Address(address)
                ok_address = True
            except ValueError:
                # Say nothing while an address is still being typed.
                if not re.fullmatch(r"[0-9.]*", address) or address.count(".") >= 3:
                    problems.append(f"{address[:40]} is not an IPv4 address (e.g. 10.42.42.200).")
        name = self._chosen_name()
        if not NAME_RE.match(name):
            problems.append(
                f"The tunnel name “{name[:40]}” must be 1-32 letters, digits, '-' or '_'."
            )
        elif name in self._tunnel_names:
            problems.append(f"A tunnel named “{name}” exists already: choose another name.")
        return ok_address and not problems, " ".join(problems)

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        factory = self.factory.currentText()
        address = self.address.text().strip()
        name = self.name.text().strip() or None
        self._start(
            lambda: backend.add_foundries_tunnel(factory, address, name),
            "Setting up the tunnel…",
            self._added,
        )

    def _added(self, profile: Tunnel) -> None:
        assert self.backend is not None
        self.profile = profile
        self.result_title.setText(
            f"The tunnel “{profile.name}” to {profile.factory} is set up with the address "
            f"{profile.address}. One step is left, on the server."
        )
        self.public_key.setText(profile.public_key)
        self.copy_key.payload = profile.public_key
        line = self.backend.admin_line(profile)
        self.admin_line.setPlainText(line)
        self.copy_line.payload = line
        # Wide enough for the line on one row (it breaks at "allowed-ips" otherwise),
        # but never wider than the screen allows.
        margin = 2 * (self.admin_line.frameWidth() + self.admin_line.document().documentMargin())
        wanted = self.admin_line.fontMetrics().horizontalAdvance(line) + int(margin) + 8
        screen = self.screen()
        if screen is not None:
            wanted = min(wanted, int(screen.availableGeometry().width() * 0.8) - 160)
        self.admin_line.setMinimumWidth(max(wanted, 200))
        self.form_page.hide()
        self.result_page.show()
        self._schedule_refit(shrink=True)
        self.ok_button.hide()
        self.cancel_button.hide()
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        self.close_button = close
        self.setTabOrder(self.copy_line, close)
        self.copy_line.setFocus()
        self.tunnelAdded.emit(profile)

    def reject(self) -> None:
        # Once the tunnel exists, closing (Esc, Close) is the successful end.
        if self.profile is not None:
            self.accept()
        else:
            super().reject()


# -- import a plain WireGuard tunnel ----------------------------------------------------


class ImportTunnelDialog(_WorkDialog):
    """A wg-quick .conf for any other WireGuard network; its private key goes to the keyring."""

    tunnelImported = Signal(object)  # Tunnel

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "Import")
        self.setWindowTitle("Import a WireGuard tunnel")
        self.setMinimumWidth(520)
        self.profile: Tunnel | None = None
        self._file_dialog: QFileDialog | None = None
        try:
            self._tunnel_names = {t.name for t in backend.tunnels()}
            load_problem = ""
        except FiotrayError as exc:
            self._tunnel_names, load_problem = set(), str(exc)

        self.path = _line_edit("/path/to/tunnel.conf", "A wg-quick configuration file.")
        self.browse = _side_button("&Browse…", "Choose a WireGuard configuration file")
        self.browse.clicked.connect(self._browse)
        self.name = _line_edit(
            "optional, default: from the file name",
            "The tunnel's name in fiotray (letters, digits, '-', '_'); also its interface name "
            "when it is short enough.",
        )
        form = _form()
        _add_file_row(form, "&File:", self.path, self.browse)
        form.addRow("&Name:", self.name)
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            _note(
                "For a WireGuard network other than your factory's VPN server (an office or "
                "lab VPN), from a wg-quick .conf file. For the factory's VPN use “Add a "
                "Foundries tunnel” instead."
            )
        )
        layout.addLayout(form)
        layout.addWidget(
            _note(
                "The private key moves to the system keyring and the file is not changed: "
                "you can delete it after the import. A config with PreUp, PostUp, PreDown or "
                "PostDown (shell commands that would run as root), Table, SaveConfig or "
                "FwMark is refused."
            )
        )
        layout.addStretch(1)

        self.path.textChanged.connect(self._path_changed)
        self.name.textChanged.connect(self._revalidate)
        self.setTabOrder(self.path, self.browse)
        self.setTabOrder(self.browse, self.name)
        self.setTabOrder(self.name, self.ok_button)
        self._revalidate()
        if load_problem:
            self.show_error(load_problem)
        self.path.setFocus()

    def _file(self) -> Path | None:
        text = self.path.text().strip()
        return Path(text).expanduser() if text else None

    def _default_name(self) -> str:
        from fiotray.core.tunnels import name_from_path

        path = self._file()
        return name_from_path(path) if path is not None else ""

    def _path_changed(self) -> None:
        default = self._default_name()
        self.name.setPlaceholderText(
            f"optional, default: {default}" if default else "optional, default: from the file name"
        )
        self._revalidate()

    def _browse(self) -> None:
        if self._file_dialog is None:
            dialog = _file_dialog(
                self,
                "WireGuard configuration file",
                ["WireGuard configs (*.conf)", "All files (*)"],
            )
            dialog.fileSelected.connect(self.path.setText)
            self._file_dialog = dialog
        current = self._file()
        if current is not None and current.parent.is_dir():
            self._file_dialog.setDirectory(str(current.parent))
        self._file_dialog.open()

    @property
    def file_dialog(self) -> QFileDialog | None:
        return self._file_dialog

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.tunnels import NAME_RE

        path = self._file()
        if path is None:
            return False, ""
        problems: list[str] = []
        if not path.is_file():
            problems.append(f"There is no file at {path}.")
        name = self.name.text().strip() or self._default_name()
        if not NAME_RE.match(name):
            problems.append(f"The name “{name[:40]}” must be 1-32 letters, digits, '-' or '_'.")
        elif name in self._tunnel_names:
            problems.append(f"A tunnel named “{name}” exists already: choose another name.")
        return not problems, " ".join(problems)

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        path = self._file()
        assert path is not None
        name = self.name.text().strip() or None
        self._start(
            lambda: backend.import_tunnel(path, name), f"Importing {path.name}…", self._imported
        )

    def _imported(self, profile: Tunnel) -> None:
        self.profile = profile
        self.tunnelImported.emit(profile)
        self.accept()


# -- settings -------------------------------------------------------------------------------

_ROUTES: tuple[tuple[str, str, str], ...] = (
    (
        "jump",
        "&Jump through the VPN server (default)",
        "ssh -J via the server; needs an account on the server.",
    ),
    ("direct", "&Direct to the device", "Only where the server's admin forwards with NAT."),
    ("public", "&Public SSH of the server", "Via the server's public SSH host; no tunnel."),
)


class SettingsDialog(_WorkDialog):
    """The user's settings; OK saves through the backend, Cancel changes nothing."""

    saved = Signal(object)  # Settings

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "OK")
        self.setWindowTitle("Settings — fiotray")
        self.setMinimumWidth(540)
        settings = backend.settings

        # -- SSH
        self.terminal = _line_edit(
            "detect automatically",
            "A program and its run flag, e.g. “kitty” or “wezterm start --”. Empty: your "
            "$TERMINAL, xdg-terminal-exec, the desktop's terminal, then known ones.",
        )
        self.terminal.setText(settings.terminal)
        self.terminal_now = _note("")
        self.terminal_now.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._terminal_timer = QTimer(self)
        self._terminal_timer.setSingleShot(True)
        self._terminal_timer.setInterval(250)  # PATH lookups per keystroke are wasted work
        self._terminal_timer.timeout.connect(self._update_terminal_now)
        self.terminal.textChanged.connect(self._terminal_timer.start)

        self.ssh_user = _line_edit("fio", "The login on devices; fio on the Linux microPlatform.")
        self.ssh_user.setText(settings.ssh_user if settings.ssh_user != "fio" else "")
        self.ssh_user.textChanged.connect(self._revalidate)

        self.route_group = QButtonGroup(self)
        self.route_buttons: dict[str, QRadioButton] = {}
        routes = QWidget()
        routes_layout = QVBoxLayout(routes)
        routes_layout.setContentsMargins(0, 0, 0, 0)
        routes_layout.setSpacing(2)
        style = self.style()
        indent = style.pixelMetric(
            QStyle.PixelMetric.PM_ExclusiveIndicatorWidth
        ) + style.pixelMetric(QStyle.PixelMetric.PM_RadioButtonLabelSpacing)
        for route, text, explanation in _ROUTES:
            button = QRadioButton(text)
            button.setToolTip(explanation)
            self.route_group.addButton(button)
            self.route_buttons[route] = button
            routes_layout.addWidget(button)
            # One line each: wrapped labels inside a form row get their height wrong.
            note = _note(explanation)
            note.setWordWrap(False)
            note.setContentsMargins(indent, 0, 0, 4)
            routes_layout.addWidget(note)
        self.route_buttons.get(settings.ssh_route, self.route_buttons["jump"]).setChecked(True)

        ssh_box = QGroupBox("SSH to devices")
        ssh_form = _form()
        # The edit and its wrapped status in one box: a wrapped label as a form row of
        # its own is given far more height than its text needs.
        terminal_box = QWidget()
        terminal_layout = QVBoxLayout(terminal_box)
        terminal_layout.setContentsMargins(0, 0, 0, 0)
        terminal_layout.setSpacing(2)
        terminal_layout.addWidget(self.terminal)
        terminal_layout.addWidget(self.terminal_now)
        ssh_form.addRow("&Terminal:", terminal_box)
        terminal_label = ssh_form.labelForField(terminal_box)
        if isinstance(terminal_label, QLabel):
            terminal_label.setBuddy(self.terminal)
        ssh_form.addRow("SSH &user:", self.ssh_user)
        ssh_form.addRow("Route:", routes)
        ssh_box.setLayout(ssh_form)

        # -- tunnels
        self.default_tunnel = QComboBox()
        self.default_tunnel.setToolTip("The tunnel the tray connects when you do not pick one.")
        self.default_tunnel.addItem("Automatic (the first tunnel)", "")
        try:
            names = [t.name for t in backend.tunnels()]
            load_problem = ""
        except FiotrayError as exc:
            names, load_problem = [], str(exc)
        for name in names:
            self.default_tunnel.addItem(name, name)
        default_name = backend.default_tunnel_name()
        if default_name and default_name not in names:
            # Keep a choice whose tunnel is gone, so OK does not drop it behind the user's back.
            self.default_tunnel.addItem(f"{default_name} (not found)", default_name)
        index = self.default_tunnel.findData(default_name)
        self.default_tunnel.setCurrentIndex(max(index, 0))
        tunnels_box = QGroupBox("Tunnels")
        tunnels_form = _form()
        tunnels_form.addRow("De&fault tunnel:", self.default_tunnel)
        tunnels_box.setLayout(tunnels_form)

        # -- desktop
        self.autostart = QCheckBox("Start fiotray at &login, hidden in the tray")
        self.autostart.setChecked(self._autostart_now(settings.autostart))
        self.autostart.setToolTip("Adds fiotray to your desktop's autostart entries.")
        self.notifications = QCheckBox("Show desktop &notifications")
        self.notifications.setToolTip(
            "Tell me when a tunnel drops, a device applies a VPN change or a sign-in expires."
        )
        self.notifications.setChecked(settings.notifications)
        desktop_box = QGroupBox("Desktop")
        desktop_layout = QVBoxLayout(desktop_box)
        desktop_layout.addWidget(self.autostart)
        desktop_layout.addWidget(self.notifications)

        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        if backend.demo and backend.services.auto_demo:
            self.demo_note = _note(
                "You are looking at the demo: these settings come along when you sign in to "
                "your factory, and start at login applies now."
            )
            layout.addWidget(self.demo_note)
            layout.addSpacing(6)
        elif backend.demo:
            self.demo_note = _note(
                "Demo mode: these settings last until fiotray quits; nothing is saved outside "
                "the demo, and start at login is left as it is."
            )
            layout.addWidget(self.demo_note)
            layout.addSpacing(6)
        layout.addWidget(ssh_box)
        layout.addWidget(tunnels_box)
        layout.addWidget(desktop_box)
        layout.addStretch(1)

        order: list[QWidget] = [
            self.terminal,
            self.ssh_user,
            *self.route_buttons.values(),
            self.default_tunnel,
            self.autostart,
            self.notifications,
            self.ok_button,
            self.cancel_button,
        ]
        for first, second in itertools.pairwise(order):
            self.setTabOrder(first, second)

        self._update_terminal_now()
        self._revalidate()
        if load_problem:
            self.show_error(load_problem)
        self.terminal.setFocus()

    def _autostart_now(self, saved: bool) -> bool:
        # The autostart file is the truth (the user may have removed it by hand);
        # the demo never touches it, so there the saved value is shown.
        assert self.backend is not None
        if self.backend.demo and not self.backend.services.auto_demo:
            return saved
        from fiotray.core import autostart

        return autostart.is_enabled()

    def _update_terminal_now(self) -> None:
        from fiotray.core.terminal import resolve_terminal

        setting = self.terminal.text().strip()
        try:
            choice = resolve_terminal(setting or None)
        except FiotrayError as exc:
            self.terminal_now.setText(str(exc))
            _set_text_color(self.terminal_now, _error_color(self))
            self.terminal_now.setProperty("ok", False)
            self._schedule_refit()
            return
        command = shlex.join(choice.argv_prefix)
        self.terminal_now.setText(f"SSH opens in: {choice.name} ({command} …)")
        _set_text_color(self.terminal_now, _muted_color(self))
        self.terminal_now.setProperty("ok", True)
        self._schedule_refit()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.ssh import validate_user

        user = self.ssh_user.text().strip()
        if user:
            try:
                validate_user(user)
            except FiotrayError as exc:
                return False, str(exc)
        return True, ""

    def chosen_route(self) -> str:
        button: QAbstractButton | None = self.route_group.checkedButton()
        return next((r for r, b in self.route_buttons.items() if b is button), "jump")

    def _submit(self) -> None:
        assert self.backend is not None
        # Start from what the backend holds now: recent devices may have changed meanwhile.
        settings = dataclasses.replace(
            self.backend.settings,
            terminal=self.terminal.text().strip(),
            ssh_user=self.ssh_user.text().strip() or "fio",
            ssh_route=self.chosen_route(),
            autostart=self.autostart.isChecked(),
            notifications=self.notifications.isChecked(),
        )
        try:
            self.backend.set_default_tunnel(str(self.default_tunnel.currentData() or ""))
            self.backend.save_settings(settings)
        except FiotrayError as exc:
            self.show_error(str(exc))
            return
        self.saved.emit(settings)
        self.accept()


# -- help ------------------------------------------------------------------------------

HELP_HTML = """
<h2>fiotray</h2>
<p>One-click access to your FoundriesFactory devices over the factory's WireGuard VPN.</p>

<h3>Signing in</h3>
<p>Use an API token (<a href="https://app.foundries.io/settings/tokens/">settings/tokens</a>),
the application credentials <code>fioctl login</code> uses
(<a href="https://app.foundries.io/settings/credentials/">settings/credentials</a>), or import
what fioctl already keeps in <code>~/.config/fioctl.yaml</code>. Self-hosted factories: set the
API or OAuth URL under <i>Advanced</i>.</p>

<h3>Which tunnel?</h3>
<ul>
<li><b>Foundries tunnel</b>: to your factory's VPN server (factory-wireguard-server), to reach
the factory's devices. fiotray reads the server from the factory, makes a key pair on this
laptop and routes the whole VPN network into the tunnel.</li>
<li><b>Plain WireGuard tunnel</b>: any other WireGuard network (an office or lab VPN), imported
from a wg-quick <code>.conf</code> file. Configs with <code>PreUp</code>, <code>PostUp</code>,
<code>PreDown</code> or <code>PostDown</code> hooks are refused: they would run as root.</li>
</ul>

<h3>The server admin's step</h3>
<p>The factory's VPN server knows only devices as peers. After you add a Foundries tunnel,
its admin must admit this laptop once, on the server:</p>
<pre>{admin_line}</pre>
<p>factory-wireguard-server rewrites its peers from the device list every few minutes, so the
admin should also keep this peer in the server's own configuration. Until then the tunnel comes
up but no handshake happens.</p>

<h3>SSH routes</h3>
<p>Devices accept tunnel traffic only from the VPN server's address, so:</p>
<ul>
<li><b>jump</b> (default): through the VPN server as an SSH jump host, over the tunnel. Works
with the server as it is; you need an account on the server.</li>
<li><b>direct</b>: straight to the device's VPN address. Works only where the server's admin
forwards with NAT out of its WireGuard interface.</li>
<li><b>public</b>: through the server's public SSH host (set for the tunnel profile), without
the tunnel.</li>
</ul>
<p>The device login is <code>fio</code> unless you change it in Settings; SSH opens in your
own terminal.</p>

<h3>Where secrets are kept</h3>
<p>API tokens, client secrets, OAuth tokens and WireGuard private keys live only in the system
keyring (Secret Service: gnome-keyring, KeePassXC, KWallet). fiotray never writes a secret to a
file: without a keyring it says so and stores nothing. Tunnels go up and down through a small
helper started with pkexec; fiotray itself never runs as root.</p>

<h3>No tray icon on GNOME?</h3>
<p>GNOME shows tray icons only with the AppIndicator extension: install it (Debian and Ubuntu:
<code>gnome-shell-extension-appindicator</code>), enable it in <i>Extensions</i>, log out and in
again, then start fiotray again.</p>
""".replace(
    "{admin_line}",
    "wg set fio&lt;factory&gt; peer &lt;your public key&gt; "
    "allowed-ips &lt;your VPN address&gt;/32",
)


class HelpDialog(QDialog):
    """A short help page; links open in the browser."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Help — fiotray")
        self.setMinimumSize(480, 420)
        self.resize(620, 680)
        fit_to_screen(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.document().setDefaultStyleSheet(
            "h2 { margin-bottom: 4px; } h3 { margin-top: 14px; margin-bottom: 4px; }"
            "pre { margin-left: 12px; }"
        )
        self.browser.setHtml(HELP_HTML)
        self.browser.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        close.setFocus()


__all__ = [
    "AddFoundriesTunnelDialog",
    "HelpDialog",
    "ImportTunnelDialog",
    "SettingsDialog",
    "SignInDialog",
]
