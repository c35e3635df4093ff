"""Reachability after a VPN change: the probe (fiotray.core.reach) on loopback with the real
ssh client, and the stages and reasons (fiotray.ops.reach) on the demo services.

The whole path (tunnel, fiotray-server's sync, a device's sshd over the jump route) is
tested in tests/integration/test_reach_world.py."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading

import pytest

from fiotray.core import reach as core_reach
from fiotray.core.ssh import SshSettings, SshTarget
from fiotray.ops import reach
from fiotray.ops import tunnels as ops_tunnels

FACTORY = "demo-factory"
TARGET = SshTarget("f", "dev", "127.0.0.1", "127.0.0.1")


def _one_shot_server(answer: bytes) -> tuple[int, threading.Thread]:
    """A loopback listener that answers one connection with `answer`, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_hop_argv_is_the_one_ssh_j_makes_with_batch_mode() -> None:
    settings = SshSettings(route="public", jump_user="ops", jump_host="vpn.example.com:2222")
    argv = core_reach.probe_argv(TARGET, settings)
    assert argv == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-l", "ops", "-p", "2222",
        "-W", "127.0.0.1:22", "--", "vpn.example.com",
    ]  # fmt: skip
    jump = core_reach.probe_argv(TARGET, SshSettings(extra_options=("Port=2200",)))
    assert jump is not None and jump[-4:] == ["-W", "127.0.0.1:2200", "--", "127.0.0.1"]
    assert core_reach.probe_argv(TARGET, SshSettings(route="direct")) is None


async def test_direct_probe_reads_the_ssh_banner() -> None:
    port, thread = _one_shot_server(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
    settings = SshSettings(route="direct", extra_options=(f"Port={port}",))
    result = await core_reach.probe(TARGET, settings, timeout=5)
    thread.join(5)
    assert result.ok and result.where == "device"
    assert result.detail == "SSH-2.0-OpenSSH_9.2p1 Debian"


async def test_direct_probe_says_what_answered_when_it_is_not_ssh() -> None:
    port, thread = _one_shot_server(b"HTTP/1.1 400 Bad Request\r\n\x1b]0;owned\x07\r\n")
    settings = SshSettings(route="direct", extra_options=(f"Port={port}",))
    result = await core_reach.probe(TARGET, settings, timeout=5)
    thread.join(5)
    assert not result.ok and result.where == "device-path"
    assert "not as an SSH server" in result.detail


async def test_direct_probe_to_a_closed_port_fails_with_why() -> None:
    settings = SshSettings(route="direct", extra_options=(f"Port={_closed_port()}",))
    result = await core_reach.probe(TARGET, settings, timeout=5)
    assert not result.ok and result.where == "device-path"
    assert "refused" in result.detail.lower()


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
async def test_a_hop_that_refuses_is_the_servers_fault_in_sshs_words() -> None:
    settings = SshSettings(route="public", jump_host=f"127.0.0.1:{_closed_port()}")
    result = await core_reach.probe(TARGET, settings, timeout=5)
    assert not result.ok and result.where == "server", result
    assert "Connection refused" in result.detail


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
async def test_a_hop_that_never_answers_is_given_up_at_the_timeout() -> None:
    # A listener that accepts and says nothing: ssh waits for the server's banner.
    listener = socket.create_server(("127.0.0.1", 0))
    settings = SshSettings(route="public", jump_host=f"127.0.0.1:{listener.getsockname()[1]}")
    with listener:
        result = await core_reach.probe(TARGET, settings, timeout=1.5)
    assert not result.ok and result.seconds < 4, result


# -- stages and reasons, on the demo ---------------------------------------------------


async def test_a_device_is_followed_from_pending_to_reachable(services) -> None:
    from fiotray.ops import devices

    fake = services.demo.server.factory
    await ops_tunnels.connect(services, FACTORY)
    await devices.set_vpn(services, FACTORY, "off-vpn", True)
    stages: list[str] = []

    async def apply_soon() -> None:
        await asyncio.sleep(0.2)
        fake.apply_pending("off-vpn")

    applier = asyncio.ensure_future(apply_soon())
    result = await reach.wait_reachable(
        services,
        FACTORY,
        "off-vpn",
        timeout=10,
        on_stage=lambda stage, state: stages.append(stage),
        apply_poll=(0.05,),
        probe_poll=(0.05,),
    )
    await applier
    assert result.reachable and result.done and stages == ["applied"]
    assert result.apply_s is not None and result.apply_s >= 0.2
    assert result.summary().startswith("off-vpn is reachable at 10.42.42.")
    data = result.to_json()
    assert data["stage"] == "reachable" and data["seconds"]["total"] is not None


async def test_not_applied_in_time_says_so_and_an_offline_device_says_offline(services) -> None:
    from fiotray.ops import devices

    fake = services.demo.server.factory
    fake.add_device("far-away", vpn_enabled=False, online=False)
    for name, why in (
        ("off-vpn", "the device has not applied the change yet"),
        ("far-away", "the device is offline (last seen 30d ago)"),
    ):
        await devices.set_vpn(services, FACTORY, name, True)
        result = await reach.wait_reachable(
            services, FACTORY, name, timeout=0.3, apply_poll=(0.05,)
        )
        assert result.stage == "pending" and not result.done
        assert why in result.reason, result.reason
        assert result.summary().startswith(f"{name} is not reachable after 0 s: ")


async def test_applied_but_the_tunnel_down_says_connect_it(services) -> None:
    result = await reach.wait_reachable(
        services, FACTORY, "on-vpn", timeout=0.3, probe_poll=(0.05,)
    )
    assert result.stage == "applied" and not result.reachable
    assert result.reason == "tunnel demo-factory is not connected: connect it to reach the device"
    assert result.apply_s is not None and result.sync_s is None


async def test_a_disable_is_done_once_applied(services) -> None:
    from fiotray.ops import devices

    await devices.set_vpn(services, FACTORY, "on-vpn", False)
    services.demo.server.factory.apply_pending("on-vpn")
    results = await reach.wait_many(services, None, ["on-vpn"], enable=False, timeout=2)
    assert [(r.stage, r.done, r.reachable) for r in results] == [("applied", True, False)]


async def test_wait_many_turns_a_vanished_device_into_a_result(services) -> None:
    results = await reach.wait_many(services, FACTORY, ["no-such-device"], enable=True, timeout=1)
    (result,) = results
    assert not result.done and "Device not found" in result.reason


def test_a_batch_is_told_in_one_line_with_the_first_reasons() -> None:
    def one(name: str, reason: str = "") -> reach.Reach:
        stage = "applied" if reason else "reachable"
        return reach.Reach(FACTORY, name, stage, reason, "10.42.42.9", "jump", 1, 1, 0.2)

    assert reach.batch_summary([one("a"), one("b")]) == (
        "2 of 2 devices reachable",
        "Each answers over the VPN.",
    )
    results = [one("a"), *(one(f"gw-{i}", f"why {i}") for i in range(5))]
    title, message = reach.batch_summary(results)
    assert title == "1 of 6 devices reachable"
    assert message == "gw-0: why 0; gw-1: why 1; gw-2: why 2; 2 more not reachable."
