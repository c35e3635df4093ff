"""devices, enable, disable, device-vpn."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import Context, command, plural, table, to_json

if TYPE_CHECKING:
    from fiotray.core.devices import VpnState


async def cmd_devices(args: argparse.Namespace, ctx: Context) -> int:
    import json
    from datetime import UTC, datetime

    from fiotray.core.format import ago, safe_text, vpn_label
    from fiotray.ops import devices

    rows = await devices.list_devices(ctx.services, args.factory, search=args.search)
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

    state = await devices.set_vpn(ctx.services, args.factory, args.device, enable)
    if args.json:
        ctx.out(to_json(state.to_json()))
    else:
        verb = "enabled" if enable else "disabled"
        ctx.out(
            f"VPN {verb} on {safe_text(state.device)} (address {state.address or 'none'}); "
            "pending until the device checks in (up to about 5 minutes)."
        )
    return 0


async def cmd_enable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, True)


async def cmd_disable(args: argparse.Namespace, ctx: Context) -> int:
    return await _set_vpn(args, ctx, False)


# Each command on one device: its one-line help, description and examples.
DEVICE_COMMANDS = (
    (
        "enable",
        "enable VPN on a device (as fioctl devices config wireguard)",
        "Enable VPN on a device: what `fioctl devices config wireguard DEVICE enable`\n"
        "does. The device's wireguard-client config file is written in the factory,\n"
        "keeping its VPN address or giving it the first free one after the server's;\n"
        "no other config file is touched. The change is pending until the device\n"
        "applies it at its next check-in (up to about 5 minutes).",
        ("fiotray enable gateway-01", "fiotray enable gateway-01 --factory acme --json"),
    ),
    (
        "disable",
        "disable VPN on a device, keeping its address and key",
        "Disable VPN on a device: what `fioctl devices config wireguard DEVICE disable`\n"
        "does. The device's wireguard-client config file is written with VPN off; its\n"
        "VPN address and public key are kept, so enabling it again gives it the same\n"
        "address. The change is pending until the device applies it at its next\n"
        "check-in (up to about 5 minutes).",
        ("fiotray disable gateway-01", "fiotray disable gateway-01 --factory acme"),
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
            "Changes nothing. Long names are cut to fit a terminal, whole when piped."
        ),
        examples=(
            "fiotray devices",
            "fiotray devices --factory acme --search gateway",
            "fiotray devices --json",
        ),
        codes=(0, 1, 2, 3),
    )
    factory_option(p)
    p.add_argument(
        "--search",
        "-s",
        metavar="TEXT",
        help="only devices whose name, target, group, tag, uuid or VPN address contains TEXT",
    )
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
            codes=(0, 1, 2, 3),
        )
        p.add_argument(
            "device", metavar="DEVICE", help="the device's name, as `fiotray devices` shows it"
        )
        factory_option(p)
        p.add_argument("--json", action="store_true", help="print the VPN state as JSON")
        p.set_defaults(func=funcs[name])
