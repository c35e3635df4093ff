"""`fiotray-server`: the command line of the factory's VPN server daemon.

The global options are upstream `factory-wireguard.py`'s, so an admin migrates by
changing the unit's `ExecStart`. `enable` and `daemon` are upstream's;
`peers`, `status` and `login` are fiotray-server's own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fiotray import __version__
from fiotray.core.errors import FiotrayError
from fiotray.core.factories import DEFAULT_API_URL
from fiotray.core.tunnels import interface_for_factory

STATE_DIR = Path("/var/lib/fiotray-server")

log = logging.getLogger("fiotray-server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fiotray-server",
        description="The factory's WireGuard VPN server: devices and engineers' laptops as "
        "peers, changed one peer at a time.",
    )
    parser.add_argument("--version", action="version", version=f"fiotray-server {__version__}")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--apitoken", "-t", help="API token (as upstream)")
    auth.add_argument("--oauthcreds", "-a", metavar="FILE", help="OAuth2 creds file (as upstream)")
    parser.add_argument("--factory", "-f", help="the factory")
    parser.add_argument(
        "--intf-name", "-n", help="WireGuard interface (default fio<factory>, as upstream)"
    )
    parser.add_argument("--privatekey", "-k", metavar="FILE", help="the server's private key")
    parser.add_argument("--no-sysctl", action="store_true", help="leave ip_forward alone")
    parser.add_argument(
        "--oauth-url",
        default="https://app.foundries.io/oauth",
        help="where --oauthcreds tokens are refreshed (https://app.foundries.io/oauth)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help=f"where engineers are kept ({STATE_DIR})"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    peers = sub.add_parser("peers", help="engineers' laptops admitted as peers")
    psub = peers.add_subparsers(dest="peers_command", metavar="ACTION", required=True)
    p = psub.add_parser("list", help="the engineers and their addresses")
    p.add_argument("--json", action="store_true")
    p = psub.add_parser("add", help="admit a laptop (applied at once)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("public_key", metavar="PUBKEY")
    p.add_argument("--address", help="its VPN address (default: the next free engineer address)")
    p = psub.add_parser("remove", help="revoke a laptop (applied at once)")
    p.add_argument("name", metavar="NAME")

    p = sub.add_parser("status", help="every peer: handshake age, bytes")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "login",
        help="authorize this server (as upstream: visit a link, paste the code) into "
        "the --oauthcreds file",
    )

    p = sub.add_parser(
        "enable",
        help="register this server in the factory's config (as upstream); makes the "
        "--privatekey file when there is none",
    )
    p.add_argument("--port", "-p", type=int, default=5555, help="UDP port devices use (5555)")
    p.add_argument(
        "--endpoint", "-e", help="the address devices reach (default: ask api.ipify.org)"
    )
    p.add_argument("--vpnaddr", "-v", default="10.42.42.1", help="the server's VPN address")
    p.add_argument(
        "--no-check-ip", action="store_true", help="do not check the port and address are free"
    )
    _api_options(p)

    p = sub.add_parser("daemon", help="keep the peers in step with the factory (as upstream)")
    p.add_argument(
        "--interval", "-i", type=float, default=300.0, help="seconds between syncs (300)"
    )
    _api_options(p)
    p.add_argument(
        "--self-service",
        action="store_true",
        help="admit the laptops that ask through the factory's config "
        "(`fiotray tunnels add-foundries --request-access`); off by default",
    )
    p.add_argument(
        "--forward",
        action="store_true",
        help="forward and masquerade engineers' traffic to devices through the interface "
        "(the direct SSH route); removed on exit",
    )
    p.add_argument(
        "--hosts-file",
        type=Path,
        default=Path("/etc/hosts"),
        help="where the factory's host names go (/etc/hosts, as upstream)",
    )
    return parser


def _api_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-url", default=DEFAULT_API_URL, help=f"the API ({DEFAULT_API_URL})")
    p.add_argument(
        "--apitoken-file",
        type=Path,
        metavar="FILE",
        help="read the API token from FILE (root-only) instead of the command line",
    )


def interface_name(args: argparse.Namespace) -> str:
    if args.intf_name:
        return str(args.intf_name)
    if not args.factory:
        raise FiotrayError("Name the factory (--factory) or the interface (--intf-name).")
    return interface_for_factory(args.factory)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    from fiotray.server import commands

    try:
        if args.command == "peers":
            return commands.peers(args, interface_name(args))
        if args.command == "daemon":
            return commands.daemon(args, interface_name(args))
        if args.command == "login":
            return commands.login(args)
        if args.command == "enable":
            return commands.enable(args, interface_name(args))
        return commands.status(args, interface_name(args))
    except FiotrayError as exc:
        print(f"fiotray-server: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
