"""ssh, ssh-config."""

from __future__ import annotations

import argparse
from typing import Any

from fiotray.cli.output import Context, plural


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
    p = sub.add_parser(
        "ssh",
        help="ssh to a device through the VPN",
        usage="fiotray ssh DEVICE [options] [-- COMMAND...]",
    )
    p.add_argument("device", metavar="DEVICE")
    factory_option(p)
    p.add_argument(
        "--route",
        choices=("jump", "direct", "public"),
        help="jump: through the VPN server (default); direct: to the device's VPN "
        "address (server must NAT); public: through the server's public SSH",
    )
    p.add_argument("--print", action="store_true", help="print the ssh command instead")
    p.add_argument("--terminal", action="store_true", help="open it in a new terminal window")
    # The remote command follows `--`; parse_args splits it off before parsing (argparse
    # would otherwise take fiotray's own options after the device for the remote command).
    p.set_defaults(remote=[])
    p.set_defaults(func=cmd_ssh)
    p = sub.add_parser("ssh-config", help="write an ssh config with every VPN-enabled device")
    factory_option(p)
    p.add_argument("--output", "-o", metavar="PATH", help="where (default: fiotray's config dir)")
    p.set_defaults(func=cmd_ssh_config)
