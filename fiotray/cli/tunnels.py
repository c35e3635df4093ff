"""tunnels (list, import, add-foundries, ssh, default, remove; `profiles` is an old alias),
connect, disconnect, status."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import Context, table, to_json

if TYPE_CHECKING:
    from fiotray.core.tunnelstate import TunnelStatus

# How long `connect` waits for the first handshake before it reports (ops.tunnels has
# the same default; not imported here: building the parser must stay light).
CONNECT_WAIT = 10.0


def _handshake(s: TunnelStatus, now: float | None = None) -> str:
    from fiotray.core.format import since

    age = s.handshake_age(now)
    return "never" if age is None else since(age)


def _status_line(s: TunnelStatus) -> str:
    line = f"{s.tunnel} ({s.interface}): {s.state}"
    if s.latest_handshake:
        line += f", handshake {_handshake(s)}"
    if s.detail:
        line += f" — {s.detail}"
    return line


async def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core.format import safe_text
    from fiotray.ops import tunnels

    found = tunnels.list_tunnels(ctx.services)
    if args.json:
        ctx.out(
            to_json(
                [
                    {
                        "name": t.name,
                        "kind": t.kind,
                        "interface": t.interface,
                        "endpoint": t.endpoint,
                        "factory": t.factory,
                        "address": t.address,
                        "access": t.access or None,
                        "admitted": t.admitted,
                        "engineer": t.engineer or None,
                        "public_key": t.public_key,
                    }
                    for t in found
                ]
            )
        )
        return 0
    if not found:
        ctx.out(
            "No tunnel configured. Add one with `fiotray tunnels add-foundries --factory F "
            "--address IP` or `fiotray tunnels import FILE`."
        )
        return 0
    default = tunnels.default_tunnel(ctx.services)
    rows = [
        [
            "*" if default and t.name == default.name else "",
            t.name,
            t.kind,
            t.interface,
            safe_text(t.endpoint, 40),
            t.address or "",
            t.public_key,
        ]
        for t in found
    ]
    ctx.out(table(rows, ["", "NAME", "KIND", "INTERFACE", "ENDPOINT", "ADDRESS", "PUBLIC KEY"]))
    return 0


async def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from fiotray.ops import tunnels

    path = Path(args.file)
    tunnel = await tunnels.import_conf(ctx.services, path, name=args.name, interface=args.interface)
    ctx.out(
        f"Imported tunnel {tunnel.name} (interface {tunnel.interface}, endpoint "
        f"{tunnel.endpoint or 'none'}). Its private key is now in the keyring; {path} still "
        "holds it in plain text: delete that file when you no longer need it."
    )
    return 0


async def cmd_add_foundries(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import tunnels

    added = await tunnels.add_foundries(
        ctx.services,
        args.factory,
        address=args.address,
        name=args.name,
        interface=args.interface,
        request_access=args.request_access,
    )
    t = added.tunnel
    head = (
        f"Added tunnel {t.name} for factory {t.factory}: interface {t.interface}, "
        f"address {t.address}, server {t.endpoint}.\n"
        f"Public key: {t.public_key}\n\n"
    )
    if added.requested:
        ctx.out(
            head + f"Access requested as {t.engineer}: a fiotray-server running with "
            "--self-service admits this laptop at its next sync (every 5 minutes by "
            "default). Any other server needs its admin to run:\n\n"
            f"  {added.server_admin_line}\n\n"
            f"Then: fiotray connect {t.name}"
        )
        return 0
    ctx.out(
        head + "The factory's VPN server must admit this laptop as a peer. With "
        "fiotray-server on the server, its admin runs (the peer is then kept for good):\n\n"
        f"  {added.server_admin_line}\n\n"
        "With Foundries' factory-wireguard-server, the admin runs:\n\n"
        f"  {added.admin_line}\n\n"
        "(that daemon rewrites its peers at every device change, dropping this one: the admin "
        "must also keep it in its configuration.) Or, where the server runs fiotray-server "
        "--self-service, add the tunnel again with --request-access. Then: fiotray connect "
        f"{t.name}"
    )
    return 0


async def cmd_ssh(args: argparse.Namespace, ctx: Context) -> int:
    import dataclasses

    from fiotray.ops import ssh

    changes = {
        k: getattr(args, k)
        for k in ("user", "route", "jump_user", "jump_host", "identity_file")
        if getattr(args, k) is not None
    }
    if args.option is not None:
        changes["extra_options"] = tuple(args.option)
    settings = ssh.configure_tunnel(ctx.services, args.name, changes)
    ctx.out("\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(settings).items()))
    return 0


async def cmd_default(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import tunnels

    if args.name is None:
        tunnel = tunnels.default_tunnel(ctx.services)
        ctx.out(tunnel.name if tunnel else "No tunnel configured.")
        return 0
    tunnels.set_default(ctx.services, args.name)
    ctx.out(f"{args.name} is now the default tunnel.")
    return 0


async def cmd_remove(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import accounts, tunnels

    # No tunnel by that name, but perhaps a key a crash left behind for it.
    known = {t.name for t in tunnels.list_tunnels(ctx.services)}
    if args.name not in known and await accounts.forget_orphans(ctx.services, tunnel=args.name):
        ctx.out(f"Removed the private key of {args.name}, left without a tunnel.")
        return 0
    tunnel = await tunnels.remove(ctx.services, args.name)
    ctx.out(f"Removed tunnel {tunnel.name} and its private key.")
    if tunnel.access == "request":
        ctx.out("Its access request is withdrawn: the server drops the peer at its next sync.")
    return 0


async def cmd_connect(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core.tunnelstate import State
    from fiotray.ops import tunnels

    status = await tunnels.connect(ctx.services, args.tunnel, wait=args.wait)
    if args.json:
        ctx.out(to_json(status.to_json()))
    else:
        ctx.out(_status_line(status))
        if status.state is State.WAITING and args.wait:
            ctx.out(
                "The server has not admitted this laptop yet; the tunnel stays up and "
                "connects once it does. Check with `fiotray status`."
            )
        elif status.state is not State.CONNECTED and args.wait:
            ctx.out(
                f"No handshake with the server within {args.wait:g} s; the tunnel stays up. "
                "Check with `fiotray status`."
            )
    # 4: up, but nothing proves the server answers (scripts can tell this from a failure).
    return 0 if status.state is State.CONNECTED or not args.wait else 4


async def cmd_disconnect(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import tunnels

    ctx.out(_status_line(await tunnels.disconnect(ctx.services, args.tunnel)))
    return 0


async def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    import time

    from fiotray.core.format import size
    from fiotray.core.tunnelstate import State
    from fiotray.ops import tunnels

    statuses = await tunnels.status(ctx.services)
    now = time.time()
    if args.json:
        ctx.out(to_json([s.to_json(now) for s in statuses]))
        return 0
    if not statuses:
        ctx.out("No tunnel configured.")
        return 0
    rows = [
        [
            s.tunnel,
            s.interface,
            str(s.state),
            s.endpoint or "-",
            _handshake(s, now) if s.state is not State.DISCONNECTED else "-",
            size(s.rx_bytes),
            size(s.tx_bytes),
        ]
        for s in statuses
    ]
    ctx.out(table(rows, ["TUNNEL", "INTERFACE", "STATE", "ENDPOINT", "HANDSHAKE", "IN", "OUT"]))
    for s in statuses:
        if s.detail:
            ctx.out(f"{s.tunnel}: {s.detail}")
    return 0


def register(sub: Any, factory_option: Any) -> None:
    group = sub.add_parser(
        "tunnels",
        aliases=["profiles"],
        help="tunnels (to a factory's VPN server, or plain WireGuard)",
    )
    tsub = group.add_subparsers(dest="tunnels_command", metavar="ACTION", required=True)
    p = tsub.add_parser("list", help="list tunnels")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = tsub.add_parser(
        "import", help="import a wg-quick .conf (its private key moves to the keyring)"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help="tunnel name (default: from the file name)")
    p.add_argument("--interface", help="network interface name (default: the tunnel name)")
    p.set_defaults(func=cmd_import)
    p = tsub.add_parser(
        "add-foundries", help="a tunnel to the factory's VPN server with a key made here"
    )
    factory_option(p)
    p.add_argument(
        "--address",
        help="this laptop's VPN address (default: the first free one above every address "
        "fioctl can hand to a device)",
    )
    p.add_argument("--name", help="tunnel name (default: the factory)")
    p.add_argument("--interface", help="network interface name (default: fio<factory>)")
    p.add_argument(
        "--request-access",
        action="store_true",
        help="publish this laptop's public key in the factory's config, where a "
        "self-service fiotray-server admits it with no admin step",
    )
    p.set_defaults(func=cmd_add_foundries)
    p = tsub.add_parser("ssh", help="show or change how SSH reaches this tunnel's devices")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--user", help="login on the devices (default fio)")
    p.add_argument("--route", choices=("jump", "direct", "public"), help="default route")
    p.add_argument("--jump-user", help="login on the VPN server (default fio)")
    p.add_argument(
        "--jump-host",
        help="jump host: HOST or HOST:PORT (the public route's "
        "server SSH; for jump, default the server's VPN address)",
    )
    p.add_argument("--identity-file", help="SSH private key file to use")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="an extra ssh -o option (allow-listed), repeatable",
    )
    p.set_defaults(func=cmd_ssh)
    p = tsub.add_parser("default", help="show the default tunnel, or make NAME the default")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.set_defaults(func=cmd_default)
    p = tsub.add_parser("remove", help="remove a tunnel and its private key")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("connect", help="bring a tunnel up (through the privileged helper)")
    p.add_argument("tunnel", nargs="?", metavar="TUNNEL")
    p.add_argument(
        "--wait",
        type=float,
        default=CONNECT_WAIT,
        metavar="SECONDS",
        help=f"wait this long for the first handshake (default {CONNECT_WAIT:g}; 0: do not wait)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connect)
    p = sub.add_parser("disconnect", help="take a tunnel down")
    p.add_argument("tunnel", nargs="?", metavar="TUNNEL")
    p.set_defaults(func=cmd_disconnect)
    p = sub.add_parser("status", help="state of every tunnel: handshake, bytes in/out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
