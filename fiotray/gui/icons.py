"""Tray icons: the desktop theme's symbolic VPN icons when it has them all, else fiotray's own.

fiotray's SVGs ship inside the package (``fiotray/gui/svg/``) so a source
checkout, a wheel and a PyInstaller bundle find them the same way;
``resources/icons/hicolor`` holds the same files for the system icon theme.
They draw a dark shield inside a light outline, so they read on light and
dark panels alike without knowing the panel's colour (an XEmbed tray never
tells it).
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

from fiotray.core.tunnelstate import State

log = logging.getLogger(__name__)

SVG_DIR = Path(__file__).with_name("svg")
APP_ICON = "fiotray"

# freedesktop/Adwaita names; used only as a complete set, never mixed with ours.
THEME_NAMES: dict[State, str] = {
    State.DISCONNECTED: "network-vpn-disconnected-symbolic",
    State.CONNECTING: "network-vpn-acquiring-symbolic",
    State.WAITING: "network-vpn-acquiring-symbolic",
    State.CONNECTED: "network-vpn-symbolic",
    State.STALE: "network-vpn-no-route-symbolic",
    State.ERROR: "network-error-symbolic",
}

# The icon shown for several tunnels: the one that most needs the user's eye.
PRIORITY = (
    State.ERROR,
    State.STALE,
    State.WAITING,
    State.CONNECTING,
    State.CONNECTED,
    State.DISCONNECTED,
)


def svg_path(name: str) -> Path:
    return SVG_DIR / f"{name}.svg"


def state_icon_name(state: State) -> str:
    return f"fiotray-{state.value}"


def use_theme() -> bool:
    """Theme icons when the theme has every state; FIOTRAY_ICONS=shipped|theme overrides."""
    choice = os.environ.get("FIOTRAY_ICONS", "")
    if choice == "shipped":
        return False
    has_all = all(QIcon.hasThemeIcon(n) for n in THEME_NAMES.values())
    if choice == "theme" and not has_all:
        log.info("FIOTRAY_ICONS=theme, but the theme lacks some VPN icons; using fiotray's")
    return has_all


@cache
def _shipped(name: str) -> QIcon:
    path = svg_path(name)
    if not path.is_file():
        # A broken install: say where we looked rather than show a blank square silently.
        log.warning("icon %s is missing", path)
    return QIcon(str(path))


@cache
def state_icon(state: State, theme: bool | None = None) -> QIcon:
    """The icon of one tunnel state; `theme` None: decide with use_theme()."""
    own = _shipped(state_icon_name(state))
    if theme is None:
        theme = use_theme()
    if theme:
        return QIcon.fromTheme(THEME_NAMES[state], own)
    return own


def summary_state(states: list[State]) -> State:
    present = set(states)
    return next((s for s in PRIORITY if s in present), State.DISCONNECTED)


def app_icon() -> QIcon:
    return QIcon.fromTheme(APP_ICON, _shipped(APP_ICON))


def clear_cache() -> None:
    """Forget the chosen icons (after the icon theme changed)."""
    state_icon.cache_clear()
    _shipped.cache_clear()
