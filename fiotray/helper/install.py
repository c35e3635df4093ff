"""Install fiotray's privileged helper and its polkit policy from a source checkout.

    sudo .venv/bin/python -m fiotray.helper.install [--group-rule] [--uninstall]

Puts the helper's launcher at /usr/libexec/fiotray/fiotray-helper (root:root 0755),
its code beside it as a package tree of its own (fiotray/helper/fiotray_helper.py and
fiotray/wg/*.py with compiled caches, root:root 0644; fiotray/__init__.py and
fiotray/helper/__init__.py empty), the policy in /usr/share/polkit-1/actions/ and, with
--group-rule, the optional rule that lets the Unix group "fiotray" connect without a
password in /etc/polkit-1/rules.d/.

packaging/build-deb.sh stages the .deb's copy with ``--package --root DIR``: the same
files in the same places, except that the group rule goes (inert) to
/usr/share/fiotray/polkit/, for an administrator to copy to /etc/polkit-1/rules.d/, and,
with ``--helper-bundle build/dist/fiotray-helper``, the helper is the one-folder PyInstaller
bundle of packaging/fiotray-helper.spec (its executable at the same path, its own Python in
_internal/ beside it) instead of the launcher and the module tree: the package needs no
python3 from the system.
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

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # fiotray/ of this checkout
HELPER_SOURCE = PACKAGE_DIR / "helper" / "fiotray_helper.py"
WG_SOURCE = PACKAGE_DIR / "wg"
# resources/ sits beside the package in a source checkout; wheels do not carry it.
RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "polkit"
POLICY_NAME = "io.foundries.fiotray.policy"
GROUP_RULE_NAME = "49-fiotray-group.rules"

LIBEXEC_REL = Path("usr/libexec/fiotray")
HELPER_REL = LIBEXEC_REL / "fiotray-helper"
# The code itself, beside the launcher as a small `fiotray` package of its own (the helper
# and fiotray.wg, nothing else of the app): imported, with compiled caches, rather than run
# as a script, which Python would compile again at every call. That is connect latency.
MODULE_REL = LIBEXEC_REL / "fiotray" / "helper" / "fiotray_helper.py"
# Packages whose __init__.py is installed empty: the app's own fiotray/__init__.py is not
# for root to run, and the helper needs none of it.
MARKER_RELS = (LIBEXEC_REL / "fiotray" / "__init__.py", MODULE_REL.with_name("__init__.py"))
# The layout before fiotray.wg existed: one module beside the launcher. Removed by both
# install (an upgrade) and uninstall.
OLD_MODULE_REL = LIBEXEC_REL / "fiotray_helper.py"
LAUNCHER = b"""#!/usr/bin/python3 -IS
# fiotray's privileged helper, run as root through pkexec (see fiotray/helper/fiotray_helper.py).
import os
import sys

# -I and -S leave only the standard library on sys.path; the one directory added is this
# root-owned one, which holds fiotray.helper and fiotray.wg.
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
# Root never writes a compiled cache next to a module: one for another Python version
# would be a file no package owns (the shipped caches are the 3.11 ones).
sys.dont_write_bytecode = True
from fiotray.helper import fiotray_helper  # noqa: E402

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


def module_files() -> list[tuple[Path, bytes]]:
    """(path relative to the root, content) of every module the helper runs, in path order."""
    files = [(rel, b"") for rel in MARKER_RELS]
    files.append((MODULE_REL, HELPER_SOURCE.read_bytes()))
    wg_rel = LIBEXEC_REL / "fiotray" / "wg"
    files += [(wg_rel / src.name, src.read_bytes()) for src in WG_SOURCE.glob("*.py")]
    return sorted(files)


def _root_dir(path: Path, chown: Callable[[Path, int, int], None]) -> None:
    """A directory only root may write to: the helper's code is run from it as root."""
    if path.is_symlink():
        raise InstallError(f"{path} is a symlink: refusing to install the helper through it")
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    chown(path, 0, 0)
    path.chmod(0o755)


def _install_modules(
    prefix_root: Path, helper_dest: Path, chown: Callable[[Path, int, int], None]
) -> list[Path]:
    """The launcher for the system's python3 and the module tree beside it; the paths."""
    done: list[Path] = []
    # The modules before the launcher: a launcher never runs without its code.
    for rel, data in module_files():
        module_dest = prefix_root / rel
        for directory in reversed(module_dest.relative_to(helper_dest.parent).parents[:-1]):
            _root_dir(helper_dest.parent / directory, chown)
        _put(data, module_dest, 0o644, chown)
        cache = Path(importlib.util.cache_from_source(str(module_dest)))
        _root_dir(cache.parent, chown)
        py_compile.compile(str(module_dest), cfile=str(cache), doraise=True)
        chown(cache, 0, 0)
        cache.chmod(0o644)
        done += [module_dest, cache]
    _put(LAUNCHER, helper_dest, 0o755, chown)
    return [helper_dest, *done]


def _install_bundle(
    bundle: Path, helper_dest: Path, chown: Callable[[Path, int, int], None]
) -> list[Path]:
    """Copy a one-folder helper bundle (its executable is named as HELPER_REL) beside
    helper_dest: files 0644, executables 0755, directories 0755, all root's; the paths.

    Its own files first and the executable last: it never runs without its runtime. No
    symlinks: every file root runs is one the package manager owns and checks.
    """
    executable = bundle / helper_dest.name
    if not executable.is_file():
        raise InstallError(f"{executable} not found: build packaging/fiotray-helper.spec first")
    done: list[Path] = []
    for src in sorted(bundle.rglob("*")):
        rel = src.relative_to(bundle)
        dest = helper_dest.parent / rel
        if src.is_symlink():
            raise InstallError(f"{src} is a symlink: the helper's bundle must hold plain files")
        if src.is_dir():
            _root_dir(dest, chown)
        elif src != executable:
            _put(src.read_bytes(), dest, 0o755 if src.stat().st_mode & 0o111 else 0o644, chown)
            done.append(dest)
    _put(executable.read_bytes(), helper_dest, 0o755, chown)
    return [helper_dest, *done]


def install(
    prefix_root: Path = Path("/"),
    *,
    group_rule: bool = False,
    package: bool = False,
    helper_bundle: Path | None = None,
) -> list[Path]:
    """Copy helper, policy and (optionally) the group rule under prefix_root; the paths.

    package: stage a package's tree instead (no root needed: the package manager owns
    and chowns the files), with the group rule in GROUP_RULE_SHARE_REL.
    helper_bundle: the helper as a one-folder PyInstaller bundle (packaging/
    fiotray-helper.spec) instead of the launcher for the system's python3 and the modules.
    """
    if not package:
        _require_root()
    chown = _no_chown if package else os.chown
    policy = _source(POLICY_NAME)
    rule = _source(GROUP_RULE_NAME) if group_rule else None
    for source in (HELPER_SOURCE, WG_SOURCE / "__init__.py"):
        if not source.is_file():
            raise InstallError(f"{source} not found")
    helper_dest = prefix_root / HELPER_REL
    _root_dir(helper_dest.parent, chown)
    done: list[Path] = []
    if helper_bundle is not None:
        done += _install_bundle(helper_bundle, helper_dest, chown)
    else:
        done += _install_modules(prefix_root, helper_dest, chown)
    _remove_old_layout(prefix_root)
    policy_dest = prefix_root / POLICY_REL
    _put(policy.read_bytes(), policy_dest, 0o644, chown)
    done.append(policy_dest)
    if rule is not None:
        rule_dest = prefix_root / (GROUP_RULE_SHARE_REL if package else GROUP_RULE_REL)
        _put(rule.read_bytes(), rule_dest, 0o644, chown)
        done.append(rule_dest)
    return done


def _unlink(path: Path, removed: list[Path]) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        removed.append(path)


def _remove_old_layout(prefix_root: Path) -> list[Path]:
    removed: list[Path] = []
    old = prefix_root / OLD_MODULE_REL
    for cache in sorted(old.parent.glob("__pycache__/fiotray_helper.*.pyc")):
        _unlink(cache, removed)
    _unlink(old, removed)
    with contextlib.suppress(OSError):
        (old.parent / "__pycache__").rmdir()  # only when empty
    return removed


def uninstall(prefix_root: Path = Path("/")) -> list[Path]:
    """Remove what install() may have put there; the paths actually removed."""
    _require_root()
    removed: list[Path] = []
    for path in (prefix_root / GROUP_RULE_REL, prefix_root / POLICY_REL):
        _unlink(path, removed)
    _unlink(prefix_root / HELPER_REL, removed)  # the launcher first: nothing runs half a tree
    # Every module and cache in the helper's package tree, not just today's list: an older
    # install may have had a module this checkout no longer has.
    tree = prefix_root / LIBEXEC_REL / "fiotray"
    packages = [tree / "wg", tree / "helper", tree]
    for package in packages:
        for path in sorted(package.glob("__pycache__/*.pyc")) + sorted(package.glob("*.py")):
            if path.is_file() and not path.is_symlink():
                _unlink(path, removed)
        for directory in (package / "__pycache__", package):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty
    removed += _remove_old_layout(prefix_root)
    with contextlib.suppress(OSError):
        (prefix_root / LIBEXEC_REL).rmdir()  # only when empty
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
    parser.add_argument(
        "--helper-bundle",
        type=Path,
        metavar="DIR",
        help="install the helper from this PyInstaller bundle (packaging/fiotray-helper.spec) "
        "rather than as modules for the system's python3",
    )
    args = parser.parse_args(argv)
    try:
        if args.uninstall:
            paths = uninstall(args.root)
            verb = "removed"
        else:
            paths = install(
                args.root,
                group_rule=args.group_rule,
                package=args.package,
                helper_bundle=args.helper_bundle,
            )
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
