"""Writing small files atomically (fiotray's own private ones, and the server's /etc/hosts),
and the per-user runtime directory where a running fiotray leaves its socket."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from fiotray.core.errors import FiotrayError


def write_private(
    path: Path, text: str, *, error: type[FiotrayError] = FiotrayError, own_dir: bool = True
) -> None:
    """`write_atomic` for a file only its owner may read (0600)."""
    write_atomic(path, text, mode=0o600, error=error, own_dir=own_dir)


def write_atomic(
    path: Path,
    text: str,
    *,
    mode: int,
    error: type[FiotrayError] = FiotrayError,
    own_dir: bool = True,
) -> None:
    """Replace `path` with `text` in one step (file `mode`, directory 0700) or raise `error`.

    `own_dir`: the directory is fiotray's own (~/.config/fiotray ...), so a too-open mode
    is tightened. For a place the user chose (it may be $HOME or /tmp) pass False: its
    mode is theirs; a directory created here is 0700 either way.

    A reader sees the old file or the new one, never half of one; a failure
    leaves the old file as it was.
    """
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if own_dir:
            # mkdir's mode does not apply to a directory that already existed.
            os.chmod(directory, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise error(f"Cannot write {path}: {exc.strerror or exc}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode != 0o600:  # mkstemp made it 0600
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(f"Cannot write {path}: {exc.strerror or exc}.") from None


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, else a private dir of ours in the temp dir (never someone else's)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg)
    return private_dir(Path(tempfile.gettempdir()) / f"fiotray-{os.getuid()}")


def private_dir(path: Path) -> Path:
    """`path` as a directory only this user may enter (made 0700 if missing), or raise.

    For a shared place such as the temp dir: a directory someone else made there, a
    symlink, or one open to others is refused, never used or "fixed".
    """
    try:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        st = path.lstat()
    except OSError as exc:
        raise FiotrayError(f"Cannot use {path}: {exc.strerror or exc}.") from None
    if st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o077:
        raise FiotrayError(f"{path} is not a private directory of this user; remove it.")
    return path
