"""tunnels (list, import, add-foundries, ssh, default, autoconnect, remove; `profiles` is
an old alias), connect, disconnect, status."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import ROUTES, Context, command, table, to_json

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


async def cmd_autoconnect(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import tunnels

    if args.state is None:
        tunnel = ctx.services.tunnels.get(args.name)
        ctx.out("on" if tunnel.autoconnect else "off")
        return 0
    tunnel = tunnels.set_autoconnect(ctx.services, args.name, args.state == "on")
    when = "connects" if args.state == "on" else "no longer connects"
    ctx.out(f"{tunnel.name} {when} when fiotray starts.")
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


TUNNEL_NAME = "the tunnel's name, as `fiotray tunnels list` shows it"


def register(sub: Any, factory_option: Any) -> None:
    group = command(
        sub,
        "tunnels",
        aliases=["profiles"],
        help="tunnels (to a factory's VPN server, or plain WireGuard)",
        description=(
            "Add, list and remove this laptop's WireGuard tunnels: to a factory's VPN\n"
            "server (add-foundries) or to any WireGuard network (import); set how SSH\n"
            "goes through one, and which one is the default. Private keys live in the\n"
            "OS keyring. `fiotray profiles` is this command's old name.\n"
            "Run `fiotray tunnels ACTION --help` for each action's details."
        ),
        examples=(
            "fiotray tunnels list",
            "fiotray tunnels add-foundries --factory acme --request-access",
            "fiotray tunnels import office.conf",
        ),
        codes=(0, 1, 2, 3),
        exit_note="add-foundries alone may return 3",
    )
    tsub = group.add_subparsers(dest="tunnels_command", metavar="ACTION", required=True)
    p = command(
        tsub,
        "list",
        help="list tunnels",
        description=(
            "List the tunnels configured: kind, interface, server endpoint, this laptop's\n"
            "VPN address and public key; * marks the default one. Changes nothing\n"
            "(`fiotray status` shows which tunnels are up)."
        ),
        examples=("fiotray tunnels list", "fiotray tunnels list --json"),
        codes=(0, 1, 2),
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_list)
    p = command(
        tsub,
        "import",
        help="import a wg-quick .conf (its private key moves to the keyring)",
        description=(
            "Add a plain WireGuard tunnel from a wg-quick .conf file, checked as the\n"
            "privileged helper will check it: a file with hook scripts (PreUp, PostUp,\n"
            "...) or anything else the helper does not allow is refused. The private key\n"
            "moves to the OS keyring; the file is left as it is: delete it afterwards."
        ),
        examples=(
            "fiotray tunnels import office.conf",
            "fiotray tunnels import wg0.conf --name office --interface wg-office",
        ),
        codes=(0, 1, 2),
    )
    p.add_argument("file", metavar="FILE", help="the wg-quick config file to import")
    p.add_argument("--name", help="tunnel name (default: from the file name)")
    p.add_argument("--interface", help="network interface name (default: the tunnel name)")
    p.set_defaults(func=cmd_import)
    p = command(
        tsub,
        "add-foundries",
        help="a tunnel to the factory's VPN server with a key made here",
        description=(
            "Add a tunnel to the factory's VPN server, read from the factory's\n"
            "wireguard-server config, with a key pair made here (the private key goes\n"
            "straight to the OS keyring) and a free VPN address for this laptop. The\n"
            "server must then admit the laptop: the command prints what its admin runs,\n"
            "or, with --request-access, publishes the laptop's public key in the\n"
            "factory's config, where a self-service fiotray-server admits it."
        ),
        examples=(
            "fiotray tunnels add-foundries --factory acme",
            "fiotray tunnels add-foundries --factory acme --request-access",
            "fiotray tunnels add-foundries --factory acme --address 10.42.127.254",
        ),
        codes=(0, 1, 2, 3),
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
    p = command(
        tsub,
        "ssh",
        help="show or change how SSH reaches this tunnel's devices",
        description=(
            "Show how SSH reaches the devices behind a tunnel (device login, route, jump\n"
            "host and login, key, extra options), or change what the options given name;\n"
            "nothing is saved if one is refused. `fiotray ssh`, `fiotray ssh-config` and\n"
            "the tray use these settings."
        ),
        examples=(
            "fiotray tunnels ssh acme",
            "fiotray tunnels ssh acme --route public --jump-host vpn.example.com:2222",
            "fiotray tunnels ssh acme --user root --option ServerAliveInterval=30",
        ),
        codes=(0, 1, 2),
    )
    p.add_argument("name", metavar="NAME", help=TUNNEL_NAME)
    p.add_argument("--user", help="login on the devices (default fio)")
    p.add_argument("--route", choices=ROUTES, help="default route")
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
        help="an extra ssh -o option (allow-listed), repeatable; replaces the saved ones",
    )
    p.set_defaults(func=cmd_ssh)
    p = command(
        tsub,
        "default",
        help="show the default tunnel, or make NAME the default",
        description=(
            "Show the default tunnel, or make NAME the default: the tunnel that\n"
            "`fiotray connect` and `fiotray disconnect` without a name use, and the tray's\n"
            "left click when Settings make it connect and disconnect."
        ),
        examples=("fiotray tunnels default", "fiotray tunnels default office"),
        codes=(0, 1, 2),
    )
    p.add_argument("name", metavar="NAME", nargs="?", help=TUNNEL_NAME)
    p.set_defaults(func=cmd_default)
    p = command(
        tsub,
        "autoconnect",
        help="show or set whether the tray app brings a tunnel up when it starts",
        description=(
            "Show or set whether the tray app brings the tunnel up when it starts, once\n"
            "the tunnel's server can be reached: one attempt per start, which asks for a\n"
            "password only where the system's policy does for any connect. The command\n"
            "line never connects on its own."
        ),
        examples=("fiotray tunnels autoconnect office on", "fiotray tunnels autoconnect office"),
        codes=(0, 1, 2),
    )
    p.add_argument("name", metavar="NAME", help=TUNNEL_NAME)
    p.add_argument(
        "state", metavar="on|off", nargs="?", choices=("on", "off"), help="on or off; none: show"
    )
    p.set_defaults(func=cmd_autoconnect)
    p = command(
        tsub,
        "remove",
        help="remove a tunnel and its private key",
        description=(
            "Remove a tunnel and its private key; refused while the tunnel is up\n"
            "(`fiotray disconnect` it first). A tunnel that requested access withdraws\n"
            "the request first (the server drops the peer at its next sync), and when\n"
            "that fails nothing is removed. A name with no tunnel removes the key a\n"
            "crash left for it."
        ),
        examples=("fiotray tunnels remove office",),
        codes=(0, 1, 2),
    )
    p.add_argument("name", metavar="NAME", help=TUNNEL_NAME)
    p.set_defaults(func=cmd_remove)

    p = command(
        sub,
        "connect",
        help="bring a tunnel up (through the privileged helper)",
        description=(
            "Bring a tunnel up through fiotray's privileged helper, started with pkexec\n"
            "(polkit may ask for an administrator password, at most once a session),\n"
            "then wait up to --wait seconds for the first handshake with the server.\n"
            "Without one, the tunnel stays up and the exit status is 4: the server has\n"
            "not admitted this laptop yet, or is unreachable (see `fiotray status`)."
        ),
        examples=("fiotray connect", "fiotray connect acme --wait 30", "fiotray connect --wait 0"),
        codes=(0, 1, 2, 4),
    )
    p.add_argument(
        "tunnel", nargs="?", metavar="TUNNEL", help="the tunnel (default: the default tunnel)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=CONNECT_WAIT,
        metavar="SECONDS",
        help=f"wait this long for the first handshake (default {CONNECT_WAIT:g}; 0: do not wait)",
    )
    p.add_argument("--json", action="store_true", help="print the tunnel's state as JSON")
    p.set_defaults(func=cmd_connect)
    p = command(
        sub,
        "disconnect",
        help="take a tunnel down",
        description=(
            "Take a tunnel down through fiotray's privileged helper (started with pkexec,\n"
            "as for connect). Only a tunnel that fiotray brought up for you is taken down."
        ),
        examples=("fiotray disconnect", "fiotray disconnect office"),
        codes=(0, 1, 2),
    )
    p.add_argument(
        "tunnel", nargs="?", metavar="TUNNEL", help="the tunnel (default: the default tunnel)"
    )
    p.set_defaults(func=cmd_disconnect)
    p = command(
        sub,
        "status",
        help="state of every tunnel: handshake, bytes in/out",
        description=(
            "Show every tunnel's state as the system has it (disconnected, connecting,\n"
            "waiting, connected, stale or error), its endpoint, its last handshake and\n"
            "the bytes in and out. Changes nothing and never asks for a password."
        ),
        examples=("fiotray status", "fiotray status --json"),
        codes=(0, 1, 2),
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_status)
