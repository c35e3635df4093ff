"""The app's dialogs, one per module: sign_in, add_tunnel, import_tunnel, settings, help,
about.

No dialog is imported here: the tray starts without any, and a dialog's module is
imported the first time it opens. A menu entry holds one of the functions below,
which imports its dialog and returns the class; every dialog class is built as
``cls(backend, parent=None)``. Shared helpers are in `base`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # For type checkers only: defining a Protocol costs the tray's start a millisecond.
    from collections.abc import Callable
    from typing import Protocol

    from PySide6.QtWidgets import QDialog, QWidget

    from fiotray.gui.backend import Backend

    class DialogClass(Protocol):
        def __call__(self, backend: Backend, parent: QWidget | None = None) -> QDialog: ...

    DialogLoader = Callable[[], DialogClass]


def sign_in_dialog() -> DialogClass:
    from fiotray.gui.dialogs.sign_in import SignInDialog

    return SignInDialog


def add_tunnel_dialog() -> DialogClass:
    from fiotray.gui.dialogs.add_tunnel import AddFoundriesTunnelDialog

    return AddFoundriesTunnelDialog


def import_tunnel_dialog() -> DialogClass:
    from fiotray.gui.dialogs.import_tunnel import ImportTunnelDialog

    return ImportTunnelDialog


def settings_dialog() -> DialogClass:
    from fiotray.gui.dialogs.settings import SettingsDialog

    return SettingsDialog


def help_dialog() -> DialogClass:
    from fiotray.gui.dialogs.help import HelpDialog

    return HelpDialog


def about_dialog() -> DialogClass:
    from fiotray.gui.dialogs.about import AboutDialog

    return AboutDialog
