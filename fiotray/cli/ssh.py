"""ssh, ssh-config."""

from __future__ import annotations

import argparse
from typing import Any

from fiotray.cli.output import ROUTES, Context, command, plural


async def cmd_ssh(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from fiotray.ops import ssh

    cmd = await ssh.command(
        ctx.services, args.factory, args.device, route=args.route, remote=args.remote
    )
    if args.print:
        ctx.out(cmd.line)
        return 0
    if args.terminal:
        pid = await ssh.open_terminal(ctx.services, cmd)
        ctx.out(f"Opened a terminal (pid {pid}) running: {cmd.line}")
        return 0
    ssh.check_tunnel(ctx.services, cmd)
    os.execvp(cmd.argv[0], cmd.argv)  # noqa: S606 - argv built and validated by core.ssh
    return 0  # pragma: no cover


async def cmd_ssh_config(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from fiotray.ops import ssh

    written = await ssh.write_config(
        ctx.services, args.factory, Path(args.output) if args.output else None
    )
    ctx.out(
        f"Wrote {plural(written.hosts, 'host')} to {written.path}; reach a device with "
        f"`ssh fiotray.{written.factory}.<device>`.\n"
        f"Add this line near the top of ~/.ssh/config once:\n  {written.include_line}"
    )
    return 0


def register(sub: Any, factory_option: Any) -> None:
    p = command(
        sub,
        "ssh",
        help="ssh to a device through the VPN",
        usage="fiotray ssh DEVICE [options] [-- COMMAND...]",
        description=(
            "Open SSH to a device over the factory's VPN: fiotray looks up the device's\n"
            "VPN address, builds the ssh command from the tunnel's SSH settings (see\n"
            "`fiotray tunnels ssh`) and becomes that ssh, so you get ssh's own exit\n"
            "status. A route through the tunnel is refused while the tunnel is down.\n"
            "What follows `--` runs on the device. Nothing is changed, except that\n"
            "--terminal remembers the device among the tray's recent ones."
        ),
        examples=(
            "fiotray ssh gateway-01",
            "fiotray ssh gateway-01 --factory acme -- uptime",
            "fiotray ssh gateway-01 --route public --terminal",
        ),
        codes=(0, 1, 2, 3),
        exit_note="once ssh runs, ssh's own: the remote command's status, or 255 if ssh fails",
    )
    p.add_argument(
        "device", metavar="DEVICE", help="the device's name, as `fiotray devices` shows it"
    )
    factory_option(p)
    p.add_argument(
        "--route",
        choices=ROUTES,
        help="jump: through the VPN server (default); direct: to the device's VPN "
        "address (server must NAT); public: through the server's public SSH",
    )
    p.add_argument("--print", action="store_true", help="print the ssh command instead")
    p.add_argument("--terminal", action="store_true", help="open it in a new terminal window")
    # The remote command follows `--`; parse_args splits it off before parsing (argparse
    # would otherwise take fiotray's own options after the device for the remote command).
    p.set_defaults(remote=[])
    p.set_defaults(func=cmd_ssh)
    p = command(
        sub,
        "ssh-config",
        help="write an ssh config with every VPN-enabled device",
        description=(
            "Write an ssh config with a `Host fiotray.FACTORY.DEVICE` entry for every\n"
            "VPN-enabled device (to ~/.config/fiotray/ssh/FACTORY.conf by default), so\n"
            "that ssh, scp and rsync reach devices by name. ~/.ssh/config is not\n"
            "changed: the command prints the Include line to add to it once."
        ),
        examples=(
            "fiotray ssh-config",
            "fiotray ssh-config --factory acme --output ~/.ssh/fiotray-acme.conf",
        ),
        codes=(0, 1, 2, 3),
    )
    factory_option(p)
    p.add_argument("--output", "-o", metavar="PATH", help="where (default: fiotray's config dir)")
    p.set_defaults(func=cmd_ssh_config)
