"""About fiotray: the version, where the log is, and diagnostics to paste in a report."""

from __future__ import annotations

import os
import platform
import sys
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from fiotray import __version__
from fiotray.gui.dialogs.base import CopyButton, fixed_font_edit, note_label

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend


def diagnostics(backend: Backend | None) -> str:
    """What a bug report needs, one `key: value` a line. Never a secret: no token, key,
    URL path or device; the factories are counted, not named."""
    import PySide6
    from PySide6.QtCore import qVersion
    from PySide6.QtGui import QGuiApplication

    from fiotray.core.logs import log_file

    demo = bool(backend and backend.demo)
    lines = {
        "fiotray": __version__,
        "python": platform.python_version(),
        "pyside6": PySide6.__version__,
        "qt": qVersion(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "bundled": "yes" if getattr(sys, "frozen", False) else "no (from source)",
        "desktop": os.environ.get("XDG_CURRENT_DESKTOP", "-"),
        "session": os.environ.get("XDG_SESSION_TYPE", "-"),
        "qt platform": QGuiApplication.platformName(),
        "tray": "available" if QSystemTrayIcon.isSystemTrayAvailable() else "none found",
        "demo": "yes" if demo else "no",
        "log": str(log_file(demo)),
    }
    if backend is not None:
        services = backend.services
        lines["keyring"] = services.secrets.backend_name
        lines["factories"] = str(len(services.factories.list()))
        tunnels = services.tunnels.list()
        lines["tunnels"] = f"{len(tunnels)} ({sum(t.kind == 'plain' for t in tunnels)} plain)"
    return "\n".join(f"{k}: {v}" for k, v in lines.items())


class AboutDialog(QDialog):
    def __init__(self, backend: Backend | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("About fiotray")
        title = QLabel(f"<b>fiotray {__version__}</b>")
        text = diagnostics(backend)
        self.details = QPlainTextEdit(text)
        self.details.setReadOnly(True)
        fixed_font_edit(self.details)
        self.details.setMinimumSize(460, 260)
        self.copy = CopyButton("&Copy diagnostics", "Copy these lines for a bug report")
        self.copy.payload = text
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(
            note_label(
                "One-click access to FoundriesFactory devices over the factory's WireGuard "
                "VPN. The diagnostics below hold no secret, address or device name."
            )
        )
        layout.addWidget(self.details)
        layout.addWidget(buttons)
