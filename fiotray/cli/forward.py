"""forward (start), forward list, forward stop, forward restore."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import ROUTES, Context, command, plural, table, to_json

if TYPE_CHECKING:
    from fiotray.core.forward import Forward


def _describe(forward: Forward) -> str:
    if forward.spec.kind == "local":
        where = forward.url or forward.address
        return (
            f"Forwarding {forward.spec.device} port {forward.spec.remote_port} to {where} "
            f"(id {forward.id}, route {forward.route}); stop it with "
            f"`fiotray forward stop {forward.id}`."
        )
    return (
        f"Forwarding port {forward.spec.remote_port} on {forward.spec.device}'s loopback to "
        f"127.0.0.1:{forward.local_port} here (id {forward.id}, route {forward.route}); stop "
        f"it with `fiotray forward stop {forward.id}`."
    )


async def cmd_start(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core.forward import validate_local_port, validate_port
    from fiotray.ops import forwards

    remote_port = validate_port(args.port, "device port")
    local = None
    if args.local is not None:
        local = (
            validate_port(args.local, "local port")
            if args.remote
            else validate_local_port(args.local)
        )
    if args.remote and local is None:
        from fiotray.core.errors import FiotrayError

        raise FiotrayError("--remote needs --local PORT: the port on this machine to reach.")
    forward = await forwards.start(
        ctx.services,
        args.factory,
        args.device,
        remote_port,
        kind="remote" if args.remote else "local",
        local_port=local,
        route=args.route,
        save=args.save,
    )
    ctx.out(_describe(forward))
    if args.save:
        ctx.out("Saved: `fiotray forward restore` starts it again.")
    return 0


async def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import forwards

    found = await forwards.list_forwards(ctx.services)
    if args.json:
        ctx.out(to_json([f.public_json() for f in found]))
        return 0
    if not found:
        ctx.out("No forwards; start one with `fiotray forward DEVICE PORT`.")
        return 0
    rows = [
        [
            f.id,
            f.spec.device,
            f.spec.kind,
            str(f.spec.remote_port),
            f.url or f"127.0.0.1:{f.local_port}",
            f.route,
            "running" if f.alive else "dropped",
        ]
        for f in found
    ]
    ctx.out(table(rows, ["ID", "DEVICE", "KIND", "DEVICE PORT", "LOCAL", "ROUTE", "STATE"]))
    return 0


async def cmd_stop(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import forwards

    if args.all == (args.id is not None):
        # A usage error (exit 2, nothing done), as argparse's own: the command line
        # asked for neither or both.
        print("fiotray forward stop: give a forward's ID or --all (not both).", file=sys.stderr)
        return 2
    if args.all:
        stopped = await forwards.stop_all(ctx.services)
        ctx.out(f"Stopped {plural(len(stopped), 'forward')}.")
        return 0
    forward = await forwards.stop(ctx.services, args.id, forget=args.forget)
    ctx.out(f"Stopped {forward.id}: {forward.label}.")
    return 0


async def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import forwards

    results = await forwards.restore(ctx.services, args.factory)
    if not results:
        ctx.out("No saved forwards; save one with `fiotray forward DEVICE PORT --save`.")
        return 0
    failed = 0
    for r in results:
        name = f"{r.spec.device} port {r.spec.remote_port} ({r.spec.kind})"
        if r.forward is not None:
            ctx.out(_describe(r.forward))
        elif r.already:
            ctx.out(f"{name}: already running.")
        else:
            failed += 1
            ctx.out(f"{name}: {r.error}")
    return 1 if failed else 0


def register(sub: Any, factory_option: Any) -> None:
    group = command(
        sub,
        "forward",
        help="forward a device's port to this machine (or back)",
        description=(
            "Port forwards over a device's SSH route (the one `fiotray ssh` takes):\n"
            "`fiotray forward DEVICE PORT` makes the device's PORT reachable on this\n"
            "machine's loopback (short for `fiotray forward start`). Each forward is an\n"
            "ssh process of its own that outlives the command; list, stop and restore\n"
            "saved ones with the actions below. Run `fiotray forward ACTION --help`."
        ),
        examples=(
            "fiotray forward gateway-01 80",
            "fiotray forward list",
            "fiotray forward stop --all",
        ),
        codes=(0, 1, 2, 3),
    )
    fsub = group.add_subparsers(dest="forward_command", metavar="ACTION", required=True)
    p = command(
        fsub,
        "start",
        help="start a forward (the default action)",
        description=(
            "Forward a device's port to this machine: ssh -L over the device's route,\n"
            "bound to 127.0.0.1 only, on --local PORT or a free port. Returns once the\n"
            "forward is up and prints its address (a URL for web ports). --remote does\n"
            "the reverse: the device's loopback PORT reaches --local PORT here. A route\n"
            "through a tunnel that is down is refused. --save keeps it for\n"
            "`fiotray forward restore` (and the tray at start)."
        ),
        examples=(
            "fiotray forward start gateway-01 80",
            "fiotray forward gateway-01 2345 --local 2345 --save",
            "fiotray forward gateway-01 9000 --remote --local 8000",
            "fiotray forward gateway-01 443 --route direct --factory acme",
        ),
        codes=(0, 1, 2, 3),
    )
    p.add_argument("device", metavar="DEVICE", help="the device's name, as `fiotray devices` shows")
    p.add_argument("port", metavar="PORT", help="the port on the device")
    p.add_argument(
        "--local",
        metavar="PORT",
        help="the port on this machine (default: a free one; required with --remote)",
    )
    p.add_argument(
        "--remote",
        action="store_true",
        help="a remote forward: PORT on the device's loopback reaches --local PORT here",
    )
    p.add_argument(
        "--route",
        choices=ROUTES,
        help="the SSH route (default: the tunnel's, as for `fiotray ssh`)",
    )
    p.add_argument("--save", action="store_true", help="save it for `fiotray forward restore`")
    factory_option(p)
    p.set_defaults(func=cmd_start)

    p = command(
        fsub,
        "list",
        help="list forwards",
        description=(
            "List the forwards started by fiotray (the tray or any command), each\n"
            "checked: `running` when its ssh answers on its control socket, `dropped`\n"
            "when it ended (the tray restarts dropped ones). Changes nothing."
        ),
        examples=("fiotray forward list", "fiotray forward list --json"),
        codes=(0, 1, 2),
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_list)

    p = command(
        fsub,
        "stop",
        help="stop a forward, or all of them",
        description=(
            "Stop one forward by its ID (from `fiotray forward list`), or --all: its ssh\n"
            "is told to exit on its own control socket (then sent SIGTERM if it lingers);\n"
            "no other ssh is touched. --forget also removes it from the saved forwards."
        ),
        examples=(
            "fiotray forward stop 1a2b3c4d",
            "fiotray forward stop 1a2b3c4d --forget",
            "fiotray forward stop --all",
        ),
        codes=(0, 1, 2),
    )
    p.add_argument("id", metavar="ID", nargs="?", help="the forward's ID")
    p.add_argument("--all", action="store_true", help="stop every forward")
    p.add_argument("--forget", action="store_true", help="and remove it from the saved ones")
    p.set_defaults(func=cmd_stop)

    p = command(
        fsub,
        "restore",
        help="start the saved forwards that are not running",
        description=(
            "Start every forward saved with --save that is not running now (of one\n"
            "factory with --factory), each on its saved route and port. One line per\n"
            "saved forward: started, already running, or why it failed (then exit 1)."
        ),
        examples=("fiotray forward restore", "fiotray forward restore --factory acme"),
        codes=(0, 1, 2, 3),
    )
    factory_option(p)
    p.set_defaults(func=cmd_restore)
