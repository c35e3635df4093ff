#!/usr/bin/env python3
"""Check a built bundle is as slim as packaging/fiotray.spec means it to be.

Usage: python packaging/bundle_check.py [--max-glibc 2.35] build/dist/fiotray
       python packaging/bundle_check.py [--max-glibc 2.35] --no-qt build/dist/fiotray-server

Fails (exit 1, one line per problem) when:
  * a shared library in the bundle is linked to by nothing that is loaded by path (the
    executable, libpython, Python extension modules, Qt plugins), following DT_NEEDED;
  * a Qt plugin or translation the spec drops is there after all;
  * a binary still has its symbol table (not stripped);
  * a library from the system's library directories was copied in (Debian provides those);
  * with --no-qt (the server's bundle): any file of Qt, PySide6, shiboken6, qasync or
    fiotray.gui is there at all;
  * with --max-glibc X.Y: a binary needs a glibc symbol version newer than X.Y (its
    GLIBC_ version needs, as the dynamic loader checks them at start). The bundle then
    would not start on a system with glibc X.Y (2.35: Ubuntu 22.04). Prints the highest
    version needed, and which file needs it, either way.
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


GLIBC_NEED = re.compile(r"\sName: GLIBC_(\d+(?:\.\d+)+)\s")


def glibc_needed(readelf_v: str) -> set[tuple[int, ...]]:
    """The GLIBC_x.y[.z] versions in the version-needs section of `readelf -V -W` output.

    Only what the file needs (.gnu.version_r), not what it defines (.gnu.version_d); and
    not GLIBC_PRIVATE, which no released glibc promises anything about.
    """
    versions: set[tuple[int, ...]] = set()
    in_needs = False
    for line in readelf_v.splitlines():
        if line.startswith("Version ") and " section " in line:
            in_needs = line.startswith("Version needs section")
        elif in_needs and (m := GLIBC_NEED.search(line + " ")):
            versions.add(tuple(int(part) for part in m[1].split(".")))
    return versions


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def parse_version(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+(\.\d+)+", text):
        raise ValueError(f"not a glibc version: {text!r}")
    return tuple(int(part) for part in text.split("."))


def highest_glibc(elves: list[Path]) -> tuple[tuple[int, ...], list[Path]]:
    """The highest GLIBC_ version any of the files needs, and the files that need it."""
    best: tuple[int, ...] = ()
    needers: list[Path] = []
    for path in elves:
        versions = glibc_needed(readelf("-V", "-W", str(path)))
        top = max(versions, default=())
        if top > best:
            best, needers = top, [path]
        elif top and top == best:
            needers.append(path)
    return best, needers


def glibc_problems(bundle: Path, elves: list[Path], limit: tuple[int, ...]) -> list[str]:
    """One line per file that needs a glibc symbol version newer than limit."""
    problems = []
    for path in elves:
        too_new = sorted(v for v in glibc_needed(readelf("-V", "-W", str(path))) if v > limit)
        if too_new:
            problems.append(
                f"{path.relative_to(bundle)}: needs GLIBC_{version_text(too_new[-1])}, newer than "
                f"GLIBC_{version_text(limit)} (the oldest glibc the package is for)"
            )
    return problems


def elf_files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))


def check(bundle: Path, no_qt: bool = False) -> list[str]:
    internal = bundle / "_internal"
    elves = elf_files(bundle)
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
    no_qt = "--no-qt" in argv
    argv = [a for a in argv if a != "--no-qt"]
    max_glibc: tuple[int, ...] | None = None
    if argv[:1] == ["--max-glibc"] and len(argv) > 1:
        try:
            max_glibc = parse_version(argv[1])
        except ValueError as exc:
            print(f"bundle_check: {exc}", file=sys.stderr)
            return 2
        argv = argv[2:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    problems = check(bundle, no_qt=no_qt)
    elves = elf_files(bundle)
    if max_glibc is not None:
        problems += glibc_problems(bundle, elves, max_glibc)
    top, needers = highest_glibc(elves)
    if top:
        names = ", ".join(p.relative_to(bundle).as_posix() for p in needers[:3])
        more = f" and {len(needers) - 3} more" if len(needers) > 3 else ""
        top_text = version_text(top)
        print(f"bundle_check: highest glibc version needed: GLIBC_{top_text} ({names}{more})")
    for line in problems:
        print(f"bundle_check: {line}", file=sys.stderr)
    if not problems:
        print(
            f"bundle_check: {len(elves)} binaries, all stripped and all needed"
            + (", no Qt" if no_qt else "")
            + (f", none needs glibc newer than {version_text(max_glibc)}" if max_glibc else "")
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
