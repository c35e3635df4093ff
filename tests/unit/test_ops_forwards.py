"""fiotray.ops.forwards with stand-in processes: stop is exact, list checks each one, the
supervisor restarts a dropped forward with backoff and says so once."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fiotray.core import errors
from fiotray.core import forward as core
from fiotray.core.errors import FiotrayError
from fiotray.core.forward import Forward, ForwardSpec
from fiotray.ops import forwards, tunnels

FACTORY = "demo-factory"
# Stands in for a forward's ssh: a process whose command line names its control socket,
# as the real one's does (`-o ControlPath=...`). `stubborn` ones ignore `ssh -O exit`.
SLEEPER = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_DFL)\ntime.sleep(120)"


class FakeSsh:
    """Fake `ssh -O check|exit`: answers for the stand-in processes it knows."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stubborn: set[str] = set()
        self.mute: set[str] = set()  # alive, but their socket does not answer
        self.calls: list[tuple[str, str]] = []

    def spawn(self, control: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, "-o", f"ControlPath={control}"],
            start_new_session=True,
        )
        self.procs[control] = proc
        return proc

    async def control(self, control_path: str, operation: str) -> tuple[int, str]:
        self.calls.append((control_path, operation))
        proc = self.procs.get(control_path)
        if proc is None or proc.poll() is not None or control_path in self.mute:
            return 255, f"Control socket connect({control_path}): No such file or directory"
        if operation == "check":
            return 0, f"Master running (pid={proc.pid})"
        if control_path not in self.stubborn:
            proc.terminate()
        return 0, "Exit request sent."

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def fake_ssh(monkeypatch) -> Iterator[FakeSsh]:
    fake = FakeSsh()
    monkeypatch.setattr(forwards, "_control", fake.control)
    yield fake
    fake.close()


def _record(services, fake: FakeSsh, fid: str, remote_port: int) -> Forward:
    st = forwards.stores(services)
    control, log = st.running.paths_for(fid)
    proc = fake.spawn(control)
    forward = Forward(
        id=fid,
        spec=ForwardSpec(FACTORY, "on-vpn", "local", remote_port, 20000 + remote_port),
        route="jump",
        pid=proc.pid,
        control_path=control,
        log_path=log,
        started=core.now(),
    )
    st.running.add(forward)
    return forward


async def test_stop_ends_exactly_that_forward(services, fake_ssh):
    web = _record(services, fake_ssh, "0000000a", 80)
    gdb = _record(services, fake_ssh, "0000000b", 2345)
    # Popen returns after exec: the stand-in's argv is in /proc already.
    assert core.pid_is_forward(web.pid, web.control_path)
    listed = await forwards.list_forwards(services)
    assert [(f.id, f.alive) for f in listed] == [(web.id, True), (gdb.id, True)]

    await forwards.stop(services, web.id)
    assert fake_ssh.procs[web.control_path].wait(5) == -signal.SIGTERM
    assert fake_ssh.procs[gdb.control_path].poll() is None  # the other one runs on
    assert (web.control_path, "exit") in fake_ssh.calls
    assert (gdb.control_path, "exit") not in fake_ssh.calls
    assert [f.id for f in await forwards.list_forwards(services)] == [gdb.id]
    with pytest.raises(FiotrayError, match="No forward 0000000a"):
        await forwards.stop(services, web.id)


async def test_a_forward_that_ignores_exit_gets_sigterm_and_nothing_else_does(
    services, fake_ssh, monkeypatch
):
    monkeypatch.setattr(forwards, "EXIT_GRACE", 0.3)
    stuck = _record(services, fake_ssh, "0000000c", 80)
    other = _record(services, fake_ssh, "0000000d", 443)
    fake_ssh.stubborn.add(stuck.control_path)
    await forwards.stop(services, stuck.id)
    assert fake_ssh.procs[stuck.control_path].wait(5) == -signal.SIGTERM
    assert fake_ssh.procs[other.control_path].poll() is None


async def test_a_reused_pid_is_never_signalled(services, fake_ssh, monkeypatch):
    """The recorded pid now belongs to another program: stop forgets the record only."""
    bystander = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
    try:
        st = forwards.stores(services)
        control, log = st.running.paths_for("0000000e")
        stale = Forward(
            "0000000e",
            ForwardSpec(FACTORY, "on-vpn", "local", 80, 18080),
            "jump",
            bystander.pid,
            control,
            log,
            core.now(),
        )
        st.running.add(stale)
        (listed,) = await forwards.list_forwards(services)
        assert listed.alive is False
        await forwards.stop(services, stale.id)
        assert bystander.poll() is None
        assert fake_ssh.calls == []  # not even its socket was asked to exit
        assert await forwards.list_forwards(services) == []
    finally:
        bystander.kill()
        bystander.wait()


async def test_stop_all_and_forget(services, fake_ssh):
    one = _record(services, fake_ssh, "00000011", 80)
    _record(services, fake_ssh, "00000012", 443)
    st = forwards.stores(services)
    st.saved.add(one.spec)
    await forwards.stop(services, one.id, forget=True)
    assert st.saved.load() == []
    stopped = await forwards.stop_all(services)
    assert [f.id for f in stopped] == ["00000012"]
    assert all(p.wait(5) == -signal.SIGTERM for p in fake_ssh.procs.values())


async def test_start_refuses_bad_input_and_a_down_tunnel_before_running_ssh(services):
    with pytest.raises(FiotrayError, match="not a port number"):
        await forwards.start(services, None, "on-vpn", 0)
    with pytest.raises(FiotrayError, match="starts with '-'"):
        await forwards.start(services, None, "-oProxyCommand=x", 80)
    with pytest.raises(FiotrayError, match="needs the local port"):
        await forwards.start(services, None, "on-vpn", 80, kind="remote")
    with pytest.raises(errors.VpnError) as down:
        await forwards.start(services, None, "on-vpn", 80)
    assert down.value.code == errors.TUNNEL_DOWN
    assert forwards.stores(services).running.load() == []
    # The demo's devices are simulated: refused at once, rather than ssh timing out.
    await tunnels.connect(services, wait=0)
    with pytest.raises(FiotrayError, match="simulated"):
        await forwards.start(services, None, "on-vpn", 80)
    await tunnels.disconnect(services)


async def test_supervisor_ends_a_stuck_forward_before_starting_it_again(
    services, fake_ssh, monkeypatch
):
    stuck = _record(services, fake_ssh, "00000041", 80)
    other = _record(services, fake_ssh, "00000042", 443)
    fake_ssh.mute.add(stuck.control_path)
    started = []

    async def start(services_, factory, device, remote_port, **kw):
        # The old ssh ended (SIGTERM) before the new one would bind its port. (wait, not
        # poll: a pidfd is readable a moment before waitpid sees the zombie.)
        assert not core.pid_is_forward(stuck.pid, stuck.control_path)
        assert fake_ssh.procs[stuck.control_path].wait(2) == -signal.SIGTERM
        started.append((device, remote_port, kw["local_port"], kw["route"]))
        new = _record(services_, fake_ssh, "00000043", remote_port)
        return new

    monkeypatch.setattr(forwards, "start", start)
    events: list[forwards.ForwardEvent] = []
    await forwards.ForwardSupervisor(services, events.append).check_once()
    assert started == [("on-vpn", 80, 20080, "jump")]
    assert [e.kind for e in events] == ["dropped", "restored"]
    assert fake_ssh.procs[other.control_path].poll() is None
    running = {f.id for f in forwards.stores(services).running.load()}
    assert running == {other.id, "00000043"}


# -- supervisor -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fake(fid: str) -> Forward:
    return Forward(
        fid,
        ForwardSpec(FACTORY, "on-vpn", "local", 80, 18080),
        "jump",
        1234,
        f"/r/fwd-{fid}",
        f"/r/fwd-{fid}.log",
        0.0,
    )


async def test_supervisor_restarts_a_dropped_forward_with_backoff_and_tells_once(services):
    records = [_fake("00000021"), _fake("00000022")]
    alive = {"00000021": True, "00000022": False}
    events: list[forwards.ForwardEvent] = []
    attempts: list[float] = []
    failures = 3
    clock = Clock()

    async def is_alive(f: Forward) -> bool:
        return alive[f.id]

    async def restart(old: Forward) -> Forward:
        nonlocal failures
        attempts.append(clock.now)
        if failures:
            failures -= 1
            raise FiotrayError("tunnel down")
        new = _fake("00000023")
        records.remove(old)
        records.append(new)
        alive[new.id] = True
        return new

    sup = forwards.ForwardSupervisor(
        services,
        events.append,
        first_retry=2,
        max_retry=5,
        is_alive=is_alive,
        restart=restart,
        load=lambda: list(records),
        clock=clock,
    )
    for t in range(0, 20):
        clock.now = float(t)
        await sup.check_once()
    # Tried at once, then after 2, 4 and (capped) 5 s; the healthy one never touched.
    assert attempts == [0.0, 2.0, 6.0, 11.0]
    assert [(e.kind, e.forward.id) for e in events] == [
        ("dropped", "00000022"),
        ("restored", "00000023"),
    ]
    assert "dropped" in events[0].message and "is back" in events[1].message


async def test_supervisor_forgets_a_forward_stopped_while_it_retried(services):
    records = [_fake("00000031")]
    events: list[forwards.ForwardEvent] = []
    tries = 0

    async def restart(old: Forward) -> Forward:
        nonlocal tries
        tries += 1
        raise FiotrayError("device offline")

    async def dead(f: Forward) -> bool:
        return False

    clock = Clock()
    sup = forwards.ForwardSupervisor(
        services,
        events.append,
        is_alive=dead,
        restart=restart,
        load=lambda: list(records),
        clock=clock,
    )
    await sup.check_once()
    records.clear()  # `fiotray forward stop` removed it
    clock.now = 100.0
    await sup.check_once()
    assert tries == 1 and [e.kind for e in events] == ["dropped"]
