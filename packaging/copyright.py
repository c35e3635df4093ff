#!/usr/bin/env python3
"""Write the .deb's debian/copyright (DEP-5) for fiotray and what its bundle carries.

Usage: BUILD_VENV_PYTHON packaging/copyright.py > copyright

Run with the build venv's interpreter: the Python distributions listed are the ones
installed there (the bundle is built from them), with the licence their metadata states.
"""

from __future__ import annotations

import sys
from importlib import metadata

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


def main() -> int:
    # Most Python packages live inside the bundle's archive rather than as files, so they
    # are listed in one stanza's comment (name, version, licence, authors) instead of by path.
    lines = []
    seen = set()
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"].lower()):
        name = dist.metadata["Name"]
        key = name.lower().replace("_", "-")
        if key in NOT_BUNDLED or key in seen:
            continue
        seen.add(key)
        author = dist.metadata.get("Author") or dist.metadata.get("Author-email") or name
        author = " ".join(author.replace('"', "").split())
        lines.append(f" {name} {dist.version}: {licence(dist)}; {author}")
    sys.stdout.write(
        HEADER
        + "\nFiles: opt/fiotray/_internal/*\n"
        + "Copyright: the authors of each Python package listed below\n"
        + "License: various, per package\n"
        + " Each package's licence as its metadata states it:\n"
        + "\n".join(lines)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
