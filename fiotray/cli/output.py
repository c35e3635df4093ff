"""What the commands share: the command context, tables, secrets from stdin, JSON, and
the help texts' parts: the exit codes and a command's description, examples and exit status."""

from __future__ import annotations

import argparse
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


# -- help ------------------------------------------------------------------------

# Every exit code of `fiotray COMMAND`, and what it means: the one list that the help
# texts (`fiotray --help`, each command's "exit status:") and the man page are made from.
# Each line of a command's help is "  CODE  MEANING": keep a meaning under 70 columns.
# core.ssh.ROUTES, written out: importing core.ssh would load asyncio, ssl and more while
# the parser is built (tests/unit/test_cli_help.py checks the two agree).
ROUTES = ("jump", "direct", "public")

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "failure; one line on standard error says what went wrong",
    2: "usage error (a wrong command, option or argument); nothing was done",
    3: "sign in again: the factory's credentials are missing or refused",
    4: "--wait ran out before it took effect (no handshake; not applied; no answer)",
    130: "interrupted (Ctrl-C)",
    141: "standard output was closed early (`fiotray devices | head`)",
}
# What any command may return, whatever it does: listed by `fiotray --help` and the man
# page, not repeated in each command's help.
ANY_COMMAND_EXIT = (130, 141)


def exit_status(codes: tuple[int, ...], note: str = "") -> str:
    """The "exit status:" block of a help text: `codes` with their meanings, then `note`."""
    width = max(len(str(c)) for c in codes)
    lines = [f"  {c:<{width}}  {EXIT_CODES[c]}" for c in codes]
    return "\n".join(["exit status:", *lines, *([f"  {note}"] if note else [])])


def command(
    sub: Any,
    name: str,
    *,
    help: str,
    description: str,
    examples: tuple[str, ...],
    codes: tuple[int, ...],
    exit_note: str = "",
    formatter_class: type[argparse.HelpFormatter] = argparse.RawDescriptionHelpFormatter,
    **kwargs: Any,
) -> Any:
    """A subcommand's parser, with its one-line `help` (for the list of commands) and its
    own --help: the `description` (hand-wrapped; shown as written), "examples:" (command
    lines, each parsed by the tests) and "exit status:" (only the `codes` it can return).
    The parser keeps `examples`, `exit_codes` and `exit_note` for the man page."""
    epilog = "\n".join(["examples:", *(f"  {e}" for e in examples)])
    epilog += "\n\n" + exit_status(codes, exit_note)
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=formatter_class,
        **kwargs,
    )
    parser.examples = examples
    parser.exit_codes = codes
    parser.exit_note = exit_note
    return parser
