"""Sign in to a factory: API token, application credentials or fioctl's file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QLineEdit,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.dialogs.base import (
    WorkDialog,
    add_file_row,
    display_path,
    file_chooser,
    form_layout,
    line_edit,
    note_label,
    page_widget,
    side_button,
)

if TYPE_CHECKING:
    from fiotray.core.factories import Factory
    from fiotray.gui.backend import Backend

TOKENS_PAGE = "https://app.foundries.io/settings/tokens/"
CREDENTIALS_PAGE = "https://app.foundries.io/settings/credentials/"
FIOCTL_DEFAULT = "~/.config/fioctl.yaml"
OAUTH_TIP = (
    "The OAuth server for application credentials, when it is not app.foundries.io. The API "
    "host is derived from it (app → api) unless you set the API URL."
)


class SignInDialog(WorkDialog):
    """Sign in to a factory with an API token, application credentials or fioctl's file."""

    signedIn = Signal(object)  # Factory

    TOKEN, CLIENT, FIOCTL = range(3)

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "Sign In")
        self.setWindowTitle("Sign in to a factory")
        self.setMinimumWidth(520)
        self.factory: Factory | None = None

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

        self.api_url = line_edit(
            "https://api.foundries.io",
            "The factory's REST API, when it is not api.foundries.io. Leave empty to use the "
            "default (or, with application credentials, the host derived from the OAuth URL).",
        )
        self.oauth_url = line_edit("https://app.foundries.io/oauth", OAUTH_TIP)
        self.advanced = QWidget()
        self._adv_form = form_layout()
        self._adv_form.setContentsMargins(0, 0, 0, 0)
        self._adv_form.addRow("API &URL:", self.api_url)
        self._adv_form.addRow("&OAuth URL:", self.oauth_url)
        self.advanced.setLayout(self._adv_form)
        self.advanced.hide()

        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        if backend.demo:
            # The demo factory needs no sign-in (automatic demo or --demo alike): this one
            # is for real, with the usual defaults, never the demo's loopback API.
            layout.addWidget(
                note_label(
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

    def sign_in_again(self, factory: Factory) -> None:
        """Filled in for a factory whose sign-in expired or was revoked: its name, its
        servers (so the new secret never goes to the public API by mistake) and client
        id; only the secret is left to enter."""
        from fiotray.core.factories import DEFAULT_API_URL, DEFAULT_OAUTH_URL

        self.setWindowTitle(f"Sign in again to {factory.factory}")
        self.token_factory.setText(factory.factory)
        self.client_factory.setText(factory.factory)
        if factory.client_id:
            self.client_id.setText(factory.client_id)
        own_servers = (factory.api_url, factory.oauth_url) != (DEFAULT_API_URL, DEFAULT_OAUTH_URL)
        self.api_url.setText(factory.api_url if factory.api_url != DEFAULT_API_URL else "")
        self.oauth_url.setText(factory.oauth_url if factory.oauth_url != DEFAULT_OAUTH_URL else "")
        self._advanced_open = own_servers
        tab = self.CLIENT if factory.auth == "oauth" else self.TOKEN
        self.tabs.setCurrentIndex(tab)
        self._tab_changed(tab)
        (self.client_secret if tab == self.CLIENT else self.token).setFocus()
        self.show_hint(
            f"The sign-in to {factory.factory} expired or was revoked: enter a new "
            + ("client secret." if tab == self.CLIENT else "API token.")
        )

    def _advanced_clicked(self) -> None:
        self.set_advanced_open(not self._advanced_open)

    def set_advanced_open(self, shown: bool) -> None:
        self._advanced_open = shown
        self._tab_changed(self.tabs.currentIndex())

    # -- pages ----------------------------------------------------------------------------

    def _token_page(self) -> QWidget:
        self.token_factory = line_edit("e.g. acme", "Your factory's name, as in its web address.")
        self.token = self._secret(
            line_edit("paste the token", "An API token; kept only in the system keyring.")
        )
        form = form_layout()
        form.addRow("&Factory:", self.token_factory)
        form.addRow("API to&ken:", self.token)
        return page_widget(
            note_label(
                f'Use an API token you made at <a href="{TOKENS_PAGE}">'
                "app.foundries.io/settings/tokens</a>. It goes to the system keyring only.",
                rich=True,
            ),
            form,
        )

    def _client_page(self) -> QWidget:
        self.client_id = line_edit("client id", "The application credentials' client id.")
        self.client_secret = self._secret(
            line_edit("client secret", "Kept only in the system keyring.")
        )
        self.client_factory = line_edit(
            "optional when the credentials have one factory",
            "Leave empty when the credentials belong to exactly one factory: that one is used.",
        )
        form = form_layout()
        form.addRow("Client &ID:", self.client_id)
        form.addRow("Client &secret:", self.client_secret)
        form.addRow("&Factory:", self.client_factory)
        return page_widget(
            note_label(
                "The application credentials <code>fioctl login</code> asks for, made at "
                f'<a href="{CREDENTIALS_PAGE}">app.foundries.io/settings/credentials</a>. '
                "The secret and the tokens go to the system keyring only.",
                rich=True,
            ),
            form,
        )

    def _fioctl_page(self) -> QWidget:
        self.fioctl_path = line_edit(
            FIOCTL_DEFAULT, "fioctl's configuration file, written by `fioctl login`."
        )
        self.fioctl_path.setText(FIOCTL_DEFAULT)
        self.fioctl_browse = side_button("&Browse…", "Choose fioctl's configuration file")
        self.fioctl_browse.clicked.connect(self._browse_fioctl)
        self._file_dialog: QFileDialog | None = None
        form = form_layout()
        add_file_row(form, "Fi&le:", self.fioctl_path, self.fioctl_browse)
        return page_widget(
            note_label(
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
            dialog = file_chooser(
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
        self.fioctl_path.setText(display_path(Path(path)))

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
                    f"There is no file at {display_path(path)}: sign in with fioctl first, "
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

    def _signed_in(self, factory: Factory) -> None:
        self.factory = factory
        self.signedIn.emit(factory)
        self.accept()
