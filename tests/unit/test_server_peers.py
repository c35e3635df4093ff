"""fiotray.server.peers and .sync: what the interface should have, and the steps there."""

from __future__ import annotations

import base64
import subprocess

from fiotray.core.models import WireguardIp
from fiotray.server.engineers import Engineer
from fiotray.server.interface import WgInterface
from fiotray.server.peers import WantedPeer, wanted_peers
from fiotray.server.sync import CurrentPeer, Plan, current_peers, plan

SERVER = "10.42.42.1"
WG = "/usr/bin/wg"


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def device(name: str, ip: str, n: int, enabled: bool = True) -> WireguardIp:
    return WireguardIp(name, ip, enabled, key(n))


def test_wanted_peers_refuse_every_collision_and_say_why():
    devices = [
        device("d1", "10.42.42.2", 1),
        device("d2", "10.42.42.3", 2),
        device("off", "10.42.42.4", 3, enabled=False),
        device("x-twin", "10.42.42.2", 4),  # d1's address (two fioctl runs raced)
        device("x-copy", "10.42.42.5", 1),  # d1's key; d1 sorts first and keeps it
        device("server", SERVER, 6),
        WireguardIp("nokey", "10.42.42.8", True, ""),  # never registered a key: skipped
        WireguardIp("noip", "", True, key(7)),  # never enabled: skipped
    ]
    engineers = [
        Engineer("alice", key(10), "10.42.127.254"),
        Engineer("mallory", key(11), "10.42.42.3"),  # d2's address
        Engineer("trudy", key(2), "10.42.127.253"),  # d2's key
        Engineer("bad", "x", "10.42.127.252"),
    ]
    wanted, refused = wanted_peers(devices, engineers, SERVER)
    assert sorted(p.name for p in wanted.values()) == ["alice", "d1", "d2"]
    assert wanted[key(10)] == WantedPeer(key(10), "10.42.127.254", "alice", "engineer")
    reasons = {r.name: r.reason for r in refused}
    assert reasons == {
        "x-copy": "its public key is device d1's",
        "server": f"it claims the server's own address {SERVER}",
        "x-twin": "10.42.42.2 belongs to device d1",
        "mallory": "10.42.42.3 belongs to device d2",
        "trudy": "its public key is device d2's",
        "bad": "its public key is malformed",
    }


def test_plan_touches_only_what_changed():
    wanted, _ = wanted_peers(
        [
            device("d1", "10.42.42.2", 1),
            device("d2", "10.42.42.9", 2),
            device("d3", "10.42.42.4", 3),
        ],
        [Engineer("alice", key(10), "10.42.127.254")],
        SERVER,
    )
    current = {
        key(1): CurrentPeer(key(1), ("10.42.42.2/32",)),  # unchanged: never touched
        key(2): CurrentPeer(key(2), ("10.42.42.3/32",)),  # its address changed
        key(5): CurrentPeer(key(5), ("10.42.42.5/32",)),  # a device disabled since
    }
    p = plan(wanted, current)
    assert [x.name for x in p.add] == ["alice", "d3"]
    assert [x.name for x in p.change] == ["d2"]
    assert p.remove == [key(5)]
    assert p.commands(WG, "fiofac") == [
        [WG, "set", "fiofac", "peer", key(5), "remove"],
        [WG, "set", "fiofac", "peer", key(2), "allowed-ips", "10.42.42.9/32"],
        [WG, "set", "fiofac", "peer", key(10), "allowed-ips", "10.42.127.254/32"],
        [WG, "set", "fiofac", "peer", key(3), "allowed-ips", "10.42.42.4/32"],
    ]
    assert not any(key(1) in step for step in p.commands(WG, "fiofac"))
    # Once applied, nothing is left to do.
    after = {k: CurrentPeer(k, (w.allowed_ip,)) for k, w in wanted.items()}
    assert plan(wanted, after).empty


def test_peers_the_server_does_not_manage_are_left_alone():
    wanted, _ = wanted_peers([device("d1", "10.42.42.2", 1)], [], SERVER)
    current = {
        key(1): CurrentPeer(key(1), ("10.42.42.2/32",)),
        key(8): CurrentPeer(key(8), ("10.42.42.200/32",)),  # an admin's `wg set`
        key(9): CurrentPeer(key(9), ("10.42.42.9/32",)),  # a device this server added
    }
    p = plan(wanted, current, managed={key(1), key(9)})
    assert p.remove == [key(9)] and p.unmanaged == [key(8)]


def test_current_peers_from_a_real_dump_shape():
    dump = (
        f"PRIVATEKEYIGNORED=\t{key(40)}\t5555\toff\n"
        f"{key(1)}\t(none)\t10.42.42.2:51820\t10.42.42.2/32\t1700000000\t10\t20\t25\n"
        f"{key(10)}\t(none)\t(none)\t10.42.127.254/32\t0\t0\t0\toff\n"
    )
    assert current_peers(dump) == {
        key(1): CurrentPeer(key(1), ("10.42.42.2/32",)),
        key(10): CurrentPeer(key(10), ("10.42.127.254/32",)),
    }


def test_steps_are_batched_removals_first():
    p = Plan(
        add=[WantedPeer(key(3), "10.42.42.4", "d3", "device")],
        change=[WantedPeer(key(2), "10.42.42.9", "d2", "device")],
        remove=[key(5)],
    )
    assert p.commands(WG, "fiofac", batch=2) == [
        [
            WG,
            "set",
            "fiofac",
            "peer",
            key(5),
            "remove",
            "peer",
            key(2),
            "allowed-ips",
            "10.42.42.9/32",
        ],
        [WG, "set", "fiofac", "peer", key(3), "allowed-ips", "10.42.42.4/32"],
    ]


def test_a_failed_batch_is_retried_peer_by_peer_so_one_bad_peer_fails_alone():
    ran: list[list[str]] = []

    def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        ran.append(argv)
        bad = key(2) in argv
        return subprocess.CompletedProcess(argv, 1 if bad else 0, b"", b"Invalid\n" if bad else b"")

    intf = WgInterface("fiofac", run=run)
    peers = [WantedPeer(key(i), f"10.42.42.{i + 1}", f"d{i}", "device") for i in range(1, 4)]
    failed = intf.apply(Plan(add=peers))
    assert len(failed) == 1 and key(2) in failed[0]
    # One batch (failed), then each peer alone: the good ones are applied.
    assert len(ran) == 4 and all(len(argv) == 7 for argv in ran[1:])
    assert {argv[4] for argv in ran[1:]} == {key(1), key(2), key(3)}


def test_self_service_requests_are_checked_and_the_admins_engineers_come_first():
    from fiotray.core.wgfiles import EngineerAccess
    from fiotray.server.peers import requested_engineers

    admin = [Engineer("alice", key(10), "10.42.127.254")]
    requests = [
        EngineerAccess("bob-laptop", key(11), "10.42.127.254"),  # alice's address
        EngineerAccess("carol", key(12), "10.42.127.1"),
        EngineerAccess("dave", key(13), "10.42.127.2", enabled=False),  # withdrawn
        EngineerAccess("eve", key(14), "10.42.42.9"),  # a device's range
        EngineerAccess("mallory", key(15), "10.42.127.3"),  # revoked by the admin
        EngineerAccess("alice", key(16), "10.42.127.4"),  # the admin's engineer's name
        EngineerAccess("bad name!", key(17), "10.42.127.5"),
    ]
    wanted_self, refused = requested_engineers(
        requests, SERVER, admin=admin, revoked={key(15): "mallory"}
    )
    assert [e.name for e in wanted_self] == ["bob-laptop", "carol"]
    assert all(e.source == "self" for e in wanted_self)
    assert {r.name: r.reason for r in refused} == {
        "eve": "its address '10.42.42.9' is not in the engineers' range",
        "mallory": "the admin revoked it",
        "alice": "an engineer the admin added has that name",
        "'bad name!'": "its name is malformed",
    }
    # bob-laptop's address is alice's: the admin's engineer keeps it, bob is refused.
    wanted, refused = wanted_peers([], [*wanted_self, *admin], SERVER)
    assert wanted[key(10)].name == "alice" and key(11) not in wanted
    assert [(r.name, r.reason) for r in refused] == [
        ("bob-laptop", "10.42.127.254 belongs to engineer alice")
    ]


def test_an_engineers_request_file_reads_as_fioctl_reads_wireguard_files():
    from fiotray.core.wgfiles import EngineerAccess, engineer_requests

    access = EngineerAccess("bob-laptop", key(11), "10.42.127.1")
    assert access.file_name == "fiotray-engineer-bob-laptop"
    assert access.marshal() == f"pubkey={key(11)}\naddress=10.42.127.1"
    withdrawn = EngineerAccess("bob-laptop", key(11), "10.42.127.1", enabled=False)
    files = [
        ("wireguard-server", "endpoint=1.2.3.4:5555"),
        (access.file_name, "  pubkey = " + key(11) + "\n  address=10.42.127.1\njunk"),
        ("fiotray-engineer-old", withdrawn.marshal()),
    ]
    found = engineer_requests(files)
    assert found == [access, EngineerAccess("old", key(11), "10.42.127.1", enabled=False)]


def test_a_newcomer_never_takes_an_admitted_laptops_address():
    # Two laptops raced for one address; "zed" was admitted first. "bob" sorts before it
    # by name, but the admitted one keeps the address and the newcomer is refused.
    zed = Engineer("zed", key(20), "10.42.127.1", "self")
    bob = Engineer("bob", key(21), "10.42.127.1", "self")
    wanted, refused = wanted_peers([], [bob, zed], SERVER, admitted={key(20)})
    assert set(wanted) == {key(20)}
    assert [(r.name, r.reason) for r in refused] == [("bob", "10.42.127.1 belongs to engineer zed")]
    # With neither admitted yet, the order by name decides (and says so).
    wanted, _ = wanted_peers([], [bob, zed], SERVER)
    assert set(wanted) == {key(21)}


def test_a_device_on_the_interface_keeps_its_address_against_a_racing_one():
    # Two fioctl runs handed one address out; the device already on the VPN keeps it.
    old, new = device("z-old", "10.42.42.2", 1), device("a-new", "10.42.42.2", 2)
    wanted, refused = wanted_peers([old, new], [], SERVER, admitted={key(1)})
    assert set(wanted) == {key(1)}
    assert [(r.name, r.reason) for r in refused] == [
        ("a-new", "10.42.42.2 belongs to device z-old")
    ]
