"""The GUI backend on the demo services, on a qasync loop."""

from fiotray.core.tunnels import State
from tests.gui.waits import signal_future


async def test_demo_connect_list_and_toggle(backend):
    seen = []
    backend.tunnelChanged.connect(lambda s: seen.append(s.state))
    (tunnel,) = backend.tunnels()
    status = await backend.connect(tunnel.name)
    assert status.state is State.CONNECTED
    rows = await backend.load_devices(backend.factories()[0].factory)
    assert len(rows) == 36
    assert (await backend.toggle(tunnel.name)).state is State.DISCONNECTED
    assert seen[0] is State.CONNECTING and seen[-1] is State.DISCONNECTED


async def test_failures_become_notices_not_tracebacks(backend):
    notices = []
    backend.notice.connect(lambda *a: notices.append(a))
    result = await backend.spawn(
        backend.set_vpn("demo-factory", "no-such-device", True), what="Enable VPN"
    )
    assert result is None
    (title, message, level) = notices[0]
    assert (title, level) == ("Enable VPN", "error")
    assert "No device named 'no-such-device'" in message


async def test_a_pending_change_is_watched_until_the_device_applies_it(backend):
    import asyncio

    factory, name = _device_that_waits(backend, "watch-me")
    events: list = []
    backend.vpnChanged.connect(lambda *event: events.append(event))
    applied_event = signal_future(backend.vpnChanged, lambda _f, state: not state.pending)

    state = await backend.set_vpn("demo-factory", name, True)
    assert state.enabled and state.pending
    await asyncio.sleep(0.3)  # several polls while the device has not applied it
    assert len(events) == 1, "a still-pending change must not be reported again"
    assert backend.pending().names("demo-factory") == [name]

    factory.apply_pending(name)
    await asyncio.wait_for(applied_event, 5)
    (_, first), (_, applied) = events
    assert first.pending and not applied.pending
    assert applied.enabled and applied.address == state.address
    assert backend.pending().names("demo-factory") == []
    # Applied: now it waits for an answer over the VPN (the demo's tunnel is down).
    assert backend.reach[("demo-factory", name)][0] == "checking"
    (task,) = backend._watches.values()
    task.cancel()


async def test_an_enabled_device_is_reported_reachable_once_it_answers(backend):
    import asyncio

    factory, name = _device_that_waits(backend, "answer-me")
    backend.probe_poll = (0.05,)
    results: list = []
    backend.reachResult.connect(results.append)
    marks: list = []
    backend.reachChanged.connect(lambda f, d: marks.append(backend.reach.get((f, d))))
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)  # the jump route goes through it
    done = signal_future(backend.reachResult)
    await backend.set_vpn("demo-factory", name, True)
    factory.apply_pending(name)
    (result,) = await asyncio.wait_for(done, 10)
    assert result.reachable and result.device == name, result
    assert result.apply_s is not None and result.sync_s is not None and result.probe_s
    assert [m[0] for m in marks] == ["checking", "reachable"]
    assert not backend._watches


async def test_an_enabled_device_that_never_answers_is_reported_with_why(backend):
    import asyncio

    factory, name = _device_that_waits(backend, "never-answers")
    backend.probe_poll = (0.05,)
    backend.pending_watch_limit = 0.5
    done = signal_future(backend.reachResult)
    await backend.set_vpn("demo-factory", name, True)
    factory.apply_pending(name)
    (result,) = await asyncio.wait_for(done, 10)
    assert not result.reachable and result.stage == "applied"
    assert "tunnel demo-factory is not connected" in result.reason
    assert backend.reach[("demo-factory", name)][0] == "not reachable"


async def test_a_disable_is_watched_until_applied_and_not_probed(backend):
    import asyncio

    factory, _ = _device_that_waits(backend, "unused")
    name = factory.add_device("turn-off", vpn_enabled=True).name
    results: list = []
    backend.reachResult.connect(results.append)
    states: list = []
    backend.vpnChanged.connect(lambda _f, state: states.append(state))
    await backend.set_vpn("demo-factory", name, False)
    (task,) = backend._watches.values()
    factory.apply_pending(name)
    await asyncio.wait_for(task, 5)  # ends at applied: nothing to probe
    assert results == [] and ("demo-factory", name) not in backend.reach
    assert [(s.enabled, s.pending) for s in states] == [(False, True), (False, False)]


def _device_that_waits(backend, name: str):
    """A demo device with VPN off that applies changes only when the test says so."""
    factory = backend.services.demo.server.factory
    factory.auto_apply_after = None
    backend.pending_poll = (0.05,)
    return factory, factory.add_device(name, vpn_enabled=False).name


async def test_the_pending_watch_gives_up_when_the_device_vanishes(backend):
    import asyncio

    factory, name = _device_that_waits(backend, "gone-soon")
    await backend.set_vpn("demo-factory", name, True)
    (task,) = backend._watches.values()
    with factory.lock:
        del factory.devices[name]
    await asyncio.wait_for(task, 5)  # ends by itself: nothing left to wait for
    assert not backend._watches


async def test_the_pending_watch_stops_at_its_limit(backend):
    import asyncio

    _, name = _device_that_waits(backend, "slow-one")
    backend.pending_watch_limit = 0.3
    server = backend.services.demo.server
    await backend.set_vpn("demo-factory", name, True)
    before = len(server.requests)
    (task,) = backend._watches.values()
    await asyncio.wait_for(task, 5)
    reads = [r for r in server.requests[before:] if r.method == "GET" and name in r.path]
    assert 2 <= len(reads) <= 8, f"{len(reads)} config reads in 0.3 s of watching"


async def test_quit_lets_a_change_in_progress_finish(backend):
    import asyncio

    server = backend.services.demo.server
    name = server.factory.add_device("quit-while-enabling", vpn_enabled=False).name
    await backend.load_devices("demo-factory")  # the client exists: the PATCH is the slow part
    server.latency = 0.3
    task = backend.spawn(backend.set_vpn("demo-factory", name, True), what="Enable VPN")
    await asyncio.sleep(0.05)  # the PATCH is on its way
    background = backend.spawn(asyncio.sleep(60), what="a background wait")
    await backend.shutdown()
    assert task.done() and not task.cancelled()
    state = task.result()
    assert state is not None and state.enabled
    assert "address=" in server.factory.current_file(name, "wireguard-client")
    assert background.cancelled(), "what is not a change is still cancelled at once"


async def test_quit_does_not_wait_past_its_grace(backend):
    import asyncio

    server = backend.services.demo.server
    name = server.factory.add_device("too-slow", vpn_enabled=False).name
    await backend.load_devices("demo-factory")
    server.latency = 5.0
    backend.quit_grace = 0.2
    task = backend.spawn(backend.set_vpn("demo-factory", name, True), what="Enable VPN")
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await backend.shutdown()
    assert asyncio.get_running_loop().time() - started < 3.0
    assert task.cancelled()


def test_the_demo_serves_its_factory_only_once_asked():
    """The demo starts its fake factory at the first request for devices, not before."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import asyncio, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
from fiotray.gui.backend import Backend, demo_services
services = demo_services()
# That nothing heavy is loaded until then: tests/unit/test_import_budget.py.
assert not services.demo.started
backend = Backend(services)

async def main():
    rows = await backend.load_devices("demo-factory")
    assert len(rows) == 36 and services.demo.started
    await backend.shutdown()

asyncio.run(main())
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_demo_keys_are_a_real_pair():
    from fiotray.core import wgconf
    from fiotray.demo import factory

    assert wgconf.public_key(factory.DEMO_LAPTOP_PRIVATE_KEY) == factory.DEMO_LAPTOP_PUBLIC_KEY


# -- settings shared with other processes ------------------------------------------------


def _other_process_settings(backend):
    """The same settings file as another fiotray process (a second window, the CLI) sees it."""
    from fiotray.core.settings import SettingsStore

    return SettingsStore(backend.services.settings.path.parent)


async def test_saving_settings_keeps_what_another_process_changed(backend):
    import dataclasses

    other = _other_process_settings(backend)
    other.update(lambda s: dataclasses.replace(s.remember("f", "d"), ssh_user="root"))
    backend.save_settings(dataclasses.replace(backend.settings, notifications=False))
    saved = other.load()
    assert (saved.notifications, saved.ssh_user, saved.recent) == (False, "root", (("f", "d"),))
    assert backend.settings == saved  # the cache is what the file now says


async def test_opening_ssh_keeps_what_another_process_changed(backend, monkeypatch):
    import dataclasses

    from fiotray.core import terminal

    async def launch(argv, **kwargs):
        return 4242

    monkeypatch.setattr(terminal, "launch_in_terminal", launch)
    backend.services.demo.server.factory.add_device("dev-1", vpn_address="10.42.42.99")
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)  # the jump route goes through it
    other = _other_process_settings(backend)
    other.update(lambda s: dataclasses.replace(s.remember("f", "old"), terminal="xterm"))
    assert await backend.open_ssh("demo-factory", "dev-1") == 4242
    saved = other.load()
    assert saved.terminal == "xterm"
    assert saved.recent == (("demo-factory", "dev-1"), ("f", "old"))
    assert backend.settings == saved


async def test_the_cli_and_the_gui_agree_on_the_default_tunnel(backend, monkeypatch, capsys):
    import asyncio

    from fiotray import cli
    from fiotray.core.tunnels import Tunnel, TunnelStore

    store = TunnelStore()  # the user's own, under this test's XDG_CONFIG_HOME
    for name in ("a", "b"):
        store.save(Tunnel(name, "plain", f"wg{name}", "[Interface]\n", "K"))
    monkeypatch.setattr(backend.services, "tunnels", store)

    async def cli_default() -> str:
        # The CLI runs its own event loop: on a thread, as if in another process.
        assert await asyncio.to_thread(cli.main, ["profiles", "list"]) == 0
        (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("*")]
        return line.split()[1]

    assert backend.default_tunnel().name == await cli_default() == "a"
    backend.set_default_tunnel("b")
    assert backend.default_tunnel().name == await cli_default() == "b"
    assert TunnelStore().get().name == "b"  # what `fiotray connect` with no name takes


async def test_a_dismissed_password_prompt_is_no_error(backend):
    from fiotray.core import errors
    from fiotray.core.errors import VpnError

    notices = []
    backend.notice.connect(lambda *a: notices.append(a))

    async def dismissed():
        raise VpnError("Authentication was dismissed.", code=errors.HELPER_DISMISSED)

    async def failed():
        raise VpnError("wg-quick failed.", code=errors.HELPER_FAILED)

    await backend.spawn(dismissed(), what="Connect")
    await backend.spawn(failed(), what="Connect")
    assert [level for _title, _message, level in notices] == ["info", "error"]


async def test_a_bulk_enable_is_told_once_for_all_its_devices(backend):
    import asyncio

    factory = backend.services.demo.server.factory
    factory.auto_apply_after = None
    backend.pending_poll = (0.05,)
    backend.probe_poll = (0.05,)
    backend.pending_watch_limit = 1.0
    names = [factory.add_device(f"bulk-{i}", vpn_enabled=False).name for i in range(3)]
    far = factory.add_device("bulk-far", vpn_enabled=False, online=False).name
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)
    singles: list = []
    backend.reachResult.connect(singles.append)
    told = signal_future(backend.reachBatch)
    await backend.set_vpn_many("demo-factory", [*names, far], True)
    for name in names:
        factory.apply_pending(name)  # the offline one never applies
    (results,) = await asyncio.wait_for(told, 10)
    assert singles == [], "each device of the batch would have had its own notification"
    by_name = {r.device: r for r in results}
    assert set(by_name) == {*names, far}
    assert all(by_name[n].reachable for n in names)
    assert "offline" in by_name[far].reason
    assert [backend.reach[("demo-factory", n)][0] for n in names] == ["reachable"] * 3


async def test_a_bulk_enable_of_one_pending_device_is_told_as_that_device(backend):
    import asyncio

    factory, name = _device_that_waits(backend, "bulk-alone")
    backend.probe_poll = (0.05,)
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)
    done = signal_future(backend.reachResult)
    await backend.set_vpn_many("demo-factory", [name], True)
    factory.apply_pending(name)
    (result,) = await asyncio.wait_for(done, 10)
    assert result.device == name and result.reachable
