"""Copy files to and from a device over its SSH route (scp through core.transfer).

The route, settings and tunnel check are the SSH command's (`ops.ssh`): a copy goes
where ``fiotray ssh`` goes, and is refused while the tunnel it needs is down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fiotray.core import transfer as core_transfer
from fiotray.core.devices import validate_device_name
from fiotray.core.errors import FiotrayError
from fiotray.core.services import Services
from fiotray.core.ssh import SshSettings, SshTarget
from fiotray.core.transfer import CopyJob, CopyPlan, CopyProgress, CopyResult
from fiotray.ops import ssh as ops_ssh

Progress = Callable[[CopyProgress], None]


@dataclass(frozen=True)
class RemotePath:
    device: str
    path: str


def parse_remote(arg: str) -> RemotePath | None:
    """``DEVICE:PATH`` as a `RemotePath`; None for a local path.

    A local path with a ':' is written with a '/' before it (``./a:b``), as for scp:
    what precedes the first ':' must be a device name, which has no '/'.
    """
    device, colon, path = arg.partition(":")
    if not colon or not device or "/" in device:
        return None
    validate_device_name(device)
    return RemotePath(device, core_transfer.validate_remote_path(path))


async def _route(
    services: Services, factory: str | None, device: str, route: str | None
) -> tuple[SshTarget, SshSettings]:
    """Where the device is and how SSH reaches it (`ops.ssh.command`'s lookup: one
    wireguard-ips call); refused when the route's tunnel is down."""
    cmd = await ops_ssh.command(services, factory, device, route=route)
    ops_ssh.check_tunnel(services, cmd)
    return cmd.target, cmd.settings


async def plan_to(
    services: Services,
    factory: str | None,
    device: str,
    sources: Sequence[str | os.PathLike[str]],
    dest_path: str,
    *,
    route: str | None = None,
    recursive: bool = False,
) -> CopyPlan:
    """The scp run that copies local `sources` to `dest_path` on `device` (nothing runs)."""
    target, settings = await _route(services, factory, device, route)
    return core_transfer.plan_upload(target, settings, sources, dest_path, recursive=recursive)


async def plan_from(
    services: Services,
    factory: str | None,
    device: str,
    source_path: str,
    dest: str | os.PathLike[str],
    *,
    route: str | None = None,
    recursive: bool = False,
) -> CopyPlan:
    """The scp run that copies `source_path` on `device` to local `dest` (nothing runs)."""
    target, settings = await _route(services, factory, device, route)
    return core_transfer.plan_download(target, settings, source_path, dest, recursive=recursive)


async def run(
    plan: CopyPlan, progress: Progress | None = None, job: CopyJob | None = None
) -> CopyResult:
    """Run `plan`; a failure raises FiotrayError (code copy-failed) with scp's reason in one
    line; a cancelled copy (`job.cancel()`) returns its partial result."""
    job = job or CopyJob(plan)
    result = await job.run(progress)
    if not result.ok and not result.cancelled:
        raise FiotrayError(result.error or "The copy failed.", code=core_transfer.COPY_FAILED)
    return result
