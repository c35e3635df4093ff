"""Window sizes that fit the screen they open on."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def fit_to_screen(window: QWidget, margin: int = 48) -> None:
    """Shrink a window's first size to the screen's free area (a small laptop, a panel)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    width = min(window.width(), max(320, area.width() - margin))
    height = min(window.height(), max(240, area.height() - margin))
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)


__all__ = ["fit_to_screen"]
