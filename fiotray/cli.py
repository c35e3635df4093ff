"""fiotray's command line: every tray action, scriptable.

Text or JSON on stdout, exit code 0 on success; on failure one line on stderr
and a non-zero exit code (1 for a failure, 2 for a usage error).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fiotray import __version__, cli_tunnels
from fiotray.core.errors import AuthError, FiotrayError

# A launch without a command starts the tray app, which must appear fast: the core's
# heavier modules (httpx, keyring, asyncio, the devices and sign-in code) are imported
# by the commands that use them, never here.
if TYPE_CHECKING:
    from contextlib import AsyncExitStack
    from datetime import datetime

    from fiotray.core import devices
    from fiotray.core.api import FactoryClient
    from fiotray.core.factories import Factory, FactoryStore
    from fiotray.core.secrets import SecretStore
    from fiotray.core.tunnels import TunnelController, TunnelStore

log = logging.getLogger("fiotray")


def _tunnel_store() -> TunnelStore:
    from fiotray.core.tunnels import TunnelStore

    return TunnelStore()


@dataclass
class Context:
    """What a command works with; the demo swaps in its own factory and secrets."""

    profiles: FactoryStore
    secrets: SecretStore
    pending: devices.PendingStore
    out: Callable[..., None] = print
    demo: Any = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    tunnels: TunnelStore = field(default_factory=_tunnel_store)
    _controller: TunnelController | None = None

    def controller(self) -> TunnelController:
        if self._controller is None:
            from fiotray.core.tunnels import TunnelController

            self._controller = TunnelController(self.tunnels, self.secrets)
        return self._controller

    def profile(self, factory: str | None) -> Factory:
        if self.demo is not None:
            return self.demo.profile
        return self.profiles.get(factory)


# -- output helpers ------------------------------------------------------------


def printable(text: str, width: int | None = None) -> str:
    """Text from a server, safe for a terminal: no escape sequences, no line breaks."""
    safe = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if width is not None and len(safe) > width:
        safe = safe[: width - 1] + "…"
    return safe


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


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


# -- commands --------------------------------------------------------------------


async def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from fiotray.core import signin

    common = {"make_default": args.default, "api_url": args.api_url}
    if args.from_fioctl is not None:
        path = Path(args.from_fioctl) if args.from_fioctl else None
        profile = await signin.sign_in_from_fioctl(
            ctx.profiles, ctx.secrets, path=path, factory=args.factory, **common
        )
    elif args.api_token_stdin:
        if not args.factory:
            raise FiotrayError("--factory is required with an API token.")
        profile = await signin.sign_in_api_token(
            ctx.profiles,
            ctx.secrets,
            factory=args.factory,
            token=read_secret("API token: "),
            oauth_url=args.oauth_url,
            **common,
        )
    else:
        profile = await signin.sign_in_client_credentials(
            ctx.profiles,
            ctx.secrets,
            client_id=args.client_id,
            client_secret=read_secret("Client secret: "),
            factory=args.factory,
            oauth_url=args.oauth_url,
            **common,
        )
    kind = "API token" if profile.auth == "token" else "OAuth2"
    ctx.out(f"Signed in to factory {profile.factory} ({kind}).")
    return 0


async def cmd_logout(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core import signin

    profile = ctx.profile(args.factory)
    await signin.sign_out(ctx.profiles, ctx.secrets, profile.factory)
    ctx.out(f"Signed out of factory {profile.factory}; its secrets were removed from the keyring.")
    return 0


async def cmd_factories(args: argparse.Namespace, ctx: Context) -> int:
    import json

    profiles = [ctx.demo.profile] if ctx.demo else ctx.profiles.list()
    default = ctx.demo.profile.factory if ctx.demo else ctx.profiles.default_name()
    if args.json:
        ctx.out(
            json.dumps(
                [
                    {
                        "factory": p.factory,
                        "auth": p.auth,
                        "api_url": p.api_url,
                        "oauth_url": p.oauth_url,
                        "default": p.factory == default,
                    }
                    for p in profiles
                ],
                indent=2,
            )
        )
        return 0
    if not profiles:
        ctx.out("No factory configured. Sign in with `fiotray login --factory F ...`.")
        return 0
    rows = [["*" if p.factory == default else "", p.factory, p.auth, p.api_url] for p in profiles]
    ctx.out(table(rows, ["", "FACTORY", "AUTH", "API"]))
    return 0


async def _client(ctx: Context, factory: str | None, stack: AsyncExitStack) -> FactoryClient:
    from fiotray.core.session import open_factory

    profile = ctx.profile(factory)
    api = await open_factory(profile, ctx.secrets)
    return await stack.enter_async_context(api)


async def cmd_devices(args: argparse.Namespace, ctx: Context) -> int:
    import json
    from contextlib import AsyncExitStack
    from datetime import UTC, datetime

    from fiotray.core import devices

    async with AsyncExitStack() as stack:
        api = await _client(ctx, args.factory, stack)
        rows = await devices.list_rows(api, pending=ctx.pending)
    if args.search:
        rows = [r for r in rows if r.matches(args.search)]
    now = datetime.now(UTC)
    if args.json:
        # One row at a time: a 50,000-device factory need not exist twice in memory as text.
        ctx.out("[", end="")
        for i, r in enumerate(rows):
            ctx.out(("," if i else "") + "\n " + json.dumps(r.to_json(now)), end="")
        ctx.out("\n]")
        return 0
    body = []
    for r in rows:
        d = r.device
        if r.vpn_pending:
            vpn = "pending"
        elif r.vpn_enabled:
            vpn = "enabled"
        else:
            vpn = "disabled" if r.vpn_address else "-"
        body.append(
            [
                printable(d.name, 40),
                "online" if r.online(now) else "offline",
                vpn,
                printable(r.vpn_address, 15),
                printable(d.target, 30),
                printable(d.group or "", 20),
                ago(d.last_seen, now),
            ]
        )
    ctx.out(table(body, ["NAME", "STATE", "VPN", "ADDRESS", "TARGET", "GROUP", "LAST SEEN"]))
    ctx.out(f"{len(rows)} device{'s' if len(rows) != 1 else ''}")
    return 0


def _vpn_text(state: devices.VpnState) -> str:
    lines = [f"Enabled: {'true' if state.enabled else 'false'}"]
    if state.address:
        lines.append(f"Address: {state.address}")
    if state.pubkey:
        lines.append(f"Public Key: {state.pubkey}")
    lines.append(f"Pending: {'true' if state.pending else 'false'}")
    return "\n".join(lines)


async def cmd_device_vpn(args: argparse.Namespace, ctx: Context) -> int:
    import json
    from contextlib import AsyncExitStack

    from fiotray.core import devices

    devices.validate_device_name(args.device)
    async with AsyncExitStack() as stack:
        api = await _client(ctx, args.factory, stack)
        state = await devices.device_vpn(api, args.device)
    ctx.out(json.dumps(state.to_json(), indent=2) if args.json else _vpn_text(state))
    return 0


async def _set_vpn(args: argparse.Namespace, ctx: Context, enable: bool) -> int:
    import json
    from contextlib import AsyncExitStack

    from fiotray.core import devices

    devices.validate_device_name(args.device)
    async with AsyncExitStack() as stack:
        api = await _client(ctx, args.factory, stack)
        state = await devices.set_vpn(api, args.device, enable, pending=ctx.pending)
    if args.json:
        ctx.out(json.dumps(state.to_json(), indent=2))
    else:
        verb = "enabled" if enable else "disabled"
        ctx.out(
            f"VPN {verb} on {printable(state.device)} (address {state.address or 'none'}); "
            "pending until the device checks in (up to about 5 minutes)."
        )
    return 0


async def cmd_enable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, True)


async def cmd_disable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, False)


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


class _LoginHelp(argparse.HelpFormatter):
    """Fills in the default OAuth2 URL when the help is shown.

    It lives in the profiles module, which a tray start (it builds this parser too) does
    not load before its icon shows.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{default_oauth_url}" in text:
            from fiotray.core.factories import DEFAULT_OAUTH_URL

            text = text.replace("{default_oauth_url}", DEFAULT_OAUTH_URL)
        return text


# The tray app's own command lines (the desktop entry's, autostart's): the top-level
# options alone answer them, as the full parser would, without building every command's
# parser first (~5 ms of a start that should take little more than a bare Qt tray app's).
TRAY_ARGS = frozenset({"--demo", "--hidden", "-v", "-vv", "--verbose"})


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser = _top_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def factory_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--factory", "-f", help="factory (profile); default: the only or default one"
        )

    p = sub.add_parser(
        "login",
        help="sign in to a factory (secrets go to the OS keyring)",
        formatter_class=_LoginHelp,
    )
    p.add_argument("--factory", "-f", help="factory name")
    p.add_argument("--api-url", help="REST API base (default: derived from --oauth-url)")
    p.add_argument("--oauth-url", help="OAuth2 base (default {default_oauth_url})")
    p.add_argument("--default", action="store_true", help="make this the default factory")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--api-token-stdin", action="store_true", help="read an API token from standard input"
    )
    how.add_argument(
        "--client-id",
        help="OAuth2 application client id (the secret is read with --client-secret-stdin)",
    )
    how.add_argument(
        "--from-fioctl",
        nargs="?",
        const="",
        metavar="PATH",
        help="import ~/.config/fioctl.yaml (or PATH) into the keyring",
    )
    p.add_argument(
        "--client-secret-stdin",
        action="store_true",
        help="read the client secret from standard input (with --client-id)",
    )
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="sign out and remove the factory's secrets")
    factory_opt(p)
    p.set_defaults(func=cmd_logout)

    p = sub.add_parser("factories", help="list factory profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_factories)

    p = sub.add_parser("devices", help="list every device with its VPN state")
    factory_opt(p)
    p.add_argument(
        "--search",
        "-s",
        help="only devices whose name, target, group, tag, uuid or VPN address contains TEXT",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    for name, func, text in (
        ("enable", cmd_enable, "enable VPN on a device (as fioctl devices config wireguard)"),
        ("disable", cmd_disable, "disable VPN on a device, keeping its address and key"),
        ("device-vpn", cmd_device_vpn, "show a device's VPN config and whether it is pending"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("device", metavar="DEVICE")
        factory_opt(p)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    cli_tunnels.register(sub, factory_opt)
    return parser


def _start_demo(ctx: Context) -> Any:
    import tempfile
    from pathlib import Path

    from fiotray.core import devices
    from fiotray.demo.factory import start_demo

    session = start_demo()
    ctx.cleanups.append(session.close)
    ctx.secrets = session.secrets
    # Nothing of the demo may land in the user's real state dir.
    scratch = tempfile.TemporaryDirectory(prefix="fiotray-demo-")
    ctx.cleanups.append(scratch.cleanup)
    ctx.pending = devices.PendingStore(Path(scratch.name) / "pending-vpn.json")
    return session


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, checked; exits (2) on a usage error, or after --help or --version."""
    argv = list(argv)
    if TRAY_ARGS.issuperset(argv):
        parser = _top_parser()
        parser.set_defaults(command=None)
        return parser.parse_args(argv)
    parser = build_parser()
    split = argv.index("--") if "--" in argv else len(argv)
    words = [a for a in argv[:split] if not a.startswith("-")]
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


def run_command(args: argparse.Namespace) -> int:
    """A subcommand on its own event loop; its exit code."""
    import asyncio
    import os

    from fiotray.core import devices
    from fiotray.core.factories import FactoryStore
    from fiotray.core.secrets import SecretStore

    ctx = Context(profiles=FactoryStore(), secrets=SecretStore(), pending=devices.PendingStore())
    func: Callable[[argparse.Namespace, Context], Coroutine[Any, Any, int]] = args.func
    try:
        if args.demo:
            if args.command in ("login", "logout"):
                raise FiotrayError("The demo factory needs no sign-in.")
            ctx.demo = _start_demo(ctx)
        return asyncio.run(func(args, ctx))
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
    finally:
        for cleanup in ctx.cleanups:
            cleanup()
