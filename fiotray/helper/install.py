"""Install fiotray's privileged helper and its polkit policy from a source checkout.

    sudo .venv/bin/python -m fiotray.helper.install [--group-rule] [--uninstall]

Puts the helper at /usr/libexec/fiotray/fiotray-helper (root:root 0755), the
policy in /usr/share/polkit-1/actions/ and, with --group-rule, the optional
rule that lets the Unix group "fiotray" connect without a password in
/etc/polkit-1/rules.d/.

packaging/build-deb.sh stages the .deb's copy with ``--package --root DIR``: the same
files in the same places, except that the group rule goes (inert) to
/usr/share/fiotray/polkit/, for an administrator to copy to /etc/polkit-1/rules.d/.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import py_compile
import sys
from collections.abc import Callable
from pathlib import Path

HELPER_SOURCE = Path(__file__).resolve().with_name("fiotray_helper.py")
# resources/ sits beside the package in a source checkout; wheels do not carry it.
RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "polkit"
POLICY_NAME = "io.foundries.fiotray.policy"
GROUP_RULE_NAME = "49-fiotray-group.rules"

HELPER_REL = Path("usr/libexec/fiotray/fiotray-helper")
# The code itself, beside the launcher: imported (with its compiled cache) rather than run as
# a script, which Python would compile again at every call. That is connect latency.
MODULE_REL = HELPER_REL.with_name("fiotray_helper.py")
LAUNCHER = b"""#!/usr/bin/python3 -IS
# fiotray's privileged helper, run as root through pkexec (see fiotray_helper.py).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
# Root never writes a compiled cache next to the module: one for another Python version
# would be a file no package owns (the shipped cache is the 3.11 one).
sys.dont_write_bytecode = True
import fiotray_helper  # noqa: E402

os.umask(0o077)  # nothing the helper writes is for anyone but root
sys.exit(fiotray_helper.main(sys.argv[1:]))
"""
POLICY_REL = Path("usr/share/polkit-1/actions") / POLICY_NAME
GROUP_RULE_REL = Path("etc/polkit-1/rules.d") / GROUP_RULE_NAME
# In a package the rule is shipped off: polkit does not read this directory.
GROUP_RULE_SHARE_REL = Path("usr/share/fiotray/polkit") / GROUP_RULE_NAME


class InstallError(Exception):
    """A one-line reason the install cannot be done."""


def helper_path(prefix_root: Path = Path("/")) -> Path:
    return prefix_root / HELPER_REL


def _require_root() -> None:
    if os.geteuid() != 0:
        raise InstallError("must run as root: sudo .venv/bin/python -m fiotray.helper.install")


def _source(name: str) -> Path:
    path = RESOURCES / name
    if not path.is_file():
        raise InstallError(
            f"{path} not found: install the helper from a fiotray source checkout "
            "(the polkit files live in resources/polkit/)"
        )
    return path


def _no_chown(_path: Path, _uid: int, _gid: int) -> None:
    """Staging a package: ownership is the package builder's (root, --root-owner-group)."""


def _put(
    data: bytes, dest: Path, mode: int, chown: Callable[[Path, int, int], None] = os.chown
) -> None:
    """Write dest atomically (a running helper keeps its old file), root-owned."""
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def install(
    prefix_root: Path = Path("/"), *, group_rule: bool = False, package: bool = False
) -> list[Path]:
    """Copy helper, policy and (optionally) the group rule under prefix_root; the paths.

    package: stage a package's tree instead (no root needed: the package manager owns
    and chowns the files), with the group rule in GROUP_RULE_SHARE_REL.
    """
    if not package:
        _require_root()
    chown = _no_chown if package else os.chown
    policy = _source(POLICY_NAME)
    rule = _source(GROUP_RULE_NAME) if group_rule else None
    if not HELPER_SOURCE.is_file():
        raise InstallError(f"{HELPER_SOURCE} not found")
    helper_dest = prefix_root / HELPER_REL
    # The directory holding a root-run program must not be writable by anyone else.
    helper_dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    chown(helper_dest.parent, 0, 0)
    helper_dest.parent.chmod(0o755)
    module_dest = prefix_root / MODULE_REL
    _put(HELPER_SOURCE.read_bytes(), module_dest, 0o644, chown)
    cache = Path(importlib.util.cache_from_source(str(module_dest)))
    py_compile.compile(str(module_dest), cfile=str(cache), doraise=True)
    chown(cache.parent, 0, 0)
    cache.parent.chmod(0o755)
    chown(cache, 0, 0)
    cache.chmod(0o644)
    _put(LAUNCHER, helper_dest, 0o755, chown)
    done = [helper_dest, module_dest, cache]
    policy_dest = prefix_root / POLICY_REL
    _put(policy.read_bytes(), policy_dest, 0o644, chown)
    done.append(policy_dest)
    if rule is not None:
        rule_dest = prefix_root / (GROUP_RULE_SHARE_REL if package else GROUP_RULE_REL)
        _put(rule.read_bytes(), rule_dest, 0o644, chown)
        done.append(rule_dest)
    return done


def uninstall(prefix_root: Path = Path("/")) -> list[Path]:
    """Remove what install() may have put there; the paths actually removed."""
    _require_root()
    removed: list[Path] = []
    module = prefix_root / MODULE_REL
    caches = list(module.parent.glob("__pycache__/fiotray_helper.*.pyc"))
    for path in [
        prefix_root / GROUP_RULE_REL,
        prefix_root / POLICY_REL,
        *caches,
        module,
        prefix_root / HELPER_REL,
    ]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    with contextlib.suppress(OSError):
        (module.parent / "__pycache__").rmdir()
    with contextlib.suppress(OSError):
        (prefix_root / HELPER_REL).parent.rmdir()  # only when empty
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fiotray.helper.install",
        description="Install (or remove) fiotray's privileged helper and polkit policy.",
    )
    parser.add_argument(
        "--group-rule",
        action="store_true",
        help="also let members of the Unix group 'fiotray' connect without a password",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the installed files")
    parser.add_argument(
        "--package",
        action="store_true",
        help="stage a package's tree under --root (no root needed; group rule left off)",
    )
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help="install below this directory (packaging)"
    )
    args = parser.parse_args(argv)
    try:
        if args.uninstall:
            paths = uninstall(args.root)
            verb = "removed"
        else:
            paths = install(args.root, group_rule=args.group_rule, package=args.package)
            verb = "installed"
    except (InstallError, OSError) as exc:
        print(f"fiotray install: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{verb} {path}")
    if not paths:
        print("nothing to remove")
    return 0


if __name__ == "__main__":
    sys.exit(main())
