#!/usr/bin/env python3
"""Write a .deb's debian/copyright (DEP-5) for fiotray or fiotray-server and what its
bundle carries.

Usage: BUILD_VENV_PYTHON packaging/copyright.py > copyright
       BUILD_VENV_PYTHON packaging/copyright.py --server build/dist/fiotray-server > copyright

Run with the build venv's interpreter: the Python distributions listed are the ones
installed there (the bundle is built from them), with the licence their metadata states.
For the server, only those of them the bundle holds: the venv also has Qt and keyring,
which the server's bundle leaves out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# Build tools in the venv that are not in the bundle.
NOT_BUNDLED = {
    "pip",
    "setuptools",
    "wheel",
    "pyinstaller",
    "pyinstaller-hooks-contrib",
    "altgraph",
    "packaging",
    "fiotray",
}

HEADER = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fiotray
Source: https://github.com/foundriesio
Comment: /opt/fiotray is a PyInstaller bundle. Besides fiotray it carries the CPython 3.11
 runtime, Qt 6 and ICU (from the PySide6 wheel) and the Python packages listed below; the
 system libraries it uses come from Debian packages (see Depends). The Qt libraries are
 used under the LGPL-3.0: they are separate shared libraries in
 /opt/fiotray/_internal/PySide6/Qt/lib and can be replaced by the user.

Files: *
Copyright: fiotray contributors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: opt/fiotray/_internal/PySide6/Qt/*
Copyright: The Qt Company Ltd. and other contributors
License: LGPL-3.0-only
 On Debian systems the full text is in /usr/share/common-licenses/LGPL-3.

Files: opt/fiotray/_internal/PySide6/Qt/lib/libicu*
Copyright: Unicode, Inc. and others
License: Unicode-3.0
 See https://www.unicode.org/license.txt

Files: opt/fiotray/_internal/libpython3* opt/fiotray/_internal/python3*
 opt/fiotray/_internal/base_library.zip
Copyright: Python Software Foundation
License: PSF-2.0
 See https://docs.python.org/3/license.html
"""


SERVER_HEADER = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fiotray
Source: https://github.com/foundriesio
Comment: /opt/fiotray-server is a PyInstaller bundle, without Qt. Besides fiotray's server
 it carries the CPython 3.11 runtime and the Python packages listed below; the system
 libraries it uses come from Debian packages (see Depends).

Files: *
Copyright: fiotray contributors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: opt/fiotray-server/_internal/libpython3* opt/fiotray-server/_internal/python3*
 opt/fiotray-server/_internal/base_library.zip
Copyright: Python Software Foundation
License: PSF-2.0
 See https://docs.python.org/3/license.html
"""


def top_level_names(dist: metadata.Distribution) -> set[str]:
    """The importable names a distribution installs (httpx, yaml, _cffi_backend, ...)."""
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info", ".pth")):
            continue
        names.add(first.split(".")[0])
    return names


def bundled_names(bundle: Path) -> set[str]:
    """Top-level module and package names in a PyInstaller one-folder bundle."""
    return {entry.name.split(".")[0] for entry in (bundle / "_internal").iterdir()}


def licence(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expr = meta.get("License-Expression")
    if expr:
        return expr
    classifiers = [
        c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    if classifiers:
        return " or ".join(classifiers)
    text = (meta.get("License") or "").strip()
    return text.splitlines()[0] if text else "see the package's metadata"


def package_lines(dists: Iterable[metadata.Distribution], bundle: Path | None) -> list[str]:
    """One line per bundled distribution: name, version, licence, authors. With `bundle`,
    only the distributions that have a top-level module in it."""
    in_bundle = bundled_names(bundle) if bundle is not None else None
    lines = []
    seen = set()
    for dist in sorted(dists, key=lambda d: d.metadata["Name"].lower()):
        name = dist.metadata["Name"]
        key = name.lower().replace("_", "-")
        if key in NOT_BUNDLED or key in seen:
            continue
        if in_bundle is not None and not top_level_names(dist) & in_bundle:
            continue
        seen.add(key)
        author = dist.metadata.get("Author") or dist.metadata.get("Author-email") or name
        author = " ".join(author.replace('"', "").split())
        lines.append(f" {name} {dist.version}: {licence(dist)}; {author}")
    return lines


def main(argv: list[str]) -> int:
    server = argv[:1] == ["--server"]
    if argv and not (server and len(argv) == 2):
        print(__doc__, file=sys.stderr)
        return 2
    bundle = Path(argv[1]) if server else None
    # Most Python packages are a tree of files in the bundle, so they are listed in one
    # stanza's comment (name, version, licence, authors) instead of by path.
    lines = package_lines(metadata.distributions(), bundle)
    opt = "opt/fiotray-server" if server else "opt/fiotray"
    sys.stdout.write(
        (SERVER_HEADER if server else HEADER)
        + f"\nFiles: {opt}/_internal/*\n"
        + "Copyright: the authors of each Python package listed below\n"
        + "License: various, per package\n"
        + " Each package's licence as its metadata states it:\n"
        + "\n".join(lines)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
