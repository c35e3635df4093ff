"""What the slim bundle keeps: used by packaging/fiotray.spec and checked by the unit tests.

Paths are the bundle's destination paths (relative to the bundle's _internal dir).
"""

from __future__ import annotations

from pathlib import PurePosixPath

QT = PurePosixPath("PySide6/Qt")

# Qt plugins fiotray loads, per plugin directory (file names, or "*" for every file).
KEEP_PLUGINS: dict[str, set[str]] = {
    # X11, Wayland, and offscreen (no display: tests, screenshots).
    "platforms": {"libqxcb.so", "libqwayland.so", "libqoffscreen.so"},
    # Icons are SVG (fiotray/gui/svg and the icon theme).
    "iconengines": {"libqsvgicon.so"},
    "imageformats": {"libqsvg.so"},
    # Compose keys and IBus input in the devices window's search field.
    "platforminputcontexts": {"*"},
    # A window on Wayland needs a shell (xdg-shell) and, on GNOME, client-side decorations.
    "wayland-shell-integration": {"libxdg-shell.so"},
    "wayland-decoration-client": {"*"},
}

# Shared libraries from these directories come from Debian packages (Depends), not the bundle.
SYSTEM_LIB_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
# ...except libpython: the bundle's interpreter is 3.11, which newer distros do not ship.
BUNDLED_SYSTEM_LIBS = ("libpython3",)


def keep_qt_file(dest: str) -> bool:
    """False for a Qt plugin fiotray does not use and for Qt's translations."""
    path = PurePosixPath(dest)
    if path.is_relative_to(QT / "translations"):
        return False
    if path.is_relative_to(QT / "plugins"):
        rel = path.relative_to(QT / "plugins")
        if len(rel.parts) < 2:
            return False
        wanted = KEEP_PLUGINS.get(rel.parts[0], set())
        return "*" in wanted or rel.name in wanted
    return True


def is_system_library(src: str, dest: str) -> bool:
    """A library PyInstaller found in the system's library directories (not a wheel's)."""
    if any(part in ("site-packages", "dist-packages") for part in PurePosixPath(src).parts):
        return False
    if PurePosixPath(dest).name.startswith(BUNDLED_SYSTEM_LIBS):
        return False
    return src.startswith(SYSTEM_LIB_DIRS)
