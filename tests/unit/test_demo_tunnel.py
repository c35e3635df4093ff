"""The demo's simulated tunnel: one per user, shared by every demo process, robust to garbage."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time

import pytest

from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.services import demo_services
from fiotray.core.tunnels import State
from fiotray.demo import tunnel as demo_tunnel
from fiotray.demo.factory import DEMO_FACTORY, DEMO_SERVER_PUBLIC_KEY
from fiotray.demo.tunnel import SimulatedHelper, demo_net_dir

INTERFACE = "fiodemo"


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setattr(demo_tunnel, "UP_DELAY", 0.01)
    monkeypatch.setattr(demo_tunnel, "HANDSHAKE_DELAY", 0.05)


@pytest.fixture
async def two_demos():
    """Two demo processes' services (the tray's and a `fiotray --demo` command's)."""
    first, second = demo_services(devices=2), demo_services(devices=2)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_two_demos_share_one_simulated_tunnel(two_demos):
    first, second = two_demos
    shared = demo_net_dir()
    assert first.controller.sys_net == second.controller.sys_net == shared
    assert shared.parent == demo_tunnel.runtime_dir()
    assert oct(shared.stat().st_mode & 0o777) == "0o700"
    # Each demo keeps its own stores: only the interfaces are shared.
    assert first.tunnels.path != second.tunnels.path

    up = await first.controller.connect(DEMO_FACTORY, wait=5.0)
    assert up.state is State.CONNECTED
    (seen,) = await second.controller.status(DEMO_FACTORY)
    assert seen.state is State.CONNECTED and not seen.foreign
    assert seen.latest_handshake == up.latest_handshake  # the same interface, not a copy
    state = json.loads((shared / INTERFACE / "state.json").read_text())
    assert state["peer"] == DEMO_SERVER_PUBLIC_KEY and state["endpoint"].endswith(":5555")

    # Connecting from the other one finds it up: not an error, no second interface.
    assert (await second.controller.connect(DEMO_FACTORY)).state is State.CONNECTED
    assert sorted(os.listdir(shared)) == [INTERFACE]

    down = await second.controller.disconnect(DEMO_FACTORY)
    assert down.state is State.DISCONNECTED
    (after,) = await first.controller.status(DEMO_FACTORY)
    assert after.state is State.DISCONNECTED
    assert os.listdir(shared) == []


async def test_a_demo_tunnel_outlives_the_demo_that_brought_it_up():
    first = demo_services(devices=2)
    await first.controller.connect(DEMO_FACTORY)
    await first.aclose()  # the tray quit: its temp stores go, the interface stays
    later = demo_services(devices=2)
    try:
        (status,) = await later.controller.status(DEMO_FACTORY)
        assert status.state is not State.DISCONNECTED and not status.foreign
        await later.controller.disconnect(DEMO_FACTORY)
        assert not later.controller.interface_exists(INTERFACE)
    finally:
        await later.aclose()


def _garbage(shared) -> None:
    """What a broken or hostile hand could leave among the interfaces."""
    (shared / "notjson").mkdir()
    (shared / "notjson" / "state.json").write_text("{not json")
    (shared / "big").mkdir()
    (shared / "big" / "state.json").write_text(
        json.dumps({"created": 1.0, "peer": "k", "endpoint": "x" * 10_000})
    )
    (shared / "deep").mkdir()
    (shared / "deep" / "state.json").write_text("[" * 3000 + "]" * 3000)
    (shared / "types").mkdir()
    (shared / "types" / "state.json").write_text(
        json.dumps({"created": "yesterday", "peer": 7, "endpoint": None})
    )
    (shared / "nan").mkdir()
    (shared / "nan" / "state.json").write_text('{"created": NaN, "peer": "k", "endpoint": ""}')
    (shared / "boolean").mkdir()
    (shared / "boolean" / "state.json").write_text(
        json.dumps({"created": True, "peer": "k", "endpoint": ""})
    )
    (shared / "list").mkdir()
    (shared / "list" / "state.json").write_text("[1, 2]")
    (shared / "link").mkdir()
    (shared / "link" / "state.json").symlink_to("/etc/passwd")
    (shared / "fifo").mkdir()
    os.mkfifo(shared / "fifo" / "state.json")  # a read must not block on it
    (shared / "asdir").mkdir()
    (shared / "asdir" / "state.json").mkdir()
    (shared / "empty").mkdir()
    (shared / "plainfile").write_text("not an interface")
    (shared / "dirlink").symlink_to(shared / "notjson")


async def test_malformed_state_is_ignored_with_one_log_line_each(caplog):
    shared = demo_net_dir()
    _garbage(shared)
    good = {"created": time.time() - 10, "peer": "k" * 44, "endpoint": "vpn.example.test:5555"}
    (shared / "good").mkdir()
    (shared / "good" / "state.json").write_text(json.dumps(good))
    helper = SimulatedHelper(shared)
    with caplog.at_level(logging.WARNING, logger="fiotray.demo.tunnel"):
        infos = await helper.status()
        again = await helper.status()
    assert list(infos) == ["good"] and list(again) == ["good"]
    assert infos["good"].peers[0].endpoint == "vpn.example.test:5555"
    assert infos["good"].latest_handshake > 0
    ignored = sorted({r.args[0] for r in caplog.records})
    assert ignored == sorted(
        [
            "notjson",
            "big",
            "deep",
            "types",
            "nan",
            "boolean",
            "list",
            "link",
            "fifo",
            "asdir",
            "empty",
            "plainfile",
            "dirlink",
        ]
    )
    assert len(caplog.records) == len(ignored)  # once each, not at every status


async def test_garbage_under_the_demo_interface_looks_foreign_and_disconnect_clears_it(caplog):
    shared = demo_net_dir()
    (shared / INTERFACE).mkdir()
    (shared / INTERFACE / "state.json").write_text('{"created": -5}')
    services = demo_services(devices=2)
    try:
        (status,) = await services.controller.status(DEMO_FACTORY)
        assert status.foreign and status.detail == "up, but not brought up by fiotray"
        with pytest.raises(VpnError, match="already up outside fiotray"):
            await services.controller.connect(DEMO_FACTORY)
        assert (await services.controller.disconnect(DEMO_FACTORY)).state is State.DISCONNECTED
        assert (await services.controller.connect(DEMO_FACTORY, wait=5.0)).state is State.CONNECTED
    finally:
        await services.aclose()


def test_the_shared_directory_must_be_private(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    shared = run / f"fiotray-{os.getuid()}-demo-net"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(FiotrayError, match="not a private directory"):
        demo_services()
    assert list(scratch.iterdir()) == [], "no temp dir left behind"
    shared.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    shared.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FiotrayError, match="not a private directory"):
        demo_net_dir()
    shared.unlink()
    assert demo_net_dir() == shared and shared.is_dir() and not shared.is_symlink()
