"""Port forwards through the real parts, as an engineer at a laptop uses them.

The unprivileged engineer runs `fiotray forward` in the laptop namespace of the VPN
world (tests/vpn_world.py) with a real tunnel up; the forwards are real ssh processes
to real sshd on the devices, over the jump route (through the VPN server) and the
direct route (the server forwarding with NAT).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engineer import Engineer, add_foundries_tunnel
from tests.vpn_world import VpnWorld, in_netns

pytestmark = pytest.mark.real

DEVICE_WEB_PORT = 8080
# A web server on the device's loopback that says which device answered.
WEB_SERVER = """
import http.server, sys
name = sys.argv[2]
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {name}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hello)
print("ready", flush=True)
srv.serve_forever()
"""
# From the laptop, as the engineer: GET a URL, print the body (or the error, exit 1).
FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except OSError as exc:
    print(exc, file=sys.stderr); sys.exit(1)
"""


@contextlib.contextmanager
def web_server(world: VpnWorld, ns: str, name: str) -> Iterator[None]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", WEB_SERVER, str(DEVICE_WEB_PORT), name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready and proc.stdout.readline().strip() == "ready", f"web server in {ns}"
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


def fetch(person: Engineer, url: str) -> subprocess.CompletedProcess[str]:
    return person.world.exec(
        person.world.laptop_ns, [sys.executable, "-c", FETCH, url], user=person.user, timeout=30
    )


def listed(person: Engineer) -> dict[str, dict]:
    return {f["id"]: f for f in json.loads(person.fiotray("forward", "list", "--json").stdout)}


def started_id(out: str) -> str:
    return out.split("(id ", 1)[1].split(",", 1)[0]


def _leftover_ssh(person: Engineer) -> list[int]:
    """ssh processes of this engineer's forwards (their control sockets are in its home)."""
    found = []
    for pid in person.world.exec(
        person.world.laptop_ns, ["ip", "netns", "pids", person.world.laptop_ns]
    ).stdout.split():
        with contextlib.suppress(OSError):
            if str(person.home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
    return found


@pytest.fixture
def connected(engineer: Engineer) -> Iterator[Engineer]:
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)
    engineer.fiotray("connect")
    try:
        yield engineer
    finally:
        engineer.fiotray("forward", "stop", "--all", code=None)
        for pid in _leftover_ssh(engineer):  # what a failed test left behind, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        engineer.fiotray("disconnect", code=None)


def test_local_forwards_jump_and_direct_list_and_exact_stop(connected: Engineer) -> None:
    person = connected
    world = person.world
    dev = world.devices[0]
    world.set_nat(True)  # the direct route needs the server's forwarding with NAT
    with web_server(world, dev.ns, dev.name):
        out = person.fiotray("forward", dev.name, str(DEVICE_WEB_PORT)).stdout
        assert "http://127.0.0.1:" in out and "route jump" in out, out
        jump_id = started_id(out)
        out = person.fiotray(
            "forward", dev.name, str(DEVICE_WEB_PORT), "--route", "direct", "--save"
        ).stdout
        assert "route direct" in out, out
        direct_id = started_id(out)

        forwards = listed(person)
        assert set(forwards) == {jump_id, direct_id}
        assert all(f["alive"] for f in forwards.values())
        jump_url, direct_url = forwards[jump_id]["url"], forwards[direct_id]["url"]
        assert jump_url != direct_url
        for url in (jump_url, direct_url):
            got = fetch(person, url)
            assert (got.returncode, got.stdout.strip()) == (0, f"hello from {dev.name}"), got

        # Bound to loopback only: the laptop's other addresses do not serve it.
        port = forwards[jump_id]["local_port"]
        ss = world.exec(world.laptop_ns, ["ss", "-Hltn", f"sport = :{port}"]).stdout
        assert ss.split()[3] == f"127.0.0.1:{port}", ss

        # A port already taken: ssh's own reason, and nothing left recorded.
        busy = person.fiotray("forward", dev.name, "22", "--local", str(port), code=1).stderr
        assert "Address already in use" in busy or "cannot listen" in busy, busy
        assert set(listed(person)) == {jump_id, direct_id}

        # Stop is exact: the jump forward's port closes, the direct one answers on.
        person.fiotray("forward", "stop", jump_id)
        assert fetch(person, jump_url).returncode == 1
        assert fetch(person, direct_url).stdout.strip() == f"hello from {dev.name}"
        assert set(listed(person)) == {direct_id}

        # Saved: after a stop, restore brings it back (on a fresh free port).
        person.fiotray("forward", "stop", direct_id)
        assert listed(person) == {}
        out = person.fiotray("forward", "restore").stdout
        (restored,) = listed(person).values()
        assert restored["route"] == "direct" and restored["alive"], out
        assert fetch(person, restored["url"]).stdout.strip() == f"hello from {dev.name}"
        # Restoring again starts nothing twice.
        assert "already running" in person.fiotray("forward", "restore").stdout

        # A tunnel that goes down: the route through it is refused, like ssh's. (The
        # forwards end first: with the tunnel down, the device would never hear of it and
        # its sshd session would linger.)
        person.fiotray("forward", "stop", "--all")
        person.fiotray("disconnect")
        refused = person.fiotray("forward", dev.name, "80", code=1).stderr
        assert "fiotray connect" in refused, refused


def test_remote_forward_reaches_the_laptop_from_the_device(connected: Engineer) -> None:
    person = connected
    world = person.world
    dev = world.devices[-1]
    with in_netns(world.laptop_ns):
        listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        port = listener.getsockname()[1]
        out = person.fiotray("forward", dev.name, "9000", "--remote", "--local", str(port)).stdout
        fid = started_id(out)
        sent = world.exec(dev.ns, ["bash", "-c", "echo from-device >/dev/tcp/127.0.0.1/9000"])
        assert sent.returncode == 0, sent.stderr
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(100) == b"from-device\n"
        (record,) = listed(person).values()
        assert (record["kind"], record["remote_port"], record["alive"]) == ("remote", 9000, True)
        person.fiotray("forward", "stop", fid)
        closed = world.exec(dev.ns, ["bash", "-c", "echo x >/dev/tcp/127.0.0.1/9000"])
        assert closed.returncode != 0


def test_a_forward_across_a_tunnel_reconnect(connected: Engineer) -> None:
    """The tunnel goes down and up again (same address): the forward's TCP session over
    it resumes, as ssh's ServerAlive (3 x 15 s) outlasts a short reconnect."""
    person = connected
    world = person.world
    dev = world.devices[0]
    with web_server(world, dev.ns, dev.name):
        out = person.fiotray("forward", dev.name, str(DEVICE_WEB_PORT)).stdout
        fid = started_id(out)
        url = listed(person)[fid]["url"]
        assert fetch(person, url).returncode == 0
        person.fiotray("disconnect")
        person.fiotray("connect")
        started = time.monotonic()
        got = fetch(person, url)
        assert (got.returncode, got.stdout.strip()) == (0, f"hello from {dev.name}"), got
        assert listed(person)[fid]["alive"] is True
        assert time.monotonic() - started < 30


# The tray's supervisor, one round, as the engineer: it notices the dropped forward and
# starts it again at once (the first retry is due immediately). Prints its events.
SUPERVISE_ONCE = """
import asyncio, json
from fiotray.core.services import user_services
from fiotray.ops import forwards

async def main():
    services = user_services()
    events = []
    sup = forwards.ForwardSupervisor(services, events.append)
    try:
        await sup.check_once()
    finally:
        await services.aclose()
    print(json.dumps([[e.kind, e.forward.id, e.forward.local_port] for e in events]))

asyncio.run(main())
"""


def test_the_supervisor_restarts_a_dropped_forward_on_its_port(connected: Engineer) -> None:
    person = connected
    world = person.world
    dev = world.devices[0]
    with web_server(world, dev.ns, dev.name):
        out = person.fiotray("forward", dev.name, str(DEVICE_WEB_PORT)).stdout
        fid = started_id(out)
        record = listed(person)[fid]
        url, port = record["url"], record["local_port"]
        # The route breaks under it: its ssh dies (as after ServerAlive gives up).
        os.kill(record["pid"], signal.SIGKILL)
        assert fetch(person, url).returncode == 1
        assert listed(person)[fid]["alive"] is False
        assert "dropped" in person.fiotray("forward", "list").stdout

        argv = [*Engineer.argv()[:-2], "-c", SUPERVISE_ONCE]  # python -c, not -m fiotray
        ran = world.exec(world.laptop_ns, argv, user=person.user, env=person.env(), timeout=60)
        assert ran.returncode == 0, ran.stderr
        (dropped, restored) = json.loads(ran.stdout.strip().splitlines()[-1])
        assert dropped == ["dropped", fid, port]
        assert restored[0] == "restored" and restored[1] != fid and restored[2] == port
        # The same address answers again; only the new forward is recorded.
        got = fetch(person, url)
        assert (got.returncode, got.stdout.strip()) == (0, f"hello from {dev.name}"), got
        assert {k: v["alive"] for k, v in listed(person).items()} == {restored[1]: True}
