"""SSH to devices through the VPN: the command with the user's settings applied, opening
it in a terminal, the ssh config file for every VPN-enabled device, a tunnel's SSH
settings."""

from __future__ import annotations

import asyncio
import contextlib
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


# What a remote command may print before the rest is dropped (per stream), and the longest
# it may run: a command's output goes back to a program that reads it whole.
RUN_OUTPUT_CAP = 64 * 1024
RUN_TIMEOUT = 30.0
_READ_CHUNK = 16 * 1024


@dataclass(frozen=True)
class RemoteRun:
    """What a command run on a device over SSH did: its exit status (None when it was
    stopped at the timeout), and the first `RUN_OUTPUT_CAP` bytes of each stream."""

    exit_status: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    seconds: float


def batch_argv(cmd: SshCommand) -> list[str]:
    """`cmd`'s argv for a run nobody watches: no prompt (a missing key or an unknown jump
    host fails at once instead of waiting for a password), no terminal, no stdin."""
    # First after the program: ssh keeps the first value of an option, so a user's
    # BatchMode=no in the tunnel's extra options cannot bring a prompt back.
    return [cmd.argv[0], "-o", "BatchMode=yes", "-T", "-n", *cmd.argv[1:]]


async def run_remote(
    services: Services,
    cmd: SshCommand,
    *,
    timeout: float = RUN_TIMEOUT,
    max_output: int = RUN_OUTPUT_CAP,
) -> RemoteRun:
    """Run `cmd` (an `SshCommand` with its remote command) and collect what it prints,
    stopping ssh (and its jump hop) after `timeout` seconds. A route through a tunnel
    that is down is refused first, as `fiotray ssh` refuses it."""
    import signal
    import time

    check_tunnel(services, cmd)
    argv = batch_argv(cmd)
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ASKPASS", "DISPLAY")}
    env["SSH_ASKPASS_REQUIRE"] = "never"
    started = time.monotonic()
    # A session of its own: no controlling terminal to prompt on, and one signal stops
    # ssh with the ssh it starts for the jump hop.
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )

    async def collect(stream: asyncio.StreamReader | None) -> tuple[bytes, bool]:
        kept = bytearray()
        dropped = False
        if stream is None:  # pragma: no cover - both pipes are asked for
            return b"", False
        # Read to the end even past the cap: a writer blocked on a full pipe never exits.
        while chunk := await stream.read(_READ_CHUNK):
            room = max_output - len(kept)
            kept += chunk[:room]
            dropped = dropped or len(chunk) > room
        return bytes(kept), dropped

    readers = asyncio.gather(collect(proc.stdout), collect(proc.stderr), proc.wait())
    timed_out = False
    try:
        (out, out_cut), (err, err_cut), status = await asyncio.wait_for(
            asyncio.shield(readers), timeout
        )
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    if timed_out:
        (out, out_cut), (err, err_cut), _ = await readers
        status = None
    return RemoteRun(
        exit_status=status,
        stdout=out,
        stderr=err,
        stdout_truncated=out_cut,
        stderr_truncated=err_cut,
        timed_out=timed_out,
        seconds=round(time.monotonic() - started, 3),
    )
