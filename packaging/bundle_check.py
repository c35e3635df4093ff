#!/usr/bin/env python3
"""Check a built bundle is as slim as packaging/fiotray.spec means it to be.

Usage: python packaging/bundle_check.py build/dist/fiotray
       python packaging/bundle_check.py --no-qt build/dist/fiotray-server

Fails (exit 1, one line per problem) when:
  * a shared library in the bundle is linked to by nothing that is loaded by path (the
    executable, libpython, Python extension modules, Qt plugins), following DT_NEEDED;
  * a Qt plugin or translation the spec drops is there after all;
  * a binary still has its symbol table (not stripped);
  * a library from the system's library directories was copied in (Debian provides those);
  * with --no-qt (the server's bundle): any file of Qt, PySide6, shiboken6, qasync or
    fiotray.gui is there at all.
Needs readelf (binutils).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_rules import BUNDLED_SYSTEM_LIBS, keep_qt_file

EXTENSION = re.compile(r"^[A-Za-z_]\w*\.(cpython-[^.]+|abi3)\.so$")
# Debian's own libraries that PyInstaller would copy in: the .deb depends on them instead.
SYSTEM_SONAMES = re.compile(
    r"^lib(ssl|crypto|glib-2\.0|gio-2\.0|gobject-2\.0|X11|xcb|fontconfig|freetype|stdc\+\+|"
    r"gcc_s|dbus-1|z|ffi|expat|lzma|bz2|zstd|uuid|gtk-3|gdk-3|cairo|pango)[.-]"
)


# What a bundle without a GUI must not carry: a path with one of these parts, or Qt's libraries.
GUI_PARTS = {"PySide6", "shiboken6", "qasync"}
QT_LIBRARY = re.compile(r"^libQt\d|^libshiboken|^libpyside", re.IGNORECASE)


def gui_files(bundle: Path) -> list[str]:
    """Paths (relative to the bundle) of GUI files in a bundle that must have none."""
    found = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle)
        parts = rel.parts
        in_gui = any(p.partition(".")[0] in GUI_PARTS or p.startswith("qasync") for p in parts)
        fiotray_gui = any(parts[i : i + 2] == ("fiotray", "gui") for i in range(len(parts)))
        if in_gui or fiotray_gui or QT_LIBRARY.match(path.name):
            found.append(rel.as_posix())
    return found


def is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", *args], capture_output=True, text=True, check=True).stdout


def needed(path: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", "-W", str(path)))


def check(bundle: Path, no_qt: bool = False) -> list[str]:
    internal = bundle / "_internal"
    elves = sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))
    by_name: dict[str, Path] = {}
    for path in bundle.rglob("*"):
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name):
            by_name.setdefault(path.name, path.resolve())
    problems = []
    for path in elves:
        rel = path.relative_to(internal).as_posix() if path.is_relative_to(internal) else ""
        if rel and not keep_qt_file(rel):
            problems.append(f"{rel}: a Qt plugin the spec drops")
        if SYSTEM_SONAMES.match(path.name) and not path.name.startswith(BUNDLED_SYSTEM_LIBS):
            problems.append(f"{rel}: a system library (Debian provides it)")
        if ".symtab" in readelf("-S", "-W", str(path)):
            problems.append(f"{rel or path.name}: not stripped")
    for path in bundle.rglob("*.qm"):
        problems.append(f"{path.relative_to(bundle)}: a translation")
    roots = [
        p
        for p in elves
        if p.parent == bundle
        or EXTENSION.match(p.name)
        or "plugins" in p.relative_to(bundle).parts
        or p.name.startswith("libpython")
    ]
    reached: set[Path] = set()
    todo = [p.resolve() for p in roots]
    while todo:
        path = todo.pop()
        if path in reached:
            continue
        reached.add(path)
        todo += [by_name[n] for n in needed(path) if n in by_name]
    for path in elves:
        if path.resolve() not in reached:
            problems.append(f"{path.relative_to(bundle)}: nothing in the bundle links to it")
    if no_qt:
        problems += [f"{rel}: a GUI file in a bundle without Qt" for rel in gui_files(bundle)]
    return problems


def main(argv: list[str]) -> int:
    no_qt = argv[:1] == ["--no-qt"]
    if no_qt:
        argv = argv[1:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    problems = check(bundle, no_qt=no_qt)
    for line in problems:
        print(f"bundle_check: {line}", file=sys.stderr)
    count = sum(1 for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))
    if not problems:
        print(
            f"bundle_check: {count} binaries, all stripped and all needed"
            + (", no Qt" if no_qt else "")
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
