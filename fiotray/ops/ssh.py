"""SSH to devices through the VPN: the command with the user's settings applied, opening
it in a terminal, the ssh config file for every VPN-enabled device, a tunnel's SSH
settings."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiotray.core import errors, session
from fiotray.core import ssh as core_ssh
from fiotray.core.devices import validate_device_name
from fiotray.core.errors import VpnError
from fiotray.core.services import Services
from fiotray.core.ssh import SshSettings
from fiotray.core.tunnels import Tunnel

# Routes that go through the factory's tunnel (public goes through the server's own SSH).
THROUGH_TUNNEL = ("jump", "direct")


def settings_for(
    services: Services, tunnel: Tunnel | None, route: str | None = None
) -> SshSettings:
    """How SSH reaches the factory's devices: the user's defaults (Settings: login and
    route), then what the factory's tunnel says, then `route` if one was asked for."""
    user = services.settings.load()
    defaults = {"user": user.ssh_user, "route": user.ssh_route}
    return session.ssh_settings(tunnel, route, defaults)


def route(services: Services, factory: str) -> str:
    """The route SSH takes to the factory's devices when none is asked for."""
    return settings_for(services, services.tunnels.for_factory(factory)).route


@dataclass(frozen=True)
class SshCommand:
    factory: str
    device: str
    argv: list[str]
    settings: SshSettings
    tunnel: Tunnel | None  # the factory's tunnel, if it has one
    target: core_ssh.SshTarget  # where the device is (scp and probes build on it)

    @property
    def line(self) -> str:
        """The argv as one shell line, to copy or print."""
        return core_ssh.ssh_command_line(self.argv)

    @property
    def title(self) -> str:
        """A terminal's title: several sessions open at once say which device each is."""
        return f"{self.device} — {self.factory} (fiotray SSH)"


async def command(
    services: Services,
    factory: str | None,
    device: str,
    *,
    route: str | None = None,
    remote: Sequence[str] = (),
) -> SshCommand:
    """The ssh argv that reaches `device` (one wireguard-ips call), running `remote` if given."""
    validate_device_name(device)
    api = await services.client(factory)
    tunnel = services.tunnels.for_factory(api.factory)
    (target,) = await session.ssh_targets(api, tunnel, device)
    settings = settings_for(services, tunnel, route)
    argv = core_ssh.ssh_argv(target, settings, command=remote)
    return SshCommand(api.factory, device, argv, settings, tunnel, target)


def check_tunnel(services: Services, cmd: SshCommand) -> None:
    """Refuse a route through a tunnel that is down, with what to run instead."""
    tunnel = cmd.tunnel
    if cmd.settings.route not in THROUGH_TUNNEL or tunnel is None:
        return
    if not services.controller.interface_exists(tunnel.interface):
        raise VpnError(
            f"Tunnel {tunnel.name} is down and the {cmd.settings.route} route goes through it: "
            f"run `fiotray connect {tunnel.name}` first.",
            code=errors.TUNNEL_DOWN,
        )


async def open_terminal(services: Services, cmd: SshCommand) -> int:
    """Open the user's terminal running `cmd`; remember the device among the recent ones.
    Returns the terminal's pid."""
    from fiotray.core import terminal

    check_tunnel(services, cmd)
    setting = services.settings.load().terminal or None
    argv = terminal.held_on_failure(cmd.argv, cmd.title) if os.name == "posix" else cmd.argv
    pid = await terminal.launch_in_terminal(argv, setting=setting, title=cmd.title)
    await asyncio.to_thread(services.settings.update, lambda s: s.remember(cmd.factory, cmd.device))
    return pid


@dataclass(frozen=True)
class SshConfigWritten:
    factory: str
    path: Path
    hosts: int
    include_line: str  # what ~/.ssh/config needs once


async def write_config(
    services: Services, factory: str | None = None, output: Path | None = None
) -> SshConfigWritten:
    """An ssh config with a `Host fiotray.<factory>.<device>` for every VPN-enabled device."""
    api = await services.client(factory)
    tunnel = services.tunnels.for_factory(api.factory)
    targets = await session.ssh_targets(api, tunnel, None)
    settings = settings_for(services, tunnel)
    path = output or core_ssh.default_ssh_config_path(api.factory)
    text = core_ssh.render_ssh_config(
        api.factory, [(t, settings) for t in targets], include_path=path
    )
    await asyncio.to_thread(core_ssh.write_ssh_config, path, text, own_dir=output is None)
    return SshConfigWritten(api.factory, path, len(targets), core_ssh.include_line(output))


def configure_tunnel(services: Services, name: str, changes: dict[str, Any]) -> SshSettings:
    """A tunnel's own SSH settings, changed by `changes` (checked first; nothing is saved
    when one is refused). No changes: the settings as they are."""
    tunnel = services.tunnels.get(name)
    current = session.ssh_settings(tunnel, None)
    updated = dataclasses.replace(current, **changes).validated()
    if changes:
        builtin = SshSettings()
        stored = {k: v for k, v in dataclasses.asdict(updated).items() if v != getattr(builtin, k)}
        if "extra_options" in stored:
            stored["extra_options"] = list(stored["extra_options"])
        services.tunnels.save(dataclasses.replace(tunnel, ssh=stored))
    return updated
