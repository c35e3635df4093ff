"""Import a wg-quick .conf for any other WireGuard network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.dialogs.base import (
    WorkDialog,
    add_file_row,
    file_chooser,
    form_layout,
    line_edit,
    note_label,
    side_button,
)

if TYPE_CHECKING:
    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend


class ImportTunnelDialog(WorkDialog):
    """A wg-quick .conf for any other WireGuard network; its private key goes to the keyring."""

    tunnelImported = Signal(object)  # Tunnel

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "Import")
        self.setWindowTitle("Import a WireGuard tunnel")
        self.setMinimumWidth(520)
        self.tunnel: Tunnel | None = None
        self._file_dialog: QFileDialog | None = None
        try:
            self._tunnel_names = {t.name for t in backend.tunnels()}
            load_problem = ""
        except FiotrayError as exc:
            self._tunnel_names, load_problem = set(), str(exc)

        self.path = line_edit("/path/to/tunnel.conf", "A wg-quick configuration file.")
        self.browse = side_button("&Browse…", "Choose a WireGuard configuration file")
        self.browse.clicked.connect(self._browse)
        self.name = line_edit(
            "optional, default: from the file name",
            "The tunnel's name in fiotray (letters, digits, '-', '_'); also its interface name "
            "when it is short enough.",
        )
        form = form_layout()
        add_file_row(form, "&File:", self.path, self.browse)
        form.addRow("&Name:", self.name)
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            note_label(
                "For a WireGuard network other than your factory's VPN server (an office or "
                "lab VPN), from a wg-quick .conf file. For the factory's VPN use “Add a "
                "Foundries tunnel” instead."
            )
        )
        layout.addLayout(form)
        layout.addWidget(
            note_label(
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
            dialog = file_chooser(
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

    def _imported(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.tunnelImported.emit(tunnel)
        self.accept()
