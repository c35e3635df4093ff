"""What the MCP tools return: plain dataclasses (the SDK turns each into the tool's
output schema and its structured result), and the shaping of ops' records into them.

No SDK here: this module is the part of the server that needs none, tested on its own.
Text a server or a device sent is made safe to show (`core.format`), as in the CLI and
the tray; nothing here ever holds a secret (no private key, token or tunnel template:
only the fields named below).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fiotray.core.format import safe_lines, safe_text
from fiotray.core.tunnelstate import State

if TYPE_CHECKING:
    from datetime import datetime

    from fiotray.core.devices import DeviceRow, DeviceRows, VpnState
    from fiotray.core.tunnels import Tunnel, TunnelStatus
    from fiotray.ops.devices import Selector
    from fiotray.ops.reach import Reach
    from fiotray.ops.ssh import RemoteRun, SshCommand

# Devices a listing returns unless asked for more, and the most it ever returns: a
# factory of 50,000 devices must not fill a model's context.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Groups and targets named in a listing's counts, the commonest first.
TOP_VALUES = 10

# Why a tunnel is not connected, for the states whose status has no detail of its own.
WHY_NOT = {
    State.DISCONNECTED: "down: connect_foundries_vpn brings it up",
    State.CONNECTING: "up, waiting for the first handshake with the server (a few seconds)",
    State.WAITING: "up, but the VPN server has not admitted this laptop yet",
    State.STALE: "up, but the server does not answer",
    State.ERROR: "the last request failed",
}
POLKIT_NOTE = (
    "Done through fiotray's privileged helper, started with pkexec: polkit may have shown "
    "a password prompt on the user's desktop (at most once a session, unless the admin "
    "allowed fiotray's group to connect without one)."
)
PENDING_NOTE = (
    "Written to the factory; pending until the device applies it at its next check-in "
    "(up to about 5 minutes). foundries_device_vpn tells when it has (pending false)."
)


@dataclass
class TunnelInfo:
    name: str
    interface: str
    kind: str  # "foundries" (a factory's VPN server) or "plain" (any WireGuard network)
    factory: str | None
    is_default: bool  # the tunnel meant when none is named
    state: str  # disconnected, connecting, waiting, connected, stale or error
    connected: bool
    endpoint: str | None
    handshake_age_seconds: float | None  # since the last handshake; None: never
    rx_bytes: int
    tx_bytes: int
    why_not_connected: str | None
    up_by_someone_else: bool  # up, but not brought up by fiotray for this user


@dataclass
class VpnStatus:
    tunnels: list[TunnelInfo]
    summary: str


@dataclass
class TunnelChange:
    tunnel: TunnelInfo
    message: str


@dataclass
class DeviceInfo:
    name: str
    online: bool  # seen in the last 4 hours
    last_seen: str | None  # ISO 8601; None: never
    target: str
    group: str | None
    tag: str
    vpn: str  # enabled, disabled or pending (a change the device has not applied yet)
    vpn_address: str | None


@dataclass
class DeviceList:
    factory: str
    total_devices: int  # in the factory
    matched: int  # of those, matching the filters
    returned: int  # in `devices`: the first `limit` of the matches, by name
    online: int  # of the matches
    vpn_enabled: int
    vpn_disabled: int
    vpn_pending: int
    top_groups: dict[str, int]  # the matches' commonest device groups, with counts
    top_targets: dict[str, int]
    devices: list[DeviceInfo]
    filters: str  # the filters applied, as given
    narrow: str | None  # when not every match is returned: how to see the rest


@dataclass
class DeviceVpn:
    factory: str
    device: str
    enabled: bool
    address: str | None
    public_key: str | None  # the device's WireGuard public key (public by nature)
    pending: bool  # the device has not applied its current VPN config yet
    applied: bool


@dataclass
class VpnChange:
    factory: str
    device: str
    enabled: bool
    address: str | None
    # pending: written, not applied yet; applied: the device took it; reachable: it also
    # answers over the VPN (an SSH probe through its route got its banner).
    stage: str
    pending: bool
    applied: bool
    reachable: bool | None  # None: not checked (no wait, or a disable)
    reason: str | None  # why the wait ended short of its goal
    message: str


@dataclass
class SshCommandInfo:
    factory: str
    device: str
    route: str  # jump (through the VPN server), direct or public
    argv: list[str]
    command_line: str  # argv quoted for a POSIX shell
    tunnel: str | None  # the factory's tunnel, which the jump and direct routes need up
    tunnel_up: bool | None  # None: the factory has no tunnel
    note: str


@dataclass
class CommandResult:
    factory: str
    device: str
    route: str
    command: str
    exit_status: int | None  # the remote command's, 255 when ssh failed; None: timed out
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    seconds: float
    notes: list[str] = field(default_factory=list)


# -- shaping --------------------------------------------------------------------------


def tunnel_info(
    status: TunnelStatus, tunnel: Tunnel | None, default: str | None, now: float | None = None
) -> TunnelInfo:
    age = status.handshake_age(now)
    connected = status.state is State.CONNECTED
    why = None if connected else (status.detail or WHY_NOT.get(status.state))
    return TunnelInfo(
        name=status.tunnel,
        interface=status.interface,
        kind=tunnel.kind if tunnel else "plain",
        factory=tunnel.factory if tunnel else None,
        is_default=status.tunnel == default,
        state=str(status.state),
        connected=connected,
        endpoint=safe_text(status.endpoint) or None,
        handshake_age_seconds=round(age, 1) if age is not None else None,
        rx_bytes=status.rx_bytes,
        tx_bytes=status.tx_bytes,
        why_not_connected=safe_text(why, 300) if why else None,
        up_by_someone_else=status.foreign,
    )


def status_summary(tunnels: list[TunnelInfo]) -> str:
    if not tunnels:
        return (
            "No tunnel is configured: the user adds one with `fiotray tunnels add-foundries "
            "--factory F` (or the tray's Add tunnel), then asks the server's admin to admit it."
        )
    up = [t.name for t in tunnels if t.connected]
    return f"{len(up)} of {len(tunnels)} tunnels connected" + (f": {', '.join(up)}" if up else "")


def device_info(row: DeviceRow, vpn: str, now: datetime) -> DeviceInfo:
    d = row.device
    return DeviceInfo(
        name=safe_text(d.name),
        online=row.online(now),
        last_seen=d.last_seen.isoformat() if d.last_seen else None,
        target=safe_text(d.target),
        group=safe_text(d.group) if d.group else None,
        tag=safe_text(d.tag),
        vpn=vpn,
        vpn_address=safe_text(row.vpn_address) or None,
    )


def device_list(
    factory: str,
    everything: DeviceRows,
    matched: DeviceRows,
    *,
    limit: int,
    search: str | None,
    where: Selector,
) -> DeviceList:
    """Counts over all of `matched` and the first `limit` of them by name."""
    from datetime import UTC, datetime

    from fiotray.ops.devices import vpn_word

    now = datetime.now(UTC)
    limit = max(1, min(limit, MAX_LIMIT))
    words: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    online = 0
    for row in matched:
        words[vpn_word(row)] += 1
        online += row.online(now)
        groups[row.device.group or "(none)"] += 1
        targets[row.device.target or "(none)"] += 1
    first = heapq.nsmallest(limit, matched, key=lambda r: r.device.name)
    filters = " ".join([*([f"search={search!r}"] if search else []), where.describe()]).strip()
    narrow = None
    if len(matched) > len(first):
        narrow = (
            f"Only the first {len(first)} of {len(matched)} matching devices (by name) are "
            "listed. Narrow with search (words of the name, target, group, tag or address), "
            "tag, group, target (exact or a * pattern), online or vpn; the counts above "
            f"cover every match. limit goes up to {MAX_LIMIT}."
        )
    return DeviceList(
        factory=factory,
        total_devices=len(everything),
        matched=len(matched),
        returned=len(first),
        online=online,
        vpn_enabled=words["enabled"],
        vpn_disabled=words["disabled"],
        vpn_pending=words["pending"],
        top_groups={safe_text(k, 60): n for k, n in groups.most_common(TOP_VALUES)},
        top_targets={safe_text(k, 60): n for k, n in targets.most_common(TOP_VALUES)},
        devices=[device_info(r, vpn_word(r), now) for r in first],
        filters=filters or "none",
        narrow=narrow,
    )


def device_vpn(factory: str, state: VpnState) -> DeviceVpn:
    return DeviceVpn(
        factory=factory,
        device=safe_text(state.device),
        enabled=state.enabled,
        address=safe_text(state.address) or None,
        public_key=safe_text(state.pubkey) or None,
        pending=state.pending,
        applied=not state.pending,
    )


def vpn_change(factory: str, state: VpnState, reach: Reach | None = None) -> VpnChange:
    """The change as written, or (`reach`) as far as the wait followed it."""
    verb = "enabled" if state.enabled else "disabled"
    address = safe_text(state.address) or "none"
    message = f"VPN {verb} on {safe_text(state.device)} (address {address}). "
    stage = "pending" if state.pending else "applied"
    reachable = None
    reason = None
    if reach is not None:
        stage = reach.stage
        reachable = reach.reachable if state.enabled else None
        reason = safe_text(reach.reason, 400) or None
        message += safe_text(reach.summary(), 400) + "."
    else:
        message += PENDING_NOTE if state.pending else "The device has applied it."
    return VpnChange(
        factory=factory,
        device=safe_text(state.device),
        enabled=state.enabled,
        address=safe_text(state.address) or None,
        stage=stage,
        pending=stage == "pending",
        applied=stage != "pending",
        reachable=reachable,
        reason=reason,
        message=message,
    )


def ssh_command_info(cmd: SshCommand, tunnel_up: bool | None) -> SshCommandInfo:
    route = cmd.settings.route
    if tunnel_up is False and route != "public":
        name = cmd.tunnel.name if cmd.tunnel else ""
        note = (
            f"Not run. The {route} route goes through tunnel {name}, which is down: "
            "connect_foundries_vpn first."
        )
    else:
        note = "Not run: the user can run it in a terminal (or `fiotray ssh DEVICE`)."
    return SshCommandInfo(
        factory=cmd.factory,
        device=safe_text(cmd.device),
        route=route,
        argv=[safe_text(a) for a in cmd.argv],
        command_line=safe_text(cmd.line),
        tunnel=cmd.tunnel.name if cmd.tunnel else None,
        tunnel_up=tunnel_up,
        note=note,
    )


def command_result(cmd: SshCommand, command: str, run: RemoteRun, timeout: float) -> CommandResult:
    notes = []
    if run.timed_out:
        notes.append(
            f"Stopped after {timeout:g} s (the timeout); the output is what came before. The "
            "command may still be running on the device: ssh ended, but a device's sshd does "
            "not stop a command that has no terminal."
        )
    if run.stdout_truncated or run.stderr_truncated:
        notes.append("Output beyond the cap was dropped: narrow the command (head, grep).")
    if run.exit_status == 255:
        notes.append(
            "Exit status 255 is ssh's own failure (no route, host key changed, login "
            "refused): stderr says which."
        )
    return CommandResult(
        factory=cmd.factory,
        device=safe_text(cmd.device),
        route=cmd.settings.route,
        command=safe_lines(command),
        exit_status=run.exit_status,
        stdout=safe_lines(run.stdout.decode("utf-8", "replace")),
        stderr=safe_lines(run.stderr.decode("utf-8", "replace")),
        stdout_truncated=run.stdout_truncated,
        stderr_truncated=run.stderr_truncated,
        timed_out=run.timed_out,
        seconds=run.seconds,
        notes=notes,
    )
