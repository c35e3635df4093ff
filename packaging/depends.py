#!/usr/bin/env python3
"""The .debs' library Depends, for every system they are for: Debian 12 and 13, Ubuntu 22.04
and 24.04 (amd64).

Usage: dpkg-shlibdeps ... | python packaging/depends.py   (build-deb.sh does this)
       python packaging/depends.py --check "a, b | c (>= 1)"   (names only, exit 1 if unchecked)

dpkg-shlibdeps runs on the build machine (Debian 12) and names the packages the bundles link
to as Debian 12 names them, with the floors of Debian 12's symbols and shlibs files. Two
things about that line are wrong elsewhere, and this script rewrites them:

  * RENAMED: the 64-bit time_t transition gave some libraries new package names in Debian 13
    and Ubuntu 24.04 (libglib2.0-0t64, libssl3t64). Debian 13's t64 packages also Provide
    the old name with a version, but the Depends names the real package of every system,
    new name first: "libssl3t64 (>= 3.0.0) | libssl3 (>= 3.0.0)".
  * FLOORS: a library without a symbols file gets the floor of its shlibs file, which
    names its packager's version of the day, not what the bundle needs: libzstd1 (>= 1.5.2)
    and libx11-xcb1 (>= 2:1.8.4) would refuse Ubuntu 22.04 (zstd 1.4.8, libx11 1.7.5) for
    functions every version there has. The floor is lowered to the release that added the
    newest function the bundle imports from it (nm -D --undefined-only on the bundle).

Then every name must be in CHECKED, the names looked up in all four systems (see there for
how). A library the bundle newly links to fails the build until its name is checked.
"""

from __future__ import annotations

import re
import sys

# Debian 12 / Ubuntu 22.04 name -> Debian 13 / Ubuntu 24.04 name.
RENAMED = {
    "libglib2.0-0": "libglib2.0-0t64",
    "libssl3": "libssl3t64",
}

# Package -> floor (None: any version), for floors that come from a shlibs file.
FLOORS: dict[str, str | None] = {
    # Qt6Core imports ZSTD_decompress, ZSTD_getErrorName, ZSTD_isError and
    # ZSTD_getFrameContentSize, the newest of them, from zstd 1.3.0.
    "libzstd1": "1.3.0",
    # Qt's xcb plugin imports XGetXCBConnection and XSetEventQueueOwner, both in libX11-xcb
    # since it exists (libX11 1.2).
    "libx11-xcb1": None,
}

# Every package name the Depends of either .deb may hold (alternatives too): each exists
# in all four systems, except the t64 names and their old ones, which each exist in two
# and always come as alternatives of each other. How they were checked (December 2026):
#   Debian 12 and 13: `apt-cache show` of every name in debootstrap'd bookworm and trixie
#     (deb.debian.org), the bases packaging/test-install.sh installs on; the fresh-system
#     install test then installs the Depends on both. In trixie libglib2.0-0 and libssl3
#     are only virtual (Provided by the t64 packages), and policykit-1 is gone.
#   Ubuntu 22.04 (jammy) and 24.04 (noble): the Ubuntu archive is not reachable from the
#     build machine, so no apt there. Names marked "pages:" were read on packages.ubuntu.com
#     pages for jammy and noble (versions as seen there). The others are expected, not
#     seen: the same Debian source package ships them under the same name in Debian 12 and
#     13, on either side of both Ubuntu releases, and the t64 transition renamed only
#     libraries with time_t in their ABI (glib and openssl here). README.md, "Supported
#     systems", says the same.
CHECKED = {
    # libraries (dpkg-shlibdeps)
    "libbz2-1.0",
    "libc6",
    "libdbus-1-3",
    "libegl1",
    "libexpat1",
    "libffi8",
    "libfontconfig1",
    "libfreetype6",
    "libgcc-s1",
    "libgl1",
    "libglib2.0-0",  # pages: jammy (a Depends of pkexec 0.105)
    "libglib2.0-0t64",  # pages: noble 2.80.0
    "liblzma5",
    "libssl3",
    "libssl3t64",  # pages: noble 3.0.13
    "libstdc++6",
    "libuuid1",
    "libwayland-client0",  # pages: jammy (>= 1.20.0, a Depends of libxkbcommon-tools)
    "libwayland-cursor0",
    "libx11-6",
    "libx11-xcb1",  # pages: jammy 2:1.7.5, noble 2:1.8.7
    "libxcb-cursor0",  # pages: jammy 0.1.1 (universe), noble
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-render0",
    "libxcb-shape0",
    "libxcb-shm0",
    "libxcb-sync1",
    "libxcb-util1",
    "libxcb-xfixes0",
    "libxcb-xkb1",  # pages: jammy 1.14
    "libxcb1",
    "libxkbcommon-x11-0",  # pages: jammy 1.4.0
    "libxkbcommon0",  # pages: jammy 1.4.0
    "libzstd1",  # pages: jammy 1.4.8
    "zlib1g",
    # control.in and server-control.in
    "wireguard-tools",
    "iproute2",
    "iptables",
    "pkexec",  # pages: jammy 0.105-33ubuntu0.1, noble 124-2ubuntu1 (not policykit-1: not in 13)
    "fonts-dejavu-core",
    "fonts-liberation2",
    "fonts-noto-core",
    "fonts-freefont-ttf",
}

RELATION = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]+)(?::[a-z0-9]+)?\s*(?:\(([^)]*)\))?\s*$")


def parse(field: str) -> list[list[tuple[str, str | None]]]:
    """A Depends field as [[(name, "op version" or None), ...alternatives], ...]."""
    groups = []
    for group in field.split(","):
        if not group.strip():
            continue
        alts = []
        for alt in group.split("|"):
            m = RELATION.match(alt)
            if not m:
                raise ValueError(f"not a package relation: {alt.strip()!r}")
            alts.append((m[1], m[2].strip() if m[2] else None))
        groups.append(alts)
    return groups


def text(name: str, version: str | None) -> str:
    return f"{name} ({version})" if version else name


def rewrite(shlibs: str) -> str:
    """dpkg-shlibdeps' Depends (Debian 12's names and floors) for all four systems."""
    out = []
    for group in parse(shlibs):
        alts = []
        for name, version in group:
            if name in FLOORS:
                floor = FLOORS[name]
                version = f">= {floor}" if floor else None
            if name in RENAMED:
                alts.append(text(RENAMED[name], version))
            alts.append(text(name, version))
        out.append(" | ".join(alts))
    return ", ".join(out)


def unchecked(field: str) -> list[str]:
    """Names in a Depends field that are not in CHECKED (substitution variables skipped)."""
    field = re.sub(r"@\w+@\s*,?", "", field)
    return sorted({name for group in parse(field) for name, _ in group} - CHECKED)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"] and len(argv) == 2:
        field = argv[1]
    elif not argv:
        field = rewrite(sys.stdin.read().strip().removeprefix("shlibs:Depends="))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    missing = unchecked(field)
    for name in missing:
        print(
            f"depends: {name} is not known to exist under this name in Debian 12 and 13 and "
            "Ubuntu 22.04 and 24.04: check it and add it to CHECKED in packaging/depends.py",
            file=sys.stderr,
        )
    if missing:
        return 1
    if not argv:
        print(field)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
