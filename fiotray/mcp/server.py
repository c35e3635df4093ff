"""The MCP tools: thin wrappers over `fiotray.ops`, as the CLI and the GUI are.

Needs the MCP Python SDK (`pip install 'fiotray[mcp]'`); nothing else in fiotray imports
this module except `fiotray mcp`, so neither the tray nor the rest of the CLI loads it.

Each tool's schema comes from its type hints, its description is written for a model to
act on, its annotations say whether it reads or changes things, and its result is one
of `fiotray.mcp.results`' dataclasses. A `FiotrayError` becomes a tool error with the
message the CLI prints; anything else becomes a short tool error that names the log
file, where the traceback goes (never to the client: a traceback can hold anything).
"""

# No `from __future__ import annotations`: the SDK reads the tools' hints at run time.

import logging
import os
import sys
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from fiotray.core.errors import FiotrayError
from fiotray.core.services import Services
from fiotray.mcp import guide
from fiotray.mcp.results import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    POLKIT_NOTE,
    CommandResult,
    DeviceList,
    DeviceVpn,
    SshCommandInfo,
    TunnelChange,
    TunnelInfo,
    VpnChange,
    VpnStatus,
    command_result,
    device_list,
    device_vpn,
    ssh_command_info,
    status_summary,
    tunnel_info,
    vpn_change,
)

log = logging.getLogger(__name__)

RUN_TOOL = "run_on_foundries_device"
COMMANDS_OFF = (
    f"{RUN_TOOL} is off: the user starts the server with `fiotray mcp --allow-commands` "
    "to allow it."
)
NOT_ALLOWED = "not-allowed"  # the error code of a refusal by the server's policy
MAX_RUN_TIMEOUT = 300.0
MAX_COMMAND = 4096
MAX_WAIT = 900.0  # as the GUI's wait for a VPN change: 15 minutes

Factory = Annotated[
    str | None,
    Field(description="The factory's name; omit for the only or the default signed-in factory."),
]
DeviceName = Annotated[
    str, Field(description="The device's name, as list_foundries_devices gives it.")
]
Search = Annotated[
    str | None,
    Field(
        description="Words that must each appear in the device's name, uuid, target, group, "
        "tag or VPN address (case-insensitive)."
    ),
]
Tag = Annotated[str | None, Field(description="Update tag: exact, or a * ? pattern.")]
Group = Annotated[str | None, Field(description="Device group: exact, or a * ? pattern.")]
Target = Annotated[str | None, Field(description="Target name: exact, or a * ? pattern.")]
Online = Annotated[
    bool | None,
    Field(description="true: only devices seen in the last 4 hours; false: only the others."),
]
VpnFilter = Annotated[
    Literal["enabled", "disabled", "pending"] | None,
    Field(description="Only devices in this VPN state (pending: a change not applied yet)."),
]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="The most devices to return.")]
Wait = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT,
        description="Seconds to follow the device after writing: until it applied the "
        "change and, for enable, answers over the VPN. 0: return at once (pending). "
        "Devices check in every few minutes: 300-600 covers most; the call lasts that long.",
    ),
]
TunnelName = Annotated[
    str | None,
    Field(description="The tunnel's name (see foundries_vpn_status); omit for the default tunnel."),
]
Route = Annotated[
    Literal["jump", "direct", "public"] | None,
    Field(
        description="How SSH reaches the device: jump (through the VPN server over the "
        "tunnel; the usual one), direct (to the device's VPN address; only where the "
        "server forwards with NAT) or public (through the server's public SSH, no tunnel). "
        "Omit for the user's setting."
    ),
]


@dataclass(frozen=True)
class Policy:
    """What the person who started the server allowed: running commands on devices, and
    on which (shell-style patterns over device names; empty: every device)."""

    allow_commands: bool = False
    devices: tuple[str, ...] = ()

    def check_device(self, device: str) -> None:
        if not self.allow_commands:
            raise FiotrayError(COMMANDS_OFF, code=NOT_ALLOWED)
        if self.devices and not any(fnmatchcase(device, g) for g in self.devices):
            raise FiotrayError(
                f"Commands are not allowed on {device[:80]!r}: the server allows them only on "
                f"devices matching {' '.join(self.devices)} (fiotray mcp --devices).",
                code=NOT_ALLOWED,
            )


class FiotrayMCP(FastMCP):
    """FastMCP whose tool failures read as the CLI's one-line messages."""

    def __init__(self, policy: Policy, log_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.log_path = log_path

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        if name == RUN_TOOL and not self.policy.allow_commands:
            # Not listed then, but a client may call it anyway: say how to turn it on.
            return error_result(COMMANDS_OFF, NOT_ALLOWED)
        try:
            return await super().call_tool(name, arguments)
        except ToolError as exc:
            return self.failure(name, exc)

    def failure(self, name: str, exc: ToolError) -> CallToolResult:
        cause = exc.__cause__
        if isinstance(cause, FiotrayError):
            log.info("%s: %s", name, cause)
            return error_result(str(cause), cause.code)
        if isinstance(cause, ValidationError):
            # The field and what is wrong with it, never the value (it came from the model,
            # and could be anything).
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in cause.errors(include_url=False, include_input=False)
            )
            return error_result(f"Invalid arguments for {name}: {problems}", "usage")
        if cause is None:  # the SDK's own: an unknown tool
            return error_result(str(exc), "usage")
        log.error("%s failed unexpectedly", name, exc_info=cause)
        return error_result(
            f"{name} failed unexpectedly ({type(cause).__name__}); the details are in "
            f"fiotray's log file, {self.log_path}.",
            "internal",
        )


def error_result(message: str, code: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        isError=True,
        _meta={"fiotray/code": code},
    )


def read_only(title: str) -> ToolAnnotations:
    """A tool that only reads, from the factory's API (the open world)."""
    return ToolAnnotations(title=title, readOnlyHint=True, openWorldHint=True)


def build_server(services: Services, policy: Policy, *, log_path: str = "") -> FiotrayMCP:
    """The server with every tool over `services` (`run_on_foundries_device` only when
    `policy` allows commands)."""
    from fiotray.ops import devices, reach, ssh, tunnels

    server = FiotrayMCP(
        policy,
        log_path,
        name="fiotray",
        instructions=guide.INSTRUCTIONS,
        log_level="WARNING",
    )

    def factory_name(factory: str | None) -> str:
        return services.factory(factory).factory

    async def infos(name: str | None = None) -> list[TunnelInfo]:
        statuses = await tunnels.status(services, name)
        known = {t.name: t for t in tunnels.list_tunnels(services)}
        default = tunnels.default_tunnel(services)
        now = time.time()
        return [
            tunnel_info(s, known.get(s.tunnel), default.name if default else None, now)
            for s in statuses
        ]

    @server.tool(
        annotations=ToolAnnotations(
            title="Foundries VPN status", readOnlyHint=True, openWorldHint=False
        )
    )
    async def foundries_vpn_status(tunnel: TunnelName = None) -> VpnStatus:
        """The state of this laptop's WireGuard tunnels (or of one), read from the system:
        disconnected, connecting, waiting (up, but the VPN server has not admitted this
        laptop yet), connected (a handshake in the last 3 minutes), stale (the server does
        not answer) or error; with the handshake's age, bytes in and out, and why a tunnel
        is not connected. Changes nothing and never asks for a password. Call it before
        connecting, and before SSH to a device over the jump or direct route, which need
        the factory's tunnel connected."""
        found = await infos(tunnel)
        return VpnStatus(tunnels=found, summary=status_summary(found))

    @server.tool(
        annotations=ToolAnnotations(
            title="Connect Foundries VPN",
            readOnlyHint=False,
            destructiveHint=False,
            idempotentHint=True,
            openWorldHint=True,
        )
    )
    async def connect_foundries_vpn(
        tunnel: TunnelName = None,
        wait_seconds: Annotated[
            float,
            Field(ge=0, le=60, description="How long to wait for the first handshake."),
        ] = tunnels.CONNECT_WAIT,
    ) -> TunnelChange:
        """Bring a tunnel up (the default one when none is named) through fiotray's
        privileged helper, exactly as the tray does: polkit may show a password prompt on
        the user's desktop, so tell the user before calling, and the call lasts until they
        answer it. Then waits up to wait_seconds for the first handshake. A tunnel already
        up is left as it is. The result's state says what happened: connected; waiting
        (the server has not admitted this laptop: its admin must add the laptop's key);
        stale (the server does not answer). A dismissed prompt is an error, and nothing
        changed."""
        status = await tunnels.connect(services, tunnel, wait=wait_seconds)
        (info,) = await infos(status.tunnel)
        message = POLKIT_NOTE
        if not info.connected and info.why_not_connected:
            message = f"Tunnel {info.name} is up but {info.state}: {info.why_not_connected}. "
            message += POLKIT_NOTE
        return TunnelChange(tunnel=info, message=message)

    @server.tool(
        annotations=ToolAnnotations(
            title="Disconnect Foundries VPN",
            readOnlyHint=False,
            destructiveHint=True,
            idempotentHint=True,
            openWorldHint=False,
        )
    )
    async def disconnect_foundries_vpn(tunnel: TunnelName = None) -> TunnelChange:
        """Take a tunnel down (the default one when none is named) through fiotray's
        privileged helper, as the tray does (polkit may show a password prompt on the
        user's desktop). Every SSH session and port forward through the tunnel stops, so
        ask the user first. Only a tunnel fiotray brought up for this user is taken down;
        one already down stays down."""
        status = await tunnels.disconnect(services, tunnel)
        (info,) = await infos(status.tunnel)
        message = f"Tunnel {info.name} is {info.state}. {POLKIT_NOTE}"
        return TunnelChange(tunnel=info, message=message)

    @server.tool(annotations=read_only("List Foundries devices"))
    async def list_foundries_devices(
        factory: Factory = None,
        search: Search = None,
        tag: Tag = None,
        group: Group = None,
        target: Target = None,
        online: Online = None,
        vpn: VpnFilter = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> DeviceList:
        """The factory's devices with their online and VPN state (enabled, disabled, or
        pending until the device applies a change), VPN address, target, group and tag,
        narrowed by the filters given (all must match). Factories can hold tens of
        thousands of devices: the result counts every match (online, each VPN state, the
        commonest groups and targets) but lists only the first `limit` by name, and says
        how to narrow when there are more. Use it to find a device's exact name before the
        other device tools. Changes nothing."""
        where = devices.Selector(tag=tag, group=group, target=target, online=online, vpn=vpn)
        rows = await devices.list_devices(services, factory)
        matched = devices.filter_rows(rows, search=search, where=where)
        return device_list(
            factory_name(factory), rows, matched, limit=limit, search=search, where=where
        )

    @server.tool(annotations=read_only("A device's VPN state"))
    async def foundries_device_vpn(device: DeviceName, factory: Factory = None) -> DeviceVpn:
        """One device's VPN configuration as the factory holds it (enabled, VPN address,
        the device's WireGuard public key) and whether the device has applied it yet
        (pending: not yet; a device applies changes at its next check-in, up to about 5
        minutes). Use it to follow an enable or disable until it is applied. Changes
        nothing."""
        state = await devices.device_vpn(services, factory, device)
        return device_vpn(factory_name(factory), state)

    async def set_vpn(device: str, factory: str | None, enable: bool, wait: float) -> VpnChange:
        since = time.monotonic()
        state = await devices.set_vpn(services, factory, device, enable)
        name = factory_name(factory)
        if not wait:
            return vpn_change(name, state)
        # As `fiotray enable --wait`: until applied and, for an enable, answering.
        (followed,) = await reach.wait_many(
            services, name, [state.device], enable=enable, timeout=wait, since=since
        )
        return vpn_change(name, state, followed)

    @server.tool(
        annotations=ToolAnnotations(
            title="Enable VPN on a device",
            readOnlyHint=False,
            destructiveHint=False,
            idempotentHint=True,
            openWorldHint=True,
        )
    )
    async def enable_foundries_vpn_device(
        device: DeviceName, factory: Factory = None, wait_seconds: Wait = 0
    ) -> VpnChange:
        """Enable VPN on a device, writing exactly what `fioctl devices config wireguard
        DEVICE enable` writes: the device keeps its VPN address or gets the first free
        one, and no other config file changes. Refused for a device without a WireGuard
        public key or a factory without a VPN server. The change is pending until the
        device applies it at its next check-in (up to about 5 minutes); then the VPN
        server adds its peer. With wait_seconds the call follows the device that long:
        stage says how far it got (pending, applied, reachable: it answers over SSH) and
        reason why not further. Without, follow it with foundries_device_vpn. Enabling an
        enabled device rewrites the same config."""
        return await set_vpn(device, factory, True, wait_seconds)

    @server.tool(
        annotations=ToolAnnotations(
            title="Disable VPN on a device",
            readOnlyHint=False,
            destructiveHint=True,
            idempotentHint=True,
            openWorldHint=True,
        )
    )
    async def disable_foundries_vpn_device(
        device: DeviceName, factory: Factory = None, wait_seconds: Wait = 0
    ) -> VpnChange:
        """Disable VPN on a device, writing exactly what `fioctl devices config wireguard
        DEVICE disable` writes; the device keeps its address and key, so enabling it again
        gives the same address. Once the device applies it (pending until its next
        check-in, up to about 5 minutes; wait_seconds waits for that) nobody reaches it
        over the VPN: ask the user first."""
        return await set_vpn(device, factory, False, wait_seconds)

    @server.tool(annotations=read_only("SSH command for a device"))
    async def foundries_ssh_command(
        device: DeviceName, factory: Factory = None, route: Route = None
    ) -> SshCommandInfo:
        """The exact ssh command (argv and a shell line) that reaches a VPN-enabled device
        with the user's SSH settings: login, route, jump host, key, host key checks under
        an alias of the device's own. It is not run: give it to the user, or tell them
        `fiotray ssh DEVICE`. Says whether the route's tunnel is up. Fails for a device
        whose VPN is not enabled."""
        cmd = await ssh.command(services, factory, device, route=route)
        up = None
        if cmd.tunnel is not None:
            up = services.controller.interface_exists(cmd.tunnel.interface)
        return ssh_command_info(cmd, up)

    if policy.allow_commands:

        @server.tool(
            annotations=ToolAnnotations(
                title="Run a command on a device",
                readOnlyHint=False,
                destructiveHint=True,
                idempotentHint=False,
                openWorldHint=True,
            )
        )
        async def run_on_foundries_device(
            device: DeviceName,
            command: Annotated[
                str,
                Field(
                    min_length=1,
                    max_length=MAX_COMMAND,
                    description="One shell command line, run by the device login's shell.",
                ),
            ],
            factory: Factory = None,
            route: Route = None,
            timeout_seconds: Annotated[
                float, Field(gt=0, le=MAX_RUN_TIMEOUT, description="Stop it after this long.")
            ] = ssh.RUN_TIMEOUT,
        ) -> CommandResult:
            """Run one command on a device over SSH through the VPN, as the user (host keys
            checked: a changed key is refused; no password prompt: the user's key must
            work unattended). Returns the exit status, stdout and stderr (each cut at 64
            KiB), and whether it timed out (a command still running then may go on
            running on the device). No terminal and no input: interactive programs fail.
            It acts on real hardware: prefer read-only commands, and ask the user before
            anything that changes the device. Only on the devices the user allowed when
            starting the server."""
            policy.check_device(device)
            cmd = await ssh.command(services, factory, device, route=route, remote=[command])
            run = await ssh.run_remote(services, cmd, timeout=timeout_seconds)
            return command_result(cmd, command, run, timeout_seconds)

    @server.resource(
        "fiotray://guide",
        name="fiotray-guide",
        description="How the fiotray tools fit together: routes, pending changes, errors.",
        mime_type="text/markdown",
    )
    def fiotray_guide() -> str:
        return guide.GUIDE

    return server


async def serve(services: Services, policy: Policy, *, log_path: str = "") -> None:
    """Serve MCP on standard input and output until the client closes them."""
    server = build_server(services, policy, log_path=log_path)
    protocol = _protocol_stdout()
    try:
        await server.run_stdio_async()
    finally:
        protocol.close()


def _protocol_stdout() -> Any:
    """Keep file descriptor 1 for the protocol alone: the SDK writes to a private copy of
    it (as `sys.stdout`), and fd 1 itself becomes stderr, so whatever else writes there
    (ssh, pkexec, a library) reaches the client's log instead of breaking the protocol."""
    sys.stdout.flush()
    copy = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(copy, "w", encoding="utf-8", newline="\n")
    return sys.stdout
