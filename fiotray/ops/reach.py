"""From "Enable VPN" to a device that answers: pending, applied, reachable.

After a VPN change is written the device applies it when its agent next checks in
(up to about five minutes), then the factory's VPN server adds its peer at its next
sync (upstream's daemon: every five minutes), and only then does an SSH probe through
the route get the device's banner. `wait_reachable` follows the device through those
stages, says when each was reached, and when the device is not reachable in the time
given, says why in the words a user can act on: VPN not enabled, the device offline or
not applied yet, the tunnel down, the server not letting us in, or the server having no
working peer for the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fiotray.core import format as fmt
from fiotray.core import reach as core_reach
from fiotray.core import session
from fiotray.core.devices import VpnState, validate_device_name
from fiotray.core.errors import AuthError, FiotrayError, NotFoundError
from fiotray.core.services import Services
from fiotray.core.ssh import SshSettings, SshTarget
from fiotray.ops import devices as ops_devices
from fiotray.ops import ssh as ops_ssh

Stage = Literal["pending", "applied", "reachable"]

# The GUI's and `fiotray enable --wait`'s default: an agent checks in within about five
# minutes and upstream's server syncs every five; the rest is margin.
DEFAULT_TIMEOUT = 15 * 60.0
# Waits between reads of the device's config, then between probes: quick at first (the
# fake factory and a fiotray-server sync in seconds), then no more than one every 15 s.
APPLY_POLL = (1.0, 1.0, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0)
PROBE_POLL = (1.0, 1.0, 2.0, 3.0, 5.0, 5.0, 10.0, 15.0)
# A device that has not checked in for this long is offline: agents check in every few
# minutes (fioctl's own "online" allows hours, too long to explain a wait of minutes).
OFFLINE_AFTER = 15 * 60.0


@dataclass(frozen=True)
class Reach:
    """Where a device got to, and how long each part took (seconds; None: not reached)."""

    factory: str
    device: str
    stage: Stage  # the last stage reached
    reason: str  # why it is not reachable; "" when it is
    address: str
    route: str
    apply_s: float | None  # from the change (or the start of the wait) to applied
    sync_s: float | None  # from applied to the first answer, less one probe's time
    probe_s: float | None  # one probe on the working path
    answer: str = ""  # the device's SSH banner
    waited_s: float = 0.0  # from the change (or the start of the wait) to this result

    @property
    def reachable(self) -> bool:
        return self.stage == "reachable"

    @property
    def done(self) -> bool:
        """What was waited for happened (reachable; applied, for a wait until applied)."""
        return not self.reason

    @property
    def total_s(self) -> float | None:
        parts = (self.apply_s, self.sync_s, self.probe_s)
        return None if None in parts else sum(p for p in parts if p is not None)

    def summary(self) -> str:
        """One line: "dev1 is reachable at 10.42.42.5 (applied 3 s, server 12 s, probe 0.2 s)"."""
        if self.reason:
            return (
                f"{self.device} is not reachable after {fmt.duration(self.waited_s)}: {self.reason}"
            )
        if not self.reachable:
            return f"{self.device} applied the change after {_secs(self.apply_s or 0.0)}"
        assert self.apply_s is not None and self.sync_s is not None and self.probe_s is not None
        return (
            f"{self.device} is reachable at {self.address} over the {self.route} route "
            f"(applied after {_secs(self.apply_s)}, server after {_secs(self.sync_s)} more, "
            f"probe {_secs(self.probe_s)})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "name": self.device,
            "stage": self.stage,
            "done": self.done,
            "reachable": self.reachable,
            "reason": self.reason or None,
            "address": self.address or None,
            "route": self.route,
            "seconds": {
                "apply": _round(self.apply_s),
                "server_sync": _round(self.sync_s),
                "probe": _round(self.probe_s),
                "total": _round(self.total_s),
            },
            "answer": self.answer or None,
            "waited": _round(self.waited_s),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else fmt.duration(seconds)


async def _pause(schedule: tuple[float, ...], step: int, deadline: float) -> bool:
    """Sleep the schedule's next wait, cut at the deadline (for one last look then);
    False, at once, when the deadline has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    await asyncio.sleep(min(schedule[min(step, len(schedule) - 1)], left))
    return True


async def _last_seen_s(services: Services, factory: str, device: str) -> float | None:
    """Seconds since the device last checked in; None when it never did or it is unknown."""
    api = await services.client(factory)
    try:
        seen = (await api.get_device(device)).last_seen
    except FiotrayError:
        return None
    return None if seen is None else max(0.0, (datetime.now(UTC) - seen).total_seconds())


def _offline(last_seen: float | None) -> str | None:
    if last_seen is None:
        return "the device has never checked in (it applies VPN changes when it does)"
    if last_seen > OFFLINE_AFTER:
        return (
            f"the device is offline (last seen {fmt.ago(last_seen)}): it applies the change "
            "when it next checks in"
        )
    return None


async def wait_reachable(
    services: Services,
    factory: str,
    device: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    since: float | None = None,
    on_stage: Callable[[Stage, VpnState], None] | None = None,
    route: str | None = None,
    until: Literal["applied", "reachable"] = "reachable",
    probes: asyncio.Semaphore | None = None,
    apply_poll: tuple[float, ...] = APPLY_POLL,
    probe_poll: tuple[float, ...] = PROBE_POLL,
) -> Reach:
    """Follow `device` from its VPN change to an SSH answer, for at most `timeout` s.

    `since` is when the change was written (time.monotonic()); the apply time counts
    from there. `until="applied"` stops once the device applied the change (a disable
    has nothing to probe). `probes` bounds the probes running at once across devices.
    Errors reading the API while waiting are retried until the deadline; a device or
    factory that does not exist (or a sign-in that ran out) raises.
    """
    validate_device_name(device)
    start = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    api = await services.client(factory)
    factory = api.factory
    tunnel = services.tunnels.for_factory(factory)
    settings = ops_ssh.settings_for(services, tunnel, route)

    def result(
        stage: Stage,
        reason: str,
        address: str,
        *,
        apply_s: float | None = None,
        sync_s: float | None = None,
        probe_s: float | None = None,
        answer: str = "",
    ) -> Reach:
        return Reach(
            factory, device, stage, reason, address, settings.route,
            apply_s, sync_s, probe_s, answer, time.monotonic() - start,
        )  # fmt: skip

    # 1. The device applies the change.
    state = await ops_devices.device_vpn(services, factory, device)
    step = 0
    while state.pending:
        if not await _pause(apply_poll, step, deadline):
            why = _offline(await _last_seen_s(services, factory, device))
            return result(
                "pending",
                why or "the device has not applied the change yet (it checks in every few minutes)",
                state.address,
            )
        step += 1
        try:
            state = await ops_devices.applied(services, factory, device)
        except (AuthError, NotFoundError):
            raise  # nothing to wait for: signed out, or the device is gone
        except FiotrayError:
            continue  # a failed read is tried again; the deadline bounds it
    applied = time.monotonic()
    if on_stage is not None:
        on_stage("applied", state)
    if until == "applied":
        return result("applied", "", state.address, apply_s=applied - start)
    if not state.enabled:
        return result("applied", f"VPN is not enabled on {device}", state.address)

    # 2. The server adds its peer; a probe through the route gets the device's banner.
    server_address = await session.vpn_server_address(api, tunnel)
    target = SshTarget(factory, device, state.address, server_address)
    needs_tunnel = settings.route in ops_ssh.THROUGH_TUNNEL
    last: core_reach.Probe | None = None
    down = False
    step = 0
    while True:
        # Jump and direct go through the factory's tunnel: none, or one that is down, stops them.
        down = needs_tunnel and (
            tunnel is None or not services.controller.interface_exists(tunnel.interface)
        )
        if not down:
            async with probes or contextlib.nullcontext():
                last = await _probe(services, target, settings, deadline)
                answered = time.monotonic()
                # The probe that got through also waited for the path (TCP retries
                # while the server had no peer): a second one on the working path
                # says what a probe itself takes, and the rest is the server's sync.
                again = await _probe(services, target, settings, deadline) if last.ok else None
            if last.ok:
                probe_s = again.seconds if again is not None and again.ok else last.seconds
                return result(
                    "reachable",
                    "",
                    state.address,
                    apply_s=applied - start,
                    sync_s=max(0.0, answered - applied - probe_s),
                    probe_s=probe_s,
                    answer=last.detail,
                )
        if not await _pause(probe_poll, step, deadline):
            break
        step += 1

    # Not reachable in time: the likeliest reason first.
    if down:
        if tunnel is None:
            why = f"factory {factory} has no tunnel on this computer for the {settings.route} route"
        else:
            why = f"tunnel {tunnel.name} is not connected: connect it to reach the device"
        return result("applied", why, state.address, apply_s=applied - start)
    assert last is not None
    if last.where == "server":
        why = f"the VPN server did not let this computer through: {last.detail}"
        if "Permission denied" in last.detail:
            # The probe never prompts: a key with a passphrase must be in the agent.
            why += " (a key with a passphrase must be in your SSH agent: ssh-add)"
    else:
        why = _offline(await _last_seen_s(services, factory, device)) or (
            "the VPN server has no working peer for it yet: the server picks up VPN "
            f"changes at its next sync, usually within minutes ({last.detail})"
        )
    return result("applied", why, state.address, apply_s=applied - start)


async def _probe(
    services: Services, target: SshTarget, settings: SshSettings, deadline: float
) -> core_reach.Probe:
    """One probe, shortened to end by the deadline; the demo's devices answer when online."""
    timeout = max(1.0, min(core_reach.PROBE_TIMEOUT, deadline - time.monotonic()))
    if services.is_demo:
        return await _demo_probe(services, target)
    return await core_reach.probe(target, settings, timeout=timeout)


async def _demo_probe(services: Services, target: SshTarget) -> core_reach.Probe:
    # The demo's devices are simulated: one that checked in lately answers, as a real
    # one would once the server has its peer.
    last_seen = await _last_seen_s(services, target.factory, target.device)
    if last_seen is not None and last_seen <= OFFLINE_AFTER:
        return core_reach.Probe(True, "device", "SSH-2.0-OpenSSH_9.6 (simulated)", 0.05)
    return core_reach.Probe(False, "device-path", "the simulated device is offline", 0.05)


async def wait_many(
    services: Services,
    factory: str | None,
    devices: list[str],
    *,
    enable: bool,
    timeout: float = DEFAULT_TIMEOUT,
    since: float | None = None,
    on_stage: Callable[[Stage, VpnState], None] | None = None,
    on_result: Callable[[Reach], None] | None = None,
    concurrent_probes: int = 8,
) -> list[Reach]:
    """`wait_reachable` for each device at once (until applied, for a disable), all with
    one deadline; each result is handed to `on_result` as it comes. A device whose wait
    raised (gone, signed out) is a result with the error as its reason."""
    probes = asyncio.Semaphore(concurrent_probes)
    factory = services.factory(factory).factory
    route = ops_ssh.route(services, factory)

    async def one(device: str) -> Reach:
        try:
            reach = await wait_reachable(
                services,
                factory,
                device,
                timeout=timeout,
                since=since,
                on_stage=on_stage,
                until="reachable" if enable else "applied",
                probes=probes,
            )
        except FiotrayError as exc:
            reach = Reach(factory, device, "pending", str(exc), "", route, None, None, None)
        if on_result is not None:
            on_result(reach)
        return reach

    return list(await asyncio.gather(*(one(d) for d in devices)))


def batch_summary(results: list[Reach], most: int = 3) -> tuple[str, str]:
    """One notification for devices enabled together: ("8 of 10 devices reachable",
    "gw-3: the device is offline …; gw-7: …; 1 more not reachable")."""
    reached = sum(r.reachable for r in results)
    noun = "device" if len(results) == 1 else "devices"
    title = f"{reached} of {len(results)} {noun} reachable"
    failed = [r for r in results if not r.reachable]
    if not failed:
        return title, "Each answers over the VPN."
    parts = [f"{r.device}: {r.reason or 'not reachable'}" for r in failed[:most]]
    if len(failed) > most:
        parts.append(f"{len(failed) - most} more not reachable")
    return title, "; ".join(parts) + "."
