"""The command line's entry point: the parser (with a fast path for the tray app's own
command lines), running one command, and its exit code.

Text or JSON on stdout, exit code 0 on success; on failure one line on stderr and a
non-zero exit code. `fiotray.cli.output.EXIT_CODES` is the list of codes and their
meanings (1 a failure, 2 a usage error, 3 sign in again, ...), from which `fiotray --help`,
each command's --help and the man page are written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from fiotray import __version__

if TYPE_CHECKING:
    from fiotray.cli.output import Context
from fiotray.core.errors import AuthError, FiotrayError

# A launch without a command starts the tray app, which must appear fast: the core's
# heavier modules (httpx, keyring, asyncio, the devices and sign-in code) are imported
# by the commands that use them, never here.

log = logging.getLogger("fiotray")

# Commands the demo has no use for: its factory needs no sign-in.
NOT_IN_DEMO = ("login", "logout")

# Commands that only talk to the API, and the most they may take whatever the server does.
# Each request has a deadline and each listing its own (core/api.py); this is the net
# over a command's several requests and retries. `ssh`, `login` and the tunnel commands
# wait for a person (a session, a prompt, a password) and have none.
API_COMMANDS = frozenset({"devices", "enable", "disable", "device-vpn", "ssh-config", "favourite"})
COMMAND_DEADLINE = 600.0
# `fiotray forward`'s actions; any other word after it is a device (`forward start`).
FORWARD_ACTIONS = ("start", "list", "stop", "restore")


def cmd_default(args: argparse.Namespace) -> int:
    """No subcommand: the tray app (the demo when nothing is configured, or with --demo)."""
    no_display = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and no_display and not os.environ.get("QT_QPA_PLATFORM"):
        # Qt would abort with a platform-plugin message; say what to do instead.
        print(
            "fiotray: no graphical session (DISPLAY and WAYLAND_DISPLAY are unset): start the "
            "tray from your desktop, or use the command line (fiotray --help; "
            "fiotray --demo devices).",
            file=sys.stderr,
        )
        return 1
    # Imported here: every other command runs without Qt.
    from fiotray.gui.app import run_gui

    return run_gui(demo=args.demo, hidden=args.hidden)


# -- parser ----------------------------------------------------------------------


# The tray app's own command lines (the desktop entry's, autostart's): the top-level
# options alone answer them, as the full parser would, without building every command's
# parser first (~5 ms of a start that should take little more than a bare Qt tray app's).
TRAY_ARGS = frozenset({"--demo", "--hidden", "-v", "-vv", "--verbose"})
# --version is a top-level option too, and argparse exits as soon as it meets it: the
# answer is the same without importing every command group (~10 ms of a 50 ms run).
TOP_LEVEL_ARGS = TRAY_ARGS | {"--version"}


class Parser(argparse.ArgumentParser):
    """argparse, stricter and kinder: an option is never taken from a prefix of its name
    (`--api-token abc` is not `--api-token-stdin`), and a mistyped command or choice is
    answered with the closest ones. Subcommands' parsers are of this class too."""

    # A command's help parts, kept for the man page (set by fiotray.cli.output.command).
    examples: tuple[str, ...] = ()
    exit_codes: tuple[int, ...] = ()
    exit_note: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if found:
            choices = re.findall(r"'([^']*)'", found.group(2))
            close = difflib.get_close_matches(found.group(1), choices, n=2)
            if close:
                message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        super().error(message)


def _top_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fiotray",
        description="One-click access to FoundriesFactory devices over the factory's VPN.",
    )
    parser.add_argument("--version", action="version", version=f"fiotray {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the embedded demo factory (no account, nothing saved)",
    )
    parser.add_argument(
        "--hidden",
        action="store_true",
        help="start in the tray only, without the devices window (for autostart)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv for debug)"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    # Here, not at the top: the tray's own command lines never build the full parser.
    from fiotray.cli import accounts, devices, forward, mcp, ssh, transfer, tunnels
    from fiotray.cli.output import EXIT_CODES, exit_status, factory_option

    parser = _top_parser()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Run `fiotray COMMAND --help` for what a command does and changes, examples\n"
        "and the exit codes it may return.\n\n" + exit_status(tuple(EXIT_CODES))
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (accounts, devices, tunnels, ssh, forward, transfer, mcp):
        group.register(sub, factory_option)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, checked; exits (2) on a usage error, or after --help or --version."""
    argv = list(argv)
    if TOP_LEVEL_ARGS.issuperset(argv):
        parser = _top_parser()
        parser.set_defaults(command=None)
        return parser.parse_args(argv)
    parser = build_parser()
    split = argv.index("--") if "--" in argv else len(argv)
    if "--demo" in argv[1:split]:
        # `fiotray devices --demo` means what `fiotray --demo devices` does.
        argv.remove("--demo")
        argv.insert(0, "--demo")
    words = [a for a in argv[:split] if not a.startswith("-")]
    if words[:1] == ["forward"]:
        # `fiotray forward DEVICE PORT` is short for `fiotray forward start DEVICE PORT`.
        at = argv.index("forward") + 1
        if at < len(argv) and argv[at] not in (*FORWARD_ACTIONS, "-h", "--help"):
            argv.insert(at, "start")
    if words[:1] == ["ssh"]:
        # `fiotray ssh DEV [opts] -- CMD...`: what follows `--` runs on the device.
        args = parser.parse_args(argv[:split])
        args.remote = argv[split + 1 :]
    else:
        args = parser.parse_args(argv)
    if args.command == "login" and args.client_id and not args.client_secret_stdin:
        parser.error(
            "--client-id needs --client-secret-stdin (secrets never go on the command line)"
        )
    if args.command == "mcp" and args.devices and not args.allow_commands:
        parser.error("mcp: --devices limits --allow-commands; give both")
    if args.command in ("enable", "disable") and not (
        args.device or args.tag or args.group or args.target
    ):
        parser.error(
            f"{args.command}: name a device, or pick devices with --tag, --group or --target"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command is None:
        return cmd_default(args)
    return run_command(args)


def _report_orphans(services: Any) -> None:
    """One line on stderr when the keyring holds secrets whose factory or tunnel is gone
    (no keyring call: the index of entries is read)."""
    from fiotray.core.secrets import owner_of
    from fiotray.ops import accounts

    try:
        orphans = accounts.orphan_secrets(services)
    except FiotrayError:
        return  # the command itself will say what is wrong with the files
    if not orphans:
        return
    fixes = sorted(
        {
            f"fiotray logout --factory {name}"
            if kind == "factory"
            else f"fiotray tunnels remove {name}"
            for kind, name in filter(None, map(owner_of, orphans))
        }
    )
    print(
        f"fiotray: {len(orphans)} secret(s) in the keyring belong to no factory or tunnel "
        f"any more; remove them with: {'; '.join(fixes)}",
        file=sys.stderr,
    )


def run_command(args: argparse.Namespace) -> int:
    """A subcommand on its own event loop; its exit code."""
    import asyncio

    func: Callable[[argparse.Namespace, Context], Coroutine[Any, Any, int]] = args.func

    async def run() -> int:
        from fiotray.cli.output import Context
        from fiotray.core.services import demo_services, user_services

        if args.demo and args.command in NOT_IN_DEMO:
            raise FiotrayError("The demo factory needs no sign-in.")
        services = demo_services() if args.demo else user_services()
        if not args.demo and args.command not in ("logout", "tunnels", "profiles"):
            _report_orphans(services)
        deadline = asyncio.timeout(COMMAND_DEADLINE if args.command in API_COMMANDS else None)
        try:
            async with deadline:
                return await func(args, Context(services))
        except TimeoutError:
            if not deadline.expired():
                raise
            raise FiotrayError(
                f"fiotray {args.command} did not finish within {COMMAND_DEADLINE:g} s; giving up."
            ) from None
        finally:
            await services.aclose()

    try:
        return asyncio.run(run())
    except AuthError as exc:
        print(f"fiotray: {exc}", file=sys.stderr)
        return 3
    except FiotrayError as exc:
        print(f"fiotray: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fiotray: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `fiotray devices | head`: the reader left; that is not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
