"""What the slim bundles keep: used by packaging/fiotray.spec and packaging/fiotray-server.spec,
and checked by the unit tests.

Paths are the bundle's destination paths (relative to the bundle's _internal dir).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import PurePosixPath

# One entry of a PyInstaller table of contents: (destination, source, type code).
TocEntry = tuple[str, str, str]

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

# Standard-library and third-party modules neither bundle reaches. yaml's C loader: fiotray
# reads one small fioctl.yaml with yaml.safe_load (pure Python), so libyaml's 2.7 MB go.
# fmt: off
UNUSED_PYTHON = [
    "tkinter", "unittest", "pydoc", "doctest", "lib2to3", "sqlite3", "xmlrpc", "idlelib",
    "ensurepip", "venv", "distutils", "setuptools", "pkg_resources", "pip", "curses",
    "readline", "test", "pytest", "_pytest", "yaml._yaml", "PyQt5", "PyQt6", "PySide2",
    "IPython", "numpy",
    # Nothing fiotray runs uses processes (only anyio.to_process would); without the module
    # PyInstaller's multiprocessing runtime hook, which imports it at every start, goes too.
    "multiprocessing",
    # The MCP SDK is the `mcp` extra: the bundle leaves it out even when the build's venv
    # has it, and `fiotray mcp` in the bundle says how to get a fiotray that serves MCP.
    "mcp",
]
# fmt: on


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


def needed(path: str) -> list[str]:
    """DT_NEEDED sonames of one ELF file (readelf, from binutils, as strip is)."""
    out = subprocess.run(
        ["readelf", "-d", "--wide", path], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def slim(
    binaries: list[TocEntry], datas: list[TocEntry], spec: str
) -> tuple[list[TocEntry], list[TocEntry]]:
    """The Analysis' binaries and datas without unused Qt files, without libraries Debian
    provides, and without any library nothing kept still links to."""
    kept_bins = []
    for dest, src, kind in binaries:
        if not keep_qt_file(dest):
            continue
        if kind == "BINARY" and is_system_library(src, dest):
            continue  # Debian provides it: a Depends of the .deb, not a copy in the bundle
        kept_bins.append((dest, src, kind))
    kept_datas = [(d, s, k) for d, s, k in datas if keep_qt_file(d)]
    # Roots: what Python or Qt loads by path. Everything else must be reached over DT_NEEDED.
    by_name: dict[str, TocEntry] = {}
    for entry in kept_bins:
        by_name.setdefault(os.path.basename(entry[0]), entry)
    roots = [
        b
        for b in kept_bins
        if b[2] == "EXTENSION"
        or b[0].startswith("PySide6/Qt/plugins/")
        or os.path.basename(b[0]).startswith("libpython")
    ]
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        dest, src, _ = todo.pop()
        if dest in seen:
            continue
        seen.add(dest)
        todo += [by_name[soname] for soname in needed(src) if soname in by_name]
    pruned = [b for b in kept_bins if b[0] in seen]
    dropped = sorted(b[0] for b in kept_bins if b[0] not in seen)
    if dropped:
        print(f"{spec}: no longer needed:", " ".join(dropped), file=sys.stderr)
    # Top-level symlinks PyInstaller makes for Qt's libraries: only for libraries still there.
    kept_names = {os.path.basename(d) for d, _, _ in pruned}
    kept_datas = [
        (d, s, k) for d, s, k in kept_datas if k != "SYMLINK" or os.path.basename(d) in kept_names
    ]
    return pruned, kept_datas
