"""devices, enable, disable, device-vpn, favourite."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import Context, command, plural, table, to_json
from fiotray.core.errors import FiotrayError

if TYPE_CHECKING:
    from fiotray.core.devices import VpnState
    from fiotray.ops.devices import Selector

# As fiotray.ops.reach.DEFAULT_TIMEOUT (not imported: building the parser stays light).
WAIT_DEFAULT = 900.0
# As fiotray.ops.devices.VPN_STATES (not imported here: building the parser stays light).
VPN_STATES = ("enabled", "disabled", "pending")


def add_selectors(p: Any, *, state: bool) -> None:
    """--tag/--group/--target (and with `state`, --online/--offline/--vpn): all must match."""
    p.add_argument("--tag", metavar="TAG", help="only devices following update tag TAG")
    p.add_argument("--group", metavar="GROUP", help="only devices in device group GROUP")
    p.add_argument("--target", metavar="TARGET", help="only devices running target TARGET")
    if state:
        online = p.add_mutually_exclusive_group()
        online.add_argument(
            "--online",
            dest="online",
            action="store_const",
            const=True,
            help="only devices seen in the last 4 hours",
        )
        online.add_argument(
            "--offline", dest="online", action="store_const", const=False, help="only the others"
        )
        p.add_argument(
            "--vpn",
            choices=VPN_STATES,
            help="only devices whose VPN column says this (disabled: also never enabled)",
        )


def selector(args: argparse.Namespace) -> Selector:
    from fiotray.ops.devices import Selector

    return Selector(
        tag=args.tag,
        group=args.group,
        target=args.target,
        online=getattr(args, "online", None),
        vpn=getattr(args, "vpn", None),
    )


async def cmd_devices(args: argparse.Namespace, ctx: Context) -> int:
    import json
    from datetime import UTC, datetime

    from fiotray.core.format import ago, safe_text, vpn_label
    from fiotray.ops import devices

    rows = await devices.list_devices(
        ctx.services, args.factory, search=args.search, where=selector(args)
    )
    now = datetime.now(UTC)
    if args.json:
        # One row at a time: a 50,000-device factory need not exist twice in memory as text.
        ctx.out("[", end="")
        for i, r in enumerate(rows):
            ctx.out(("," if i else "") + "\n " + json.dumps(r.to_json(now)), end="")
        ctx.out("\n]")
        return 0
    import sys

    # Cut to fit a terminal; whole when piped (`| grep`, `| cut`): a script needs the names
    # it will pass back to fiotray, suffixes and all.
    fit = sys.stdout.isatty()
    body = []
    for r in rows:
        d = r.device
        seen = (now - d.last_seen).total_seconds() if d.last_seen else None
        body.append(
            [
                safe_text(d.name, 40 if fit else None),
                "online" if r.online(now) else "offline",
                vpn_label(r.vpn_enabled, r.vpn_address, r.vpn_pending),
                safe_text(r.vpn_address, 15),
                safe_text(d.target, 30 if fit else None),
                safe_text(d.group or "", 20 if fit else None),
                ago(seen),
            ]
        )
    ctx.out(table(body, ["NAME", "STATE", "VPN", "ADDRESS", "TARGET", "GROUP", "LAST SEEN"]))
    ctx.out(plural(len(rows), "device"))
    return 0


def _vpn_text(state: VpnState) -> str:
    lines = [f"Enabled: {'true' if state.enabled else 'false'}"]
    if state.address:
        lines.append(f"Address: {state.address}")
    if state.pubkey:
        lines.append(f"Public Key: {state.pubkey}")
    lines.append(f"Pending: {'true' if state.pending else 'false'}")
    return "\n".join(lines)


async def cmd_device_vpn(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.ops import devices

    state = await devices.device_vpn(ctx.services, args.factory, args.device)
    ctx.out(to_json(state.to_json()) if args.json else _vpn_text(state))
    return 0


async def _set_vpn(args: argparse.Namespace, ctx: Context, enable: bool) -> int:
    from fiotray.core.format import safe_text
    from fiotray.ops import devices

    where = selector(args)
    if args.wait is not None and not args.wait > 0:
        # A usage error (exit 2, nothing done), as argparse's own.
        print(f"fiotray {args.command}: --wait takes a number of seconds above 0.", file=sys.stderr)
        return 2
    if args.wait is not None and args.dry_run:
        print(f"fiotray {args.command}: --dry-run writes nothing to wait for.", file=sys.stderr)
        return 2
    if len(args.device) != 1 or where or args.dry_run:
        return await _set_vpn_many(args, ctx, enable, where)
    since = time.monotonic()
    state = await devices.set_vpn(ctx.services, args.factory, args.device[0], enable)
    if args.wait is not None:
        return await _wait(args, ctx, enable, [state], since)
    if args.json:
        ctx.out(to_json(state.to_json()))
    else:
        verb = "enabled" if enable else "disabled"
        ctx.out(
            f"VPN {verb} on {safe_text(state.device)} (address {state.address or 'none'}); "
            "pending until the device checks in (up to about 5 minutes)."
        )
    return 0


async def _wait(
    args: argparse.Namespace,
    ctx: Context,
    enable: bool,
    states: list[VpnState],
    since: float,
    report: dict[str, Any] | None = None,
) -> int:
    """--wait: follow each changed device until it is reachable (enable) or applied
    (disable), a line per stage; exit 4 when any did not get there, each saying why.
    `report`: a bulk change's own (its lines are printed), which the JSON extends."""
    from fiotray.core.format import safe_text
    from fiotray.ops import reach

    verb = "enabled" if enable else "disabled"
    if not args.json and report is None:  # a bulk change printed its own lines
        for state in states:
            ctx.out(
                f"VPN {verb} on {safe_text(state.device)} (address {state.address or 'none'}); "
                "waiting for the device to apply it"
                + (" and answer over the VPN" if enable else "")
                + "…"
            )

    def staged(stage: str, state: VpnState) -> None:
        if not args.json and enable:
            ctx.out(f"{safe_text(state.device)}: applied; waiting for an answer over the VPN…")

    def told(result: reach.Reach) -> None:
        if args.json:
            return
        if result.done:
            ctx.out(safe_text(result.summary(), 400))
        else:
            print(f"fiotray: {safe_text(result.summary(), 400)}", file=sys.stderr)

    results = await reach.wait_many(
        ctx.services,
        args.factory,
        [s.device for s in states],
        enable=enable,
        timeout=args.wait,
        since=since,
        on_stage=staged,
        on_result=told,
    )
    if args.json:
        if report is None:  # one device: its state, and how far it got
            ctx.out(to_json({**states[0].to_json(), "wait": results[0].to_json()}))
        else:
            ctx.out(to_json({**report, "wait": [r.to_json() for r in results]}))
    return 0 if all(r.done for r in results) else 4


async def _set_vpn_many(
    args: argparse.Namespace, ctx: Context, enable: bool, where: Selector
) -> int:
    """Several devices, or those the selectors pick: one line per device, failures on
    stderr (one line each), a summary; exit 1 when any device failed."""
    from fiotray.core.devices import validate_device_name
    from fiotray.core.format import safe_text
    from fiotray.ops import devices

    for name in args.device:
        validate_device_name(name)
    rows = await devices.list_devices(ctx.services, args.factory)
    plan = devices.plan_vpn(rows, enable, names=args.device, where=where)
    verb = "enable" if enable else "disable"
    missing = [f"{safe_text(n)}: no such device" for n in plan.missing]
    if not args.device and not plan.change and not plan.skipped:
        raise FiotrayError(f"No device matches {where.describe()}.")
    if args.dry_run:
        if args.json:
            ctx.out(
                to_json(
                    {
                        "dry_run": True,
                        "change": list(plan.change),
                        "skipped": [{"name": n, "reason": r} for n, r in plan.skipped],
                        "missing": list(plan.missing),
                    }
                )
            )
        else:
            for name in plan.change:
                ctx.out(f"would {verb} VPN on {safe_text(name)}")
            for name, reason in plan.skipped:
                ctx.out(f"would skip {safe_text(name)}: {reason}")
            ctx.out(
                f"Dry run: {plural(len(plan.change), 'device')} to {verb}, "
                f"{len(plan.skipped)} skipped; nothing was written."
            )
        for line in missing:
            print(f"fiotray: {line}", file=sys.stderr)
        return 1 if missing else 0

    def told(result: devices.VpnResult) -> None:
        if result.state is not None and not args.json:
            address = result.state.address or "none"
            ctx.out(f"VPN {verb}d on {safe_text(result.device)} (address {address})")

    since = time.monotonic()
    results = await devices.set_vpn_many(
        ctx.services, args.factory, plan.change, enable, on_result=told
    )
    failed = [f"{safe_text(r.device)}: {safe_text(r.error, 300)}" for r in results if not r.ok]
    report = {
        "dry_run": False,
        "changed": [r.state.to_json() for r in results if r.state is not None],
        "failed": [
            {"name": r.device, "error": r.error, "code": r.code} for r in results if not r.ok
        ],
        "skipped": [{"name": n, "reason": r} for n, r in plan.skipped],
        "missing": list(plan.missing),
    }
    changed = [r.state for r in results if r.state is not None]
    if args.wait is not None and changed:
        for line in failed + missing:
            print(f"fiotray: {line}", file=sys.stderr)
        code = await _wait(args, ctx, enable, changed, since, report=report)
        return 1 if failed or missing else code
    if args.json:
        ctx.out(to_json(report))
    else:
        for name, reason in plan.skipped:
            ctx.out(f"skipped {safe_text(name)}: {reason}")
        summary = devices.bulk_summary(results, enable, len(plan.skipped), most=0)
        if any(r.ok for r in results):
            summary += "; pending until each device checks in (up to about 5 minutes)"
        ctx.out(summary + ".")
    for line in failed + missing:
        print(f"fiotray: {line}", file=sys.stderr)
    return 1 if failed or missing else 0


async def cmd_enable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, True)


async def cmd_disable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, False)


async def cmd_favourite(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core.format import safe_text
    from fiotray.ops import devices

    if args.device is None:
        if args.remove:
            raise FiotrayError("--remove needs the device to remove from the favourites.")
        factory = ctx.services.factory(args.factory).factory if args.factory else None
        pairs = devices.favourites(ctx.services, factory)
        if args.json:
            ctx.out(to_json([{"factory": f, "name": d} for f, d in pairs]))
        elif pairs:
            ctx.out(table([[safe_text(d), safe_text(f)] for f, d in pairs], ["NAME", "FACTORY"]))
        else:
            ctx.out("No favourite devices yet: add one with `fiotray favourite DEVICE`.")
        return 0
    name = safe_text(args.device)
    if args.remove:
        factory = ctx.services.factory(args.factory).factory
        changed = devices.set_favourite(ctx.services, factory, args.device, False)
        ctx.out(f"Removed {name} from the favourites." if changed else f"{name} was no favourite.")
    else:
        factory, changed = await devices.add_favourite(ctx.services, args.factory, args.device)
        ctx.out(f"Added {name} to the favourites." if changed else f"{name} already is one.")
    return 0


# Each command on one device (or, for enable and disable, on several): its one-line help,
# description and examples.
DEVICE_COMMANDS = (
    (
        "enable",
        "enable VPN on devices (as fioctl devices config wireguard)",
        "Enable VPN on a device: what `fioctl devices config wireguard DEVICE enable`\n"
        "does. The device's wireguard-client config file is written in the factory,\n"
        "keeping its VPN address or giving it the first free one after the server's;\n"
        "no other config file is touched. The change is pending until the device\n"
        "applies it at its next check-in (up to about 5 minutes).\n\n"
        "Several devices: name them, or pick them with --tag, --group and --target\n"
        "(all must match; with names, of those named). Devices already enabled are\n"
        "skipped and listed with why; no two get the same address; four are written at\n"
        "a time. --dry-run lists what would change and writes nothing. Each failure is\n"
        "one line on standard error, and the exit status is 1 if any device failed.\n\n"
        "--wait follows each device until it is reachable: applied (the device took\n"
        "the change), then answering over the VPN (its SSH banner through the route,\n"
        "once the VPN server has its peer). Each stage is a line, with how long it\n"
        "took; a device that does not get there in time says why (offline, not\n"
        "applied, the tunnel down, the server without its peer).",
        (
            "fiotray enable gateway-01",
            "fiotray enable gateway-01 --wait",
            "fiotray enable gw-01 gw-02 --wait 600 --json",
            "fiotray enable gateway-01 --factory acme --json",
            "fiotray enable gw-01 gw-02 gw-03",
            "fiotray enable --group lab --tag devel --dry-run",
        ),
    ),
    (
        "disable",
        "disable VPN on devices, keeping their addresses and keys",
        "Disable VPN on a device: what `fioctl devices config wireguard DEVICE disable`\n"
        "does. The device's wireguard-client config file is written with VPN off; its\n"
        "VPN address and public key are kept, so enabling it again gives it the same\n"
        "address. The change is pending until the device applies it at its next\n"
        "check-in (up to about 5 minutes).\n\n"
        "Several devices: name them, or pick them with --tag, --group and --target\n"
        "(all must match), as for enable; --dry-run writes nothing. --wait waits until\n"
        "each device applied the change.",
        (
            "fiotray disable gateway-01",
            "fiotray disable gateway-01 --factory acme",
            "fiotray disable --group lab --dry-run",
        ),
    ),
    (
        "device-vpn",
        "show a device's VPN config and whether it is pending",
        "Show a device's VPN config as the factory holds it (enabled, address, public\n"
        "key) and whether the device has applied it yet (pending). Changes nothing.",
        ("fiotray device-vpn gateway-01", "fiotray device-vpn gateway-01 --json"),
    ),
)


def register(sub: Any, factory_option: Any) -> None:
    p = command(
        sub,
        "devices",
        help="list every device with its VPN state",
        description=(
            "List every device of the factory: online or offline (seen in the last 4\n"
            "hours), VPN state and address, target, group, and when it was last seen.\n"
            "Changes nothing. Long names are cut to fit a terminal, whole when piped.\n"
            "--search keeps devices holding every word of TEXT (name, uuid, target,\n"
            "group, tag or address); --tag, --group, --target (exact, or a pattern with\n"
            "* and ?), --online/--offline and --vpn narrow further: all must match."
        ),
        examples=(
            "fiotray devices",
            "fiotray devices --factory acme --search gateway",
            "fiotray devices --group qa --vpn enabled --online",
            "fiotray devices --json",
        ),
        codes=(0, 1, 2, 3),
    )
    factory_option(p)
    p.add_argument(
        "--search",
        "-s",
        metavar="TEXT",
        help="only devices whose name, target, group, tag, uuid or VPN address hold each "
        "word of TEXT",
    )
    add_selectors(p, state=True)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_devices)

    funcs = {"enable": cmd_enable, "disable": cmd_disable, "device-vpn": cmd_device_vpn}
    for name, text, description, examples in DEVICE_COMMANDS:
        p = command(
            sub,
            name,
            help=text,
            description=description,
            examples=examples,
            codes=(0, 1, 2, 3) if name == "device-vpn" else (0, 1, 2, 3, 4),
            exit_note=""
            if name == "device-vpn"
            else "several devices: 1 when any failed, each on its own line",
        )
        bulk = name != "device-vpn"
        p.add_argument(
            "device",
            metavar="DEVICE",
            nargs="*" if bulk else None,
            help="the device's name, as `fiotray devices` shows it",
        )
        factory_option(p)
        if bulk:
            add_selectors(p, state=False)
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="list what would change (and what is skipped, and why); write nothing",
            )
            p.add_argument(
                "--wait",
                nargs="?",
                type=float,
                const=WAIT_DEFAULT,
                metavar="SECONDS",
                help="wait until each device applied the change and, for enable, answers over "
                "the VPN (an SSH probe through the route), for at most SECONDS (default "
                f"{WAIT_DEFAULT:g}); say why when one does not",
            )
        p.add_argument("--json", action="store_true", help="print the VPN state as JSON")
        p.set_defaults(func=funcs[name])

    p = command(
        sub,
        "favourite",
        help="add a device to the favourites, remove it, or list them",
        description=(
            "Favourite devices come first in the tray's device menus. With a DEVICE, add\n"
            "it (it must exist in the factory) at the end of the list; with --remove,\n"
            "take it out; with neither, list the favourites (of --factory, if given)."
        ),
        examples=(
            "fiotray favourite gateway-01",
            "fiotray favourite --remove gateway-01",
            "fiotray favourite",
        ),
        codes=(0, 1, 2, 3),
    )
    p.add_argument(
        "device",
        metavar="DEVICE",
        nargs="?",
        help="the device's name, as `fiotray devices` shows it",
    )
    factory_option(p)
    p.add_argument("--remove", action="store_true", help="remove DEVICE from the favourites")
    p.add_argument("--json", action="store_true", help="list the favourites as JSON")
    p.set_defaults(func=cmd_favourite)
