"""Add a tunnel to a factory's VPN server (or ask a self-service server for access), then
show what its admin must run."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.dialogs.base import (
    CopyButton,
    WorkDialog,
    fixed_font_edit,
    form_layout,
    line_edit,
    note_label,
    page_widget,
)

if TYPE_CHECKING:
    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend
    from fiotray.ops.tunnels import AddedTunnel


class AddFoundriesTunnelDialog(WorkDialog):
    """A tunnel to a factory's VPN server; afterwards, what the server's admin must run."""

    tunnelAdded = Signal(object)  # Tunnel

    def __init__(
        self, backend: Backend, parent: QWidget | None = None, *, factory: str | None = None
    ) -> None:
        """`factory`: the one to preselect; by default the first signed-in one."""
        super().__init__(backend, parent, "Add Tunnel")
        self.setWindowTitle("Add a Foundries tunnel")
        self.setMinimumWidth(520)
        self.tunnel: Tunnel | None = None
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
        self.address = line_edit(
            "picked when the tunnel is added",
            "This laptop's address in the factory's VPN network: a free one of the range "
            "fioctl never hands to devices is filled in. The server admits the laptop with it.",
        )
        self.request = QCheckBox("&Ask the server to admit this laptop")
        self.request.setToolTip(
            "Publishes this laptop's public key and address in the factory's configuration. "
            "A VPN server running fiotray-server --self-service admits it at its next sync, "
            "with no step for its admin."
        )
        self.name = line_edit("", "The tunnel's name in fiotray (letters, digits, '-', '_').")
        # The address last filled in for the user: replaced when the factory or the
        # request choice changes, unless the user typed their own.
        self._suggested = ""
        self._closed = False

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
        self.request.toggled.connect(self._suggest)
        self.name.textChanged.connect(self._revalidate)
        self.setTabOrder(self.factory, self.address)
        self.setTabOrder(self.address, self.request)
        self.setTabOrder(self.request, self.name)
        self.setTabOrder(self.name, self.ok_button)
        self._factory_changed(self.factory.currentText())
        if load_problem:
            self.show_error(load_problem)
        (self.address if factories else self.cancel_button).setFocus()

    def _form_page(self, have_factories: bool) -> QWidget:
        form = form_layout()
        form.addRow("&Factory:", self.factory)
        if not have_factories:
            form.addRow("", note_label("Sign in to a factory first."))
        form.addRow("VPN a&ddress:", self.address)
        form.addRow("", self.request)
        form.addRow("&Name:", self.name)
        self.factory_note = note_label("")
        self.factory_note.hide()
        page = page_widget(
            note_label(
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
        fixed_font_edit(self.public_key)
        self.copy_key = CopyButton("Copy &Key", "Copy this laptop's public key")
        key_row = QHBoxLayout()
        key_row.addWidget(self.public_key, 1)
        key_row.addWidget(self.copy_key)

        self.server_line, self.copy_server_line, server_row = self._line_box(
            "Copy &Line", "Copy the fiotray-server line"
        )
        self.admin_line, self.copy_line, admin_row = self._line_box(
            "Copy L&ine", "Copy the factory-wireguard-server line"
        )
        key_label = QLabel("This laptop's &public key:")
        key_label.setBuddy(self.public_key)
        self.server_label = QLabel("On a server running fiotray-server (the peer is kept):")
        self.server_label.setBuddy(self.server_line)
        admin_label = QLabel("On a server running factory-wireguard-server:")
        admin_label.setBuddy(self.admin_line)
        self.result_note = note_label("", muted=False)

        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.result_title)
        layout.addSpacing(6)
        layout.addWidget(key_label)
        layout.addLayout(key_row)
        layout.addSpacing(6)
        layout.addWidget(self.server_label)
        layout.addLayout(server_row)
        layout.addWidget(admin_label)
        layout.addLayout(admin_row)
        layout.addWidget(self.result_note)
        layout.addStretch(1)
        return page

    def _line_box(
        self, copy_text: str, copy_tip: str
    ) -> tuple[QPlainTextEdit, CopyButton, QHBoxLayout]:
        box = QPlainTextEdit()
        box.setReadOnly(True)
        box.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        box.setTabChangesFocus(True)
        fixed_font_edit(box)
        lines = box.fontMetrics().lineSpacing()
        # Three rows: a fiotray-server line (a 44-character key and an address) wraps twice
        # in a dialog of ordinary width.
        box.setFixedHeight(lines * 3 + 2 * box.frameWidth() + 10)
        box.setToolTip("For the VPN server's admin, to run on the server as root.")
        copy = CopyButton(copy_text, copy_tip)
        row = QHBoxLayout()
        row.addWidget(box, 1)
        row.addWidget(copy, 0, Qt.AlignmentFlag.AlignTop)
        return box, copy, row

    def _factory_changed(self, factory: str) -> None:
        self.name.setPlaceholderText(f"optional, default: {factory}" if factory else "optional")
        existing = self._tunnel_factories.get(factory)
        self.factory_note.setText(
            f"This laptop already has a tunnel to {factory}: “{existing}”. One tunnel per "
            f"factory: to set up a new one, remove “{existing}” first (its menu in the tray "
            "or the window's Tunnel menu: Remove…)."
            if existing
            else ""
        )
        self.factory_note.setVisible(bool(existing))
        self._suggest()
        self._revalidate()

    def _suggest(self, *_: object) -> None:
        """Fill in the address the tunnel would get, fetched from the factory."""
        factory = self.factory.currentText()
        if not factory or self.backend is None:
            return
        if self.address.text().strip() not in ("", self._suggested):
            return  # the user's own address stays
        backend, request = self.backend, self.request.isChecked()

        async def fetch() -> None:
            try:
                address = await backend.suggest_address(factory, request_access=request)
            except FiotrayError:
                return  # picked when the tunnel is added; the add says what is wrong
            if self._closed:
                return  # the dialog is gone: touch nothing of it
            same = factory == self.factory.currentText() and request == self.request.isChecked()
            typed = self.address.text().strip() not in ("", self._suggested)
            if self.tunnel is None and same and not typed:
                self._suggested = address
                self.address.setText(address)

        backend.spawn(fetch(), what="Suggest an address")

    def _chosen_name(self) -> str:
        return self.name.text().strip() or self.factory.currentText()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.tunnels import NAME_RE

        if not self.factory.currentText():
            return False, ""
        if self.factory.currentText() in self._tunnel_factories:
            return False, ""  # the note under the factory says why
        problems: list[str] = []
        address = self.address.text().strip()
        ok_address = not address  # none: picked when the tunnel is added
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
        address = self.address.text().strip() or None
        name = self.name.text().strip() or None
        request = self.request.isChecked()
        self._start(
            lambda: backend.add_foundries_tunnel(factory, address, name, request_access=request),
            "Setting up the tunnel…",
            self._added,
        )

    def _added(self, added: AddedTunnel) -> None:
        tunnel = added.tunnel
        self.tunnel = tunnel
        if added.requested:
            self.result_title.setText(
                f"The tunnel “{tunnel.name}” to {tunnel.factory} is set up with the address "
                f"{tunnel.address}, and access is requested."
            )
            self.result_note.setText(
                "A VPN server running fiotray-server --self-service admits this laptop at its "
                "next sync (every 5 minutes by default): connect now, the tray shows "
                "“waiting” until then. Any other server needs its admin to run one of these."
            )
        else:
            self.result_title.setText(
                f"The tunnel “{tunnel.name}” to {tunnel.factory} is set up with the address "
                f"{tunnel.address}. One step is left, on the server."
            )
            self.result_note.setText(
                "The server's admin runs one of these once; until then the tunnel comes up "
                "but the tray shows “waiting”. factory-wireguard-server drops this peer at its "
                "next device change, so its admin must also keep it in the server's "
                "configuration."
            )
        self.public_key.setText(tunnel.public_key)
        self.copy_key.payload = tunnel.public_key
        for box, copy, line in (
            (self.server_line, self.copy_server_line, added.server_admin_line),
            (self.admin_line, self.copy_line, added.admin_line),
        ):
            box.setPlainText(line)
            copy.payload = line
        # Wide enough for the longer line on two rows, never wider than the screen allows.
        box = self.server_line
        margin = 2 * (box.frameWidth() + box.document().documentMargin())
        wanted = box.fontMetrics().horizontalAdvance(added.server_admin_line) // 2
        wanted += int(margin) + 40
        screen = self.screen()
        if screen is not None:
            wanted = min(wanted, int(screen.availableGeometry().width() * 0.8) - 160)
        self.server_line.setMinimumWidth(max(wanted, 200))
        self.form_page.hide()
        self.result_page.show()
        self._schedule_refit(shrink=True)
        self.ok_button.hide()
        self.cancel_button.hide()
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        self.close_button = close
        self.setTabOrder(self.copy_line, close)
        self.copy_server_line.setFocus()
        self.tunnelAdded.emit(tunnel)

    def done(self, r: int) -> None:
        self._closed = True
        super().done(r)

    def reject(self) -> None:
        # Once the tunnel exists, closing (Esc, Close) is the successful end.
        if self.tunnel is not None:
            self.accept()
        else:
            super().reject()
