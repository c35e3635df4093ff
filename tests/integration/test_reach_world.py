"""From Enable VPN to a device that answers, through the real parts: `fiotray enable --wait`.

The engineer (tests/engineer.py) asks the factory for access (self-service) and the
factory's VPN server runs `fiotray-server daemon` against the same fake factory, so the
server's peers follow the factory as in production: a device whose VPN is off has no
peer on the server. Enabling it writes its config at the API; the fake device applies
it after AUTO_APPLY seconds; the daemon adds its peer at its next sync; the probe (the
device's SSH banner through `ssh -W` on the VPN server) then answers.

Also: a bulk enable of devices with no address yet gives each a distinct one and the
server a peer for each; an offline device is reported as not reachable, with why; a
device whose peer the server lacks (its public key is not the device's) is reported as
the server having no working peer.

With FIOTRAY_BENCH_RUNS=N (bench/reach.py), the enable is repeated N times and the
median of each part is printed: apply, server sync, probe.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
from pathlib import Path

import pytest

from tests.engineer import FACTORY, Engineer
from tests.integration.test_server_sync_real import (
    _engineers_daemon,
    _server_peers,
    _set_device_vpn,
    _wait,
)

pytestmark = pytest.mark.real

AUTO_APPLY = 2.0  # seconds the fake device takes to apply a change
SYNC_INTERVAL = 3.0  # the daemon's --interval


def _enable(engineer: Engineer, *args: str, code: int = 0) -> dict:
    proc = engineer.fiotray("enable", *args, "--json", code=code, timeout=180)
    print(proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


class DeviceAgent:
    """The device's side of a VPN change, as fioconfig's handler does it: once the device
    applied a config (its newest entry has `applied-at`), its tunnel follows: the server
    as its peer (which handshakes at once, and retries every 5 s until the server answers)
    or no peer at all. The world's devices otherwise keep their tunnel whatever the
    factory says."""

    def __init__(self, world, factory, device) -> None:
        self.world, self.factory, self.device = world, factory, device
        self.running: bool | None = None  # what the device's tunnel does now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DeviceAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._tunnel(True)  # as the world built it

    def _wanted(self) -> bool | None:
        from fiotray.demo.fakeapi import WG_CLIENT_FILE

        with self.factory.lock:
            fake = self.factory.devices[self.device.name]
            self.factory.settle(fake)
            newest = fake.configs[0] if fake.configs else None
            if newest is None or not newest.applied_at:
                return None  # not applied yet: the device runs what it ran
            value = self.factory.current_file(self.device.name, WG_CLIENT_FILE) or ""
        return "enabled=0" not in value

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            wanted = self._wanted()
            if wanted is not None and wanted != self.running:
                self._tunnel(wanted)

    def _tunnel(self, on: bool) -> None:
        world, d = self.world, self.device
        argv = ["wg", "set", d.ifname, "peer", world.server_public_key]
        if on:
            argv += ["endpoint", world.server_endpoint, "allowed-ips"]
            argv += [f"{world.server_vpn_address}/32", "persistent-keepalive", "25"]
        else:
            argv += ["remove"]
        world.exec(d.ns, argv, check=True)
        self.running = on


def _restore_peer(world, device) -> None:
    """Put the device's server peer back as the world built it (for the next tests)."""
    world.exec(
        world.server_ns,
        ["wg", "set", world.server_ifname, "peer", device.wg_public_key, "allowed-ips",
         f"{device.vpn_address}/32"],
        check=True,
    )  # fmt: skip


@pytest.fixture
def served(engineer: Engineer, tmp_path: Path):
    """The engineer's laptop admitted by a `fiotray-server` daemon that follows the
    factory; the tunnel connected. Yields (engineer, daemon)."""
    world = engineer.world
    engineer.fiotray(
        "tunnels", "add-foundries", "--factory", FACTORY,
        "--interface", world.laptop_ifname, "--request-access",
    )  # fmt: skip
    (tunnel,) = json.loads(engineer.fiotray("tunnels", "list", "--json").stdout)
    daemon, api = _engineers_daemon(engineer, tmp_path, "--interval", str(SYNC_INTERVAL))
    try:
        _wait(
            lambda: tunnel["public_key"] in _server_peers(world),
            "the laptop was not admitted",
            20,
            daemon.why,
        )
        assert ": connected" in engineer.fiotray("connect").stdout
        yield engineer, daemon
    finally:
        engineer.fiotray("disconnect", code=None)
        code = daemon.stop()
        api.stop()
        peers = _server_peers(world)
        for device in world.devices:
            if device.wg_public_key not in peers:
                _restore_peer(world, device)
        if tunnel["public_key"] in peers:
            world.exec(
                world.server_ns,
                ["wg", "set", world.server_ifname, "peer", tunnel["public_key"], "remove"],
                check=True,
            )
    assert code == 0, daemon.why()


def test_enable_wait_follows_a_device_to_reachable_through_the_servers_sync(served) -> None:
    engineer, daemon = served
    world, factory = engineer.world, engineer.api.factory
    device = world.devices[1]
    # VPN off on the device, as the factory has it: the daemon drops its peer.
    _set_device_vpn(factory, device, enabled=False)
    factory.apply_pending(device.name)
    _wait(
        lambda: device.wg_public_key not in _server_peers(world),
        "the server kept the disabled device's peer",
        20,
        daemon.why,
    )
    factory.auto_apply_after = AUTO_APPLY
    with DeviceAgent(world, factory, device):
        runs = int(os.environ.get("FIOTRAY_BENCH_RUNS", "1"))
        waits = []
        for run in range(runs):
            if run:  # off again, and the peer gone, before the next measured enable
                engineer.fiotray("disable", device.name, "--wait", "60")
                _wait(
                    lambda: device.wg_public_key not in _server_peers(world),
                    "the peer outlived the disable",
                    20,
                    daemon.why,
                )
            out = _enable(engineer, device.name, "--wait", "120")
            wait = out["wait"]
            assert wait["reachable"] is True, wait
            assert out["address"] == device.vpn_address == wait["address"]
            assert wait["answer"].startswith("SSH-2.0-"), wait
            parts = wait["seconds"]
            # The fake device applies AUTO_APPLY s after the change (polled once a second or
            # more); the server syncs within SYNC_INTERVAL of that.
            assert AUTO_APPLY - 0.5 <= parts["apply"] <= AUTO_APPLY + 6, parts
            assert 0 <= parts["server_sync"] <= SYNC_INTERVAL + 12, parts
            assert 0 < parts["probe"] < 5, parts
            assert device.wg_public_key in _server_peers(world)
            waits.append(parts)
        if runs > 1 or os.environ.get("FIOTRAY_BENCH_RUNS"):
            print(f"\nEnable VPN to reachable, {runs} runs (auto-apply {AUTO_APPLY:g} s, "
                  f"server --interval {SYNC_INTERVAL:g} s), medians:")  # fmt: skip
            for key in ("apply", "server_sync", "probe", "total"):
                values = [w[key] for w in waits]
                print(f"  {key:<12} {statistics.median(values):7.2f} s  "
                      f"(min {min(values):.2f}, max {max(values):.2f})")  # fmt: skip

        # Text output: a line per stage, and the summary with its parts.
        engineer.fiotray("disable", device.name, "--wait", "60")
        text = engineer.fiotray("enable", device.name, "--wait", "120", timeout=180).stdout
        assert f"{device.name}: applied; waiting for an answer over the VPN" in text, text
        assert f"{device.name} is reachable at {device.vpn_address} over the jump route" in text


def test_bulk_enable_gives_distinct_addresses_and_the_server_a_peer_each(served) -> None:
    from fiotray.demo.fakeapi import random_wg_key

    engineer, daemon = served
    world, factory = engineer.world, engineer.api.factory
    keys = {f"lab-{i}": random_wg_key() for i in range(4)}
    for name, key in keys.items():
        factory.add_device(name, wg_pubkey=key, vpn_enabled=False)
    out = _enable(engineer, *keys)
    changed = {c["name"]: c["address"] for c in out["changed"]}
    assert set(changed) == set(keys) and not out["failed"], out
    assert len(set(changed.values())) == len(keys), f"an address given twice: {changed}"
    taken = {d.vpn_address for d in world.devices} | {world.server_vpn_address}
    assert not taken & set(changed.values()), changed
    factory.apply_pending()

    def peers_for_all() -> bool:
        peers = _server_peers(world)
        return all(
            k in peers and peers[k].allowed_ips == (f"{changed[n]}/32",) for n, k in keys.items()
        )

    _wait(peers_for_all, "the server has no peer for each enabled device", 20, daemon.why)
    # None of them is a real device: each is reported not reachable, with why.
    proc = engineer.fiotray("enable", "lab-0", "--wait", "4", code=4)
    assert "lab-0 is not reachable after" in proc.stderr, proc.stderr
    assert "already enabled" in proc.stdout or "VPN enabled" in proc.stdout


def test_an_offline_device_is_reported_not_reachable_with_why(served) -> None:
    engineer, _daemon = served
    factory = engineer.api.factory
    factory.auto_apply_after = 1.0  # online devices would apply: this one is offline
    factory.add_device("far-away", vpn_enabled=False, online=False)
    proc = engineer.fiotray("enable", "far-away", "--wait", "5", code=4, timeout=60)
    assert "far-away is not reachable after" in proc.stderr, proc.stderr
    assert "the device is offline (last seen 30d ago)" in proc.stderr, proc.stderr


def test_a_device_the_server_has_no_peer_for_is_reported_so(served) -> None:
    engineer, _daemon = served
    world, factory = engineer.world, engineer.api.factory
    factory.auto_apply_after = 1.0
    device = world.devices[0]
    # The factory says the device's key is another one: the server's peer for the
    # address has that key, so the device's own tunnel never gets an answer.
    wrong = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True)
    public = subprocess.run(
        ["wg", "pubkey"], input=wrong.stdout, capture_output=True, text=True, check=True
    ).stdout.strip()
    from fiotray.demo.fakeapi import VPN_HANDLER, WG_CLIENT_FILE, ConfigFile

    with factory.lock:
        factory.patch_config(
            factory.devices[device.name].configs,
            "Set Wireguard configuration - enable",
            [ConfigFile(WG_CLIENT_FILE, f"address={device.vpn_address}\npubkey={public}",
                        True, [VPN_HANDLER])],
        )  # fmt: skip
    factory.apply_pending(device.name)
    _wait(
        lambda: public in _server_peers(world),
        "the daemon did not follow the new key",
        20,
        _daemon.why,
    )
    proc = engineer.fiotray("enable", device.name, "--wait", "12", code=4, timeout=60)
    assert "the VPN server has no working peer for it yet" in proc.stderr, proc.stderr
    # Put the device's own key back: the daemon restores its peer.
    _set_device_vpn(factory, device, enabled=True)
    factory.apply_pending(device.name)
    _wait(
        lambda: device.wg_public_key in _server_peers(world),
        "the device's own peer is back",
        20,
        _daemon.why,
    )
