"""login, logout, factories."""

from __future__ import annotations

import argparse
from typing import Any

from fiotray.cli.output import Context, command, read_secret, table, to_json
from fiotray.core.errors import FiotrayError


class _LoginHelp(argparse.RawDescriptionHelpFormatter):
    """Fills in the default OAuth2 URL when the help is shown (the factories module that
    holds it is not loaded just to build the parser)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{default_oauth_url}" in text:
            from fiotray.core.factories import DEFAULT_OAUTH_URL

            text = text.replace("{default_oauth_url}", DEFAULT_OAUTH_URL)
        return text


async def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from fiotray.ops import accounts

    common: dict[str, Any] = {"make_default": args.default, "api_url": args.api_url}
    if args.from_fioctl is not None:
        path = Path(args.from_fioctl) if args.from_fioctl else None
        factory = await accounts.sign_in_fioctl(
            ctx.services, path=path, factory=args.factory, **common
        )
    elif args.api_token_stdin:
        if not args.factory:
            raise FiotrayError("--factory is required with an API token.")
        factory = await accounts.sign_in_token(
            ctx.services,
            factory=args.factory,
            token=read_secret("API token: "),
            oauth_url=args.oauth_url,
            **common,
        )
    else:
        factory = await accounts.sign_in_client(
            ctx.services,
            client_id=args.client_id,
            client_secret=read_secret("Client secret: "),
            factory=args.factory,
            oauth_url=args.oauth_url,
            **common,
        )
    kind = "API token" if factory.auth == "token" else "OAuth2"
    ctx.out(f"Signed in to factory {factory.factory} ({kind}).")
    return 0


async def cmd_logout(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import accounts

    if args.factory and args.factory not in {f.factory for f in accounts.factories(ctx.services)}:
        # No sign-in by that name, but perhaps secrets a crash left behind for it.
        gone = await accounts.forget_orphans(ctx.services, factory=args.factory)
        if gone:
            ctx.out(f"Removed {len(gone)} secret(s) of {args.factory} left without a sign-in.")
            return 0
    factory = await accounts.sign_out(ctx.services, args.factory)
    ctx.out(f"Signed out of factory {factory.factory}; its secrets were removed from the keyring.")
    return 0


async def cmd_factories(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import accounts

    factories = accounts.factories(ctx.services)
    if args.json:
        ctx.out(to_json([f.to_json() for f in factories]))
        return 0
    if not factories:
        ctx.out("No factory configured. Sign in with `fiotray login --factory F ...`.")
        return 0
    rows = [["*" if f.default else "", f.factory, f.auth, f.api_url] for f in factories]
    ctx.out(table(rows, ["", "FACTORY", "AUTH", "API"]))
    return 0


def register(sub: Any, factory_option: Any) -> None:
    p = command(
        sub,
        "login",
        help="sign in to a factory (secrets go to the OS keyring)",
        description=(
            "Sign in to a factory with an API token, OAuth2 application credentials (as\n"
            "`fioctl login` uses) or the ones fioctl keeps in ~/.config/fioctl.yaml. The\n"
            "credentials are tried on the factory first; then the factory is saved in\n"
            "~/.config/fiotray/profiles.json and its secrets in the OS keyring, never in a\n"
            "file. Secrets are read from standard input, never from the command line."
        ),
        examples=(
            "fiotray login --factory acme --api-token-stdin < token.txt",
            "fiotray login --factory acme --client-id ID --client-secret-stdin",
            "fiotray login --from-fioctl --default",
        ),
        codes=(0, 1, 2, 3),
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

    p = command(
        sub,
        "logout",
        help="sign out and remove the factory's secrets",
        description=(
            "Sign out of a factory: its secrets (API token, client secret, OAuth2 tokens)\n"
            "are removed from the OS keyring and the factory from fiotray's config; its\n"
            "tunnels are kept. Without --factory it signs out only when one factory is\n"
            "signed in. A name with no sign-in removes the secrets a crash left for it."
        ),
        examples=("fiotray logout --factory acme", "fiotray logout"),
        codes=(0, 1, 2),
    )
    factory_option(p)
    p.set_defaults(func=cmd_logout)

    p = command(
        sub,
        "factories",
        help="list the factories signed in to",
        description=(
            "List the factories signed in to, how (API token or OAuth2) and their API URL;\n"
            "* marks the default one. Changes nothing, and makes no network or keyring call."
        ),
        examples=("fiotray factories", "fiotray factories --json"),
        codes=(0, 1, 2),
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_factories)
