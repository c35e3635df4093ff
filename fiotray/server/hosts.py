"""The factory's block in the server's /etc/hosts, as upstream writes it (same markers),
so `ssh fio@<device>` works on the server itself; engineers are listed too."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fiotray.core.devices import validate_device_name
from fiotray.core.errors import FiotrayError
from fiotray.core.files import write_atomic


def markers(factory: str) -> tuple[str, str]:
    return f"## Factory({factory}) VPN Lookups", f"## END Factory({factory}) VPN Lookups"


def render(text: str, factory: str, entries: Iterable[tuple[str, str]]) -> str:
    """`text` with the factory's block replaced (or added at the end) by `entries`
    ((address, name)); names that are no safe host name are left out."""
    start, end = markers(factory)
    block = [start]
    for address, name in entries:
        try:
            validate_device_name(name)
        except FiotrayError:
            continue
        block.append(f"{address}\t{name}")
    block.append(end)
    lines = text.splitlines()
    if start in lines and end in lines[lines.index(start) :]:
        first = lines.index(start)
        last = lines.index(end, first)
        lines[first : last + 1] = block
    else:
        lines += block
    return "\n".join(lines) + "\n"


def update(path: Path, factory: str, entries: Iterable[tuple[str, str]]) -> bool:
    """Rewrite the block in one step (readers see the old file or the new one); the file
    keeps its mode. False when nothing changed."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = render(old, factory, entries)
    if new == old:
        return False
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    try:
        write_atomic(path, new, mode=mode, own_dir=False)
    except FiotrayError:
        if not path.exists():
            raise
        # A file mounted over /etc/hosts (Docker, `ip netns exec`) cannot be replaced by a
        # rename (EBUSY): rewrite it in place, as upstream always does.
        try:
            with path.open("r+", encoding="utf-8") as fh:
                fh.write(new)
                fh.truncate()
        except OSError as exc:
            raise FiotrayError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return True
