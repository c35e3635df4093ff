"""What the commands share: the command context, tables, secrets from stdin, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fiotray.core.errors import FiotrayError

if TYPE_CHECKING:
    from fiotray.core.services import Services


@dataclass
class Context:
    """What a command works with: the services (the user's or the demo's) and stdout."""

    services: Services
    out: Callable[..., None] = print


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def read_secret(prompt: str) -> str:
    """One secret line from stdin (piped) or a no-echo prompt (terminal); never argv."""
    import getpass

    if sys.stdin is None:
        raise FiotrayError("No standard input to read the secret from.")
    value = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
    value = value.strip()
    if not value:
        raise FiotrayError("No secret was given on standard input.")
    if any(not ch.isprintable() for ch in value):
        raise FiotrayError("The secret on standard input contains control characters.")
    return value


def factory_option(p: Any) -> None:
    p.add_argument("--factory", "-f", help="factory; default: the only or default one")
