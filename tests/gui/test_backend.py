"""The GUI backend on the demo services, on a qasync loop."""

from fiotray.core.tunnels import State


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
