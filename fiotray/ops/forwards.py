"""Port forwards to devices: start, list, stop, saved forwards and their restore, and a
supervisor that restarts a forward that dropped.

A forward is a detached `ssh -f -N -L|-R` (see `fiotray.core.forward`): it outlives the
command that started it, so every start is recorded in running.json and any later
command (or the tray) lists and stops it by its control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from fiotray.core import forward as core
from fiotray.core.errors import FiotrayError
from fiotray.core.forward import Forward, ForwardSpec, Kind, RunningForwards, SavedForwards
from fiotray.core.services import Services

log = logging.getLogger(__name__)

# ssh's own ConnectTimeout is 10 s per hop (two with the jump route), plus the time to
# authenticate: past this the forward is abandoned with what its log says.
START_TIMEOUT = 45.0
# `ssh -O check|exit` talk to a local socket: an answer takes milliseconds.
CONTROL_TIMEOUT = 5.0
# After `ssh -O exit` the master ends at once; past this it is sent SIGTERM.
EXIT_GRACE = 3.0
SSH = "ssh"


@dataclass(frozen=True)
class Stores:
    saved: SavedForwards
    running: RunningForwards


def stores(services: Services) -> Stores:
    """The user's (or the demo's own, in its temp dir) saved and running forwards."""
    config_dir = services.tunnels.config_dir
    base = config_dir.parent / "run" if services.is_demo else None
    return Stores(SavedForwards(config_dir), RunningForwards(core.forwards_runtime_dir(base)))


# -- the ssh control socket -------------------------------------------------------------


async def _control(control_path: str, operation: Literal["check", "exit"]) -> tuple[int, str]:
    """`ssh -O operation` on a forward's socket: (exit code, what it said)."""
    argv = core.control_argv(SSH, control_path, operation)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(CONTROL_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 255, f"ssh -O {operation} did not answer within {CONTROL_TIMEOUT:g} s"
    return proc.returncode or 0, out.decode("utf-8", "replace").strip()


async def is_alive(forward: Forward) -> bool:
    """Its ssh runs (the pid is that ssh, not a reused number) and its socket answers."""
    if not core.pid_is_forward(forward.pid, forward.control_path):
        return False
    code, _ = await _control(forward.control_path, "check")
    return code == 0


async def _wait_gone(pid: int, control_path: str, timeout: float) -> bool:
    """Whether the forward's ssh ended within `timeout`. It is not our child (ssh -f
    forked it away), so its end is awaited through a pidfd where there is one."""
    if not core.pid_is_forward(pid, control_path):
        return True
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        ended = loop.create_future()
        loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
        try:
            async with asyncio.timeout(timeout):
                await ended
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    # No pidfd (not Linux): look again every 50 ms, bounded.
    deadline = loop.time() + timeout
    while core.pid_is_forward(pid, control_path):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _remove_files(forward: Forward) -> None:
    for path in (forward.control_path, forward.log_path):
        with contextlib.suppress(OSError):
            os.unlink(path)


# -- start ------------------------------------------------------------------------------


async def start(
    services: Services,
    factory: str | None,
    device: str,
    remote_port: int,
    *,
    kind: Kind = "local",
    local_port: int | None = None,
    route: str | None = None,
    save: bool = False,
    timeout: float = START_TIMEOUT,
) -> Forward:
    """Start a forward and return once it is up (or raise with ssh's reason)."""
    from fiotray.ops import ssh

    # Checked before anything is looked up or started.
    ForwardSpec(factory or "x", device, kind, remote_port, local_port, route).validated()
    cmd = await ssh.command(services, factory, device, route=route)
    ssh.check_tunnel(services, cmd)
    asked_port = local_port
    if kind == "local" and local_port is None:
        local_port = core.pick_free_port()
    if services.is_demo:
        # Its devices and tunnel are simulated: ssh would only time out after seconds.
        raise FiotrayError(
            "The demo's devices are simulated: port forwards need a real device "
            "(sign in to your factory)."
        )
    spec = ForwardSpec(
        cmd.factory, device, kind, remote_port, local_port, cmd.settings.route
    ).validated()
    assert spec.local_port is not None
    st = stores(services)
    forward_id = core.new_forward_id()
    control, log_path = st.running.paths_for(forward_id)
    argv = core.forward_argv(cmd.argv, kind, spec.local_port, remote_port, control)
    log.debug("forward %s: %s", forward_id, argv)
    log_fd = core.open_log(log_path)
    try:
        # Its own session: the forward outlives this command and a Ctrl-C in its terminal.
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_fd,
            start_new_session=True,
        )
    except OSError as exc:
        raise FiotrayError(f"Cannot run ssh: {exc.strerror or exc}.") from None
    finally:
        os.close(log_fd)
    what = f"The forward to {device} port {remote_port}"
    try:
        async with asyncio.timeout(timeout):
            code = await proc.wait()
    except (TimeoutError, asyncio.CancelledError) as exc:
        # Everything it started (the jump hop too) is in its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        await proc.wait()
        tail = core.log_tail(log_path)
        with contextlib.suppress(OSError):
            os.unlink(log_path)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise FiotrayError(
            f"{what} did not come up within {timeout:g} s{': ' + tail if tail else ''}."
        ) from None
    if code != 0:
        tail = core.log_tail(log_path) or f"ssh exited with status {code}"
        with contextlib.suppress(OSError):
            os.unlink(log_path)
        raise FiotrayError(f"{what} failed: {tail}")
    check, said = await _control(control, "check")
    pid = core.master_pid(said) if check == 0 else None
    if pid is None:
        raise FiotrayError(f"{what} started, but its control socket does not answer: {said}")
    forward = Forward(
        id=forward_id,
        spec=spec,
        route=cmd.settings.route,
        pid=pid,
        control_path=control,
        log_path=log_path,
        started=core.now(),
    )
    st.running.add(forward)
    if save:
        # As asked: no --local saves "a free port", picked again at each restore.
        await asyncio.to_thread(st.saved.add, replace(spec, route=route, local_port=asked_port))
    return forward


# -- list and stop ----------------------------------------------------------------------


async def list_forwards(services: Services) -> list[Forward]:
    """Every recorded forward, each checked: `alive` False for one that dropped."""
    running = await asyncio.to_thread(stores(services).running.load)
    checks = await asyncio.gather(*(is_alive(f) for f in running))
    return [f.with_alive(ok) for f, ok in zip(running, checks, strict=True)]


def find(services: Services, forward_id: str) -> Forward:
    core.validate_forward_id(forward_id)
    for forward in stores(services).running.load():
        if forward.id == forward_id:
            return forward
    raise FiotrayError(f"No forward {forward_id} (`fiotray forward list` shows them).")


async def stop_forward(services: Services, forward: Forward, *, forget: bool = False) -> None:
    """End exactly this forward: its socket's `ssh -O exit`, then SIGTERM to its own pid
    if it lingers. Nothing else is signalled."""
    if core.pid_is_forward(forward.pid, forward.control_path):
        await _control(forward.control_path, "exit")
        if not await _wait_gone(forward.pid, forward.control_path, EXIT_GRACE):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(forward.pid, signal.SIGTERM)
            await _wait_gone(forward.pid, forward.control_path, EXIT_GRACE)
    st = stores(services)
    await asyncio.to_thread(st.running.remove, forward.id)
    _remove_files(forward)
    if forget:
        await asyncio.to_thread(st.saved.remove, forward.spec)


async def stop(services: Services, forward_id: str, *, forget: bool = False) -> Forward:
    forward = find(services, forward_id)
    await stop_forward(services, forward, forget=forget)
    return forward


async def stop_all(services: Services) -> list[Forward]:
    running = await asyncio.to_thread(stores(services).running.load)
    await asyncio.gather(*(stop_forward(services, f) for f in running))
    return running


# -- saved forwards ---------------------------------------------------------------------


def saved(services: Services) -> list[ForwardSpec]:
    return stores(services).saved.load()


@dataclass(frozen=True)
class Restored:
    spec: ForwardSpec
    forward: Forward | None  # None: already running, or failed
    error: str | None = None
    already: bool = False
    code: str | None = None  # the error's code (tunnel-down: the tray waits for the tunnel)


async def restore(services: Services, factory: str | None = None) -> list[Restored]:
    """Start every saved forward (of `factory`, if given) that is not running."""
    specs = [s for s in saved(services) if factory is None or s.factory == factory]
    running = [f for f in await list_forwards(services) if f.alive]
    results = []
    for spec in specs:
        if spec.runs_in(running):
            results.append(Restored(spec, None, already=True))
            continue
        try:
            forward = await start(
                services,
                spec.factory,
                spec.device,
                spec.remote_port,
                kind=spec.kind,
                local_port=spec.local_port,
                route=spec.route,
            )
        except FiotrayError as exc:
            results.append(Restored(spec, None, error=str(exc), code=exc.code))
        else:
            results.append(Restored(spec, forward))
    return results


# -- supervisor -------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardEvent:
    kind: Literal["dropped", "restored"]
    forward: Forward  # restored: the new one
    message: str


@dataclass
class _Retry:
    attempts: int
    due: float


class ForwardSupervisor:
    """Notices a forward that dropped (its ssh ended: the route broke, the device
    rebooted) and starts it again with the same ports, retrying with capped exponential
    backoff. The user is told once when it drops and once when it is back; a forward
    stopped on purpose is no longer recorded and so never restarted.

    `is_alive`, `restart`, `clock` and `sleep` are seams for tests; by default they are
    the real checks and `start`.
    """

    def __init__(
        self,
        services: Services,
        notify: Callable[[ForwardEvent], None],
        *,
        interval: float = 10.0,
        first_retry: float = 2.0,
        max_retry: float = 60.0,
        is_alive: Callable[[Forward], Awaitable[bool]] = is_alive,
        restart: Callable[[Forward], Awaitable[Forward]] | None = None,
        load: Callable[[], list[Forward]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.services = services
        self.notify = notify
        self.interval = interval
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._is_alive = is_alive
        self._restart = restart or self._restart_for_real
        self._load = load or (lambda: stores(services).running.load())
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._retries: dict[str, _Retry] = {}

    async def _restart_for_real(self, old: Forward) -> Forward:
        spec = old.spec
        if core.pid_is_forward(old.pid, old.control_path):
            # Its ssh runs but its socket does not answer (stuck): end that very process,
            # or it would keep the local port the new one needs. The record stays until
            # the new one is up, so a failed start is retried.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(old.pid, signal.SIGTERM)
            await _wait_gone(old.pid, old.control_path, EXIT_GRACE)
        new = await start(
            self.services,
            spec.factory,
            spec.device,
            spec.remote_port,
            kind=spec.kind,
            local_port=spec.local_port,  # the same port: the user's browser tab still works
            route=old.route,
        )
        await asyncio.to_thread(stores(self.services).running.remove, old.id)
        _remove_files(old)
        return new

    def delay(self, attempts: int) -> float:
        return min(self.max_retry, self.first_retry * 2 ** max(0, attempts - 1))

    async def check_once(self) -> None:
        forwards = await asyncio.to_thread(self._load)
        ids = {f.id for f in forwards}
        # Stopped on purpose (or restarted under a new id): nothing more to retry.
        for gone in set(self._retries) - ids:
            del self._retries[gone]
        now = self._clock()
        for forward in forwards:
            retry = self._retries.get(forward.id)
            if retry is None:
                if await self._is_alive(forward):
                    continue
                self._retries[forward.id] = retry = _Retry(0, now)
                self.notify(
                    ForwardEvent(
                        "dropped",
                        forward,
                        f"The forward {forward.label} dropped; fiotray is restarting it.",
                    )
                )
            if now < retry.due:
                continue
            try:
                new = await self._restart(forward)
            except FiotrayError as exc:
                retry.attempts += 1
                retry.due = now + self.delay(retry.attempts)
                log.info("forward %s: restart %d failed: %s", forward.id, retry.attempts, exc)
                continue
            del self._retries[forward.id]
            self.notify(ForwardEvent("restored", new, f"The forward {new.label} is back."))

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled."""
        while True:
            try:
                await self.check_once()
            except FiotrayError as exc:
                log.warning("forward supervisor: %s", exc)
            await asyncio.sleep(self.interval)
