"""One JSON file of fiotray's own: read it, or change it under a lock.

The tray, the windows and any number of CLI commands may change the same file at
once. Each change rereads the file, applies the caller's function and replaces the
file atomically, all while holding an exclusive lock on a sibling lock file, so no
writer's change is lost to another's stale copy. Readers take no lock: a replace is
atomic, so they see the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from fiotray.core.errors import FiotrayError
from fiotray.core.files import write_private

try:
    import fcntl
except ImportError:  # Windows: no flock; changes there are unlocked, as they always were.
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")

# A change takes milliseconds; a lock held this long belongs to a stuck process.
LOCK_TIMEOUT = 10.0
_POLL = 0.02


class JsonFile(Generic[T]):
    """A JSON file parsed into a T.

    `parse` turns the decoded JSON into a T, raising the owner's error for content it
    refuses; `dump` turns a T back into JSON data. `invalid(reason)` is called when the
    file is not JSON at all: it raises the owner's error, or returns what to use instead
    (for a file that is only a convenience). A file that cannot be read raises `error`.
    """

    def __init__(
        self,
        path: Path,
        *,
        parse: Callable[[Any], T],
        dump: Callable[[T], Any],
        default: Callable[[], T],
        invalid: Callable[[str], T],
        error: type[FiotrayError] = FiotrayError,
        timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.path = path
        self.lock_path = path.with_name(f".{path.name}.lock")
        self._parse = parse
        self._dump = dump
        self._default = default
        self._invalid = invalid
        self._error = error
        self.timeout = timeout

    def read(self) -> T:
        """The file's content; `default()` when there is no file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._default()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
            raise self._error(f"Cannot read {self.path}: {reason}.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._invalid(f"it is not valid JSON (line {exc.lineno})")
        return self._parse(data)

    def update(self, change: Callable[[T], T]) -> T:
        """Apply `change` to the current content and save the result; return it.

        `change` may raise to leave the file as it is. It runs under the lock: keep it
        quick, and do not change this file (or wait for another process) inside it.
        """
        with self._locked():
            new = change(self.read())
            text = json.dumps(self._dump(new), indent=2) + "\n"
            write_private(self.path, text, error=self._error)
        return new

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._error(f"Cannot lock {self.path}: {exc.strerror or exc}.") from None
        try:
            self._acquire(fd)
            yield
        finally:
            # Closing the descriptor releases the lock, also when the change failed.
            os.close(fd)

    def _acquire(self, fd: int) -> None:
        # LOCK_NB and a short sleep rather than a blocking flock: a process stopped
        # while holding the lock must end in an error, not a frozen tray.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                raise self._error(f"Cannot lock {self.path}: {exc.strerror or exc}.") from None
            if time.monotonic() >= deadline:
                raise self._error(
                    f"{self.path} has been locked by another fiotray process for over "
                    f"{self.timeout:.0f} s; nothing was changed. Close other fiotray "
                    "windows or commands and try again."
                )
            time.sleep(_POLL)
