"""CLI commands for tunnels and SSH: profiles, connect, disconnect, status, ssh, ssh-config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fiotray.core.errors import VpnError

# The core's modules (asyncio, httpx, keyring behind them) are imported by the commands
# that use them: `register` runs on every launch, the tray app's included.
if TYPE_CHECKING:
    from fiotray.cli import Context
    from fiotray.core import ssh, tunnels

# How long `connect` waits for the first handshake before it reports.
CONNECT_WAIT = 10.0


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _fmt_age(age: float | None) -> str:
    if age is None:
        return "never"
    if age < 120:
        return f"{age:.0f}s ago"
    return f"{age / 60:.0f}m ago"


def _status_line(s: tunnels.TunnelStatus) -> str:
    line = f"{s.profile} ({s.interface}): {s.state}"
    if s.latest_handshake:
        line += f", handshake {_fmt_age(s.handshake_age())}"
    if s.detail:
        line += f" — {s.detail}"
    return line


async def cmd_profiles_list(args: argparse.Namespace, ctx: Context) -> int:
    import json

    from fiotray.cli import printable, table

    profiles = ctx.tunnels.list()
    if args.json:
        ctx.out(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "kind": p.kind,
                        "interface": p.interface,
                        "endpoint": p.endpoint,
                        "factory": p.factory,
                        "address": p.address,
                        "public_key": p.public_key,
                    }
                    for p in profiles
                ],
                indent=2,
            )
        )
        return 0
    if not profiles:
        ctx.out(
            "No tunnel configured. Add one with `fiotray profiles add-foundries --factory F "
            "--address IP` or `fiotray profiles import FILE`."
        )
        return 0
    default = ctx.tunnels.default_name()
    rows = [
        [
            "*" if p.name == default else "",
            p.name,
            p.kind,
            p.interface,
            printable(p.endpoint, 40),
            p.address or "",
            p.public_key,
        ]
        for p in profiles
    ]
    ctx.out(table(rows, ["", "NAME", "KIND", "INTERFACE", "ENDPOINT", "ADDRESS", "PUBLIC KEY"]))
    return 0


async def cmd_profiles_import(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio
    from pathlib import Path

    from fiotray.core import tunnels

    path = Path(args.file)
    text = tunnels.read_conf_file(path)
    name = args.name or tunnels.name_from_path(path)
    await asyncio.to_thread(ctx.secrets.check)
    profile = await tunnels.import_plain_profile(
        ctx.tunnels, ctx.secrets, name=name, text=text, interface=args.interface
    )
    ctx.out(
        f"Imported tunnel {profile.name} (interface {profile.interface}, endpoint "
        f"{profile.endpoint or 'none'}). Its private key is now in the keyring; {path} still "
        "holds it in plain text: delete that file when you no longer need it."
    )
    return 0


async def cmd_profiles_add_foundries(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio
    from contextlib import AsyncExitStack

    from fiotray.cli import _client
    from fiotray.core import devices, tunnels

    async with AsyncExitStack() as stack:
        api = await _client(ctx, args.factory, stack)
        server = await devices.factory_server(api)
        used = {ip.ip for ip in await api.wireguard_ips()}
        factory = api.factory
    await asyncio.to_thread(ctx.secrets.check)
    profile = await tunnels.create_foundries_profile(
        ctx.tunnels,
        ctx.secrets,
        name=args.name or factory,
        factory=factory,
        server=server,
        address=args.address,
        used=used,
        interface=args.interface,
    )
    ctx.out(
        f"Added tunnel {profile.name} for factory {factory}: interface {profile.interface}, "
        f"address {profile.address}, server {profile.endpoint}.\n"
        f"Public key: {profile.public_key}\n\n"
        "The factory's VPN server knows only devices as peers. Ask its admin to admit this "
        "laptop by running on the server:\n\n"
        f"  {tunnels.admin_line(profile)}\n\n"
        "(factory-wireguard-server rewrites its peers from the device list every few minutes; "
        "the admin should keep this peer in its configuration.) Then: fiotray connect "
        f"{profile.name}"
    )
    return 0


async def cmd_profiles_ssh(args: argparse.Namespace, ctx: Context) -> int:
    import dataclasses

    from fiotray.core import session, ssh

    profile = ctx.tunnels.get(args.name)
    current = session.ssh_settings(profile, None)
    changes = {
        k: getattr(args, k)
        for k in ("user", "route", "jump_user", "jump_host", "identity_file")
        if getattr(args, k) is not None
    }
    if args.option is not None:
        changes["extra_options"] = tuple(args.option)
    settings = dataclasses.replace(current, **changes).validated()
    stored = {
        k: v for k, v in dataclasses.asdict(settings).items() if v != getattr(ssh.SshSettings(), k)
    }
    if "extra_options" in stored:
        stored["extra_options"] = list(stored["extra_options"])
    if changes:
        ctx.tunnels.save(dataclasses.replace(profile, ssh=stored))
    ctx.out("\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(settings).items()))
    return 0


async def cmd_profiles_remove(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core import tunnels

    profile = ctx.tunnels.get(args.name)
    if ctx.controller().interface_exists(profile.interface):
        raise VpnError(f"Tunnel {profile.name} is up: disconnect it first.")
    ctx.tunnels.remove(profile.name)
    await ctx.secrets.adelete(tunnels.tunnel_key(profile.name))
    ctx.out(f"Removed tunnel {profile.name} and its private key.")
    return 0


async def cmd_connect(args: argparse.Namespace, ctx: Context) -> int:
    import json

    from fiotray.core.tunnelstate import State

    status = await ctx.controller().connect(args.profile, wait=args.wait)
    if args.json:
        ctx.out(json.dumps(status.to_json(), indent=2))
    else:
        ctx.out(_status_line(status))
        if status.state is State.CONNECTING and args.wait:
            ctx.out(
                f"No handshake with the server within {args.wait:g} s; the tunnel stays up. "
                "Check with `fiotray status`."
            )
    # 4: up, but nothing proves the server answers (scripts can tell this from a failure).
    return 0 if status.state is State.CONNECTED or not args.wait else 4


async def cmd_disconnect(args: argparse.Namespace, ctx: Context) -> int:
    status = await ctx.controller().disconnect(args.profile)
    ctx.out(_status_line(status))
    return 0


async def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    import json
    import time

    from fiotray.cli import table
    from fiotray.core.tunnelstate import State

    statuses = await ctx.controller().status()
    now = time.time()
    if args.json:
        ctx.out(json.dumps([s.to_json(now) for s in statuses], indent=2))
        return 0
    if not statuses:
        ctx.out("No tunnel configured.")
        return 0
    rows = [
        [
            s.profile,
            s.interface,
            str(s.state),
            s.endpoint or "-",
            _fmt_age(s.handshake_age(now)) if s.state is not State.DISCONNECTED else "-",
            _fmt_bytes(s.rx_bytes),
            _fmt_bytes(s.tx_bytes),
        ]
        for s in statuses
    ]
    ctx.out(table(rows, ["TUNNEL", "INTERFACE", "STATE", "ENDPOINT", "HANDSHAKE", "IN", "OUT"]))
    for s in statuses:
        if s.detail:
            ctx.out(f"{s.profile}: {s.detail}")
    return 0


async def _ssh_targets(
    ctx: Context, factory: str | None, only: str | None
) -> tuple[str, list[ssh.SshTarget], tunnels.Tunnel | None]:
    from contextlib import AsyncExitStack

    from fiotray.cli import _client
    from fiotray.core import session

    async with AsyncExitStack() as stack:
        api = await _client(ctx, factory, stack)
        profile = ctx.tunnels.for_factory(api.factory)
        targets = await session.ssh_targets(api, profile, only)
        return api.factory, targets, profile


async def cmd_ssh(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from fiotray.core import devices, session, ssh, terminal

    devices.validate_device_name(args.device)
    factory, targets, profile = await _ssh_targets(ctx, args.factory, args.device)
    settings = session.ssh_settings(profile, args.route)
    argv = ssh.ssh_argv(targets[0], settings, command=args.remote)
    if args.print:
        ctx.out(ssh.ssh_command_line(argv))
        return 0
    through_tunnel = settings.route in ("jump", "direct") and profile is not None
    if through_tunnel and not ctx.controller().interface_exists(profile.interface):
        raise VpnError(
            f"Tunnel {profile.name} is down and the {settings.route} route goes through it: "
            f"run `fiotray connect {profile.name}` first."
        )
    if args.terminal:
        from fiotray.core.settings import SettingsStore

        # The terminal the tray's settings chose, titled as the tray titles it.
        pid = await terminal.launch_in_terminal(
            argv,
            setting=SettingsStore().load().terminal or None,
            title=f"{args.device} — {factory} (fiotray SSH)",
        )
        ctx.out(f"Opened a terminal (pid {pid}) running: {ssh.ssh_command_line(argv)}")
        return 0
    os.execvp(argv[0], argv)  # noqa: S606 - argv built and validated by ssh.ssh_argv
    return 0  # pragma: no cover


async def cmd_ssh_config(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio
    from pathlib import Path

    from fiotray.core import session, ssh

    factory, targets, profile = await _ssh_targets(ctx, args.factory, None)
    settings = session.ssh_settings(profile, None)
    path = Path(args.output) if args.output else ssh.default_ssh_config_path(factory)
    text = ssh.render_ssh_config(factory, [(t, settings) for t in targets], include_path=path)
    await asyncio.to_thread(ssh.write_ssh_config, path, text, own_dir=not args.output)
    include = ssh.include_line(path if args.output else None)
    ctx.out(
        f"Wrote {len(targets)} host{'s' if len(targets) != 1 else ''} to {path}; reach a device "
        f"with `ssh fiotray.{factory}.<device>`.\n"
        f"Add this line near the top of ~/.ssh/config once:\n  {include}"
    )
    return 0


def register(sub: Any, factory_opt: Any) -> None:
    profiles = sub.add_parser("profiles", help="tunnel profiles (Foundries or plain WireGuard)")
    psub = profiles.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)
    p = psub.add_parser("list", help="list tunnel profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles_list)
    p = psub.add_parser(
        "import", help="import a wg-quick .conf (its private key moves to the keyring)"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help="tunnel name (default: from the file name)")
    p.add_argument("--interface", help="network interface name (default: the tunnel name)")
    p.set_defaults(func=cmd_profiles_import)
    p = psub.add_parser(
        "add-foundries", help="a tunnel to the factory's VPN server with a key made here"
    )
    factory_opt(p)
    p.add_argument("--address", required=True, help="this laptop's VPN address, e.g. 10.42.42.200")
    p.add_argument("--name", help="tunnel name (default: the factory)")
    p.add_argument("--interface", help="network interface name (default: fio<factory>)")
    p.set_defaults(func=cmd_profiles_add_foundries)
    p = psub.add_parser("ssh", help="show or change how SSH reaches this profile's devices")
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
    p.set_defaults(func=cmd_profiles_ssh)
    p = psub.add_parser("remove", help="remove a tunnel profile and its private key")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_profiles_remove)

    p = sub.add_parser("connect", help="bring a tunnel up (through the privileged helper)")
    p.add_argument("profile", nargs="?", metavar="PROFILE")
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
    p.add_argument("profile", nargs="?", metavar="PROFILE")
    p.set_defaults(func=cmd_disconnect)
    p = sub.add_parser("status", help="state of every tunnel: handshake, bytes in/out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "ssh",
        help="ssh to a device through the VPN",
        usage="fiotray ssh DEVICE [options] [-- COMMAND...]",
    )
    p.add_argument("device", metavar="DEVICE")
    factory_opt(p)
    p.add_argument(
        "--route",
        choices=("jump", "direct", "public"),
        help="jump: through the VPN server (default); direct: to the device's VPN "
        "address (server must NAT); public: through the server's public SSH",
    )
    p.add_argument("--print", action="store_true", help="print the ssh command instead")
    p.add_argument("--terminal", action="store_true", help="open it in a new terminal window")
    # The remote command follows `--`; main() splits it off before parsing (argparse would
    # otherwise take fiotray's own options after the device for the remote command).
    p.set_defaults(remote=[])
    p.set_defaults(func=cmd_ssh)
    p = sub.add_parser("ssh-config", help="write an ssh config with every VPN-enabled device")
    factory_opt(p)
    p.add_argument("--output", "-o", metavar="PATH", help="where (default: fiotray's config dir)")
    p.set_defaults(func=cmd_ssh_config)
