"""`fiotray mcp` as an assistant's MCP client runs it: the SDK's own stdio client against
the process, signed in (through the real Secret Service) to a fake factory on loopback.

Every tool is called, its schema and annotations checked, failures come back as tool
errors with the CLI's sentence, and each result is scanned for the API token.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from fiotray.demo.fakeapi import FakeFactory
from tests.mcp_client import Client, mcp_session
from tests.user_config import cli_env

pytestmark = pytest.mark.real

FACTORY = "mcp-factory"
TOKEN = "mcp-api-token-Zr81q"
KEY = "kZ2Jx0nZ3wWmJ0C6m0sN3w4b2Ff0h3aT1x9Yp8QeWmE="
RACK = 120  # devices in group "rack": more than a listing's default limit

TOOLS = {
    "foundries_vpn_status": "read",
    "connect_foundries_vpn": "change",
    "disconnect_foundries_vpn": "destroy",
    "list_foundries_devices": "read",
    "foundries_device_vpn": "read",
    "enable_foundries_vpn_device": "change",
    "disable_foundries_vpn_device": "destroy",
    "foundries_ssh_command": "read",
}


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory(FACTORY)
    f.add_api_token(TOKEN)
    f.set_wireguard_server()
    f.add_device("alpha", vpn_address="10.42.42.2", group="lab", target="lmp-alpha")
    f.add_device("beta", wg_pubkey=KEY, vpn_enabled=False, group="lab")
    f.add_device("nokey", wg_pubkey=None, vpn_enabled=False)
    for i in range(RACK):
        f.add_device(f"rack-{i:03d}", vpn_enabled=False, group="rack", online=i % 3 != 0)
    return f


@pytest.fixture
def env(tmp_path, secret_service, server) -> dict[str, str]:
    env = cli_env(tmp_path, secret_service.bus_address)
    login = cli(
        env,
        "login",
        "--factory",
        FACTORY,
        "--api-url",
        server.api_url,
        "--api-token-stdin",
        stdin=TOKEN,
    )
    assert login.returncode == 0, login.stderr
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fiotray", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def served(env: dict[str, str], stderr: Path, *options: str) -> AbstractAsyncContextManager[Client]:
    """`fiotray mcp` with the SDK's client. In each test, not a fixture: the SDK's task
    groups must be entered and left in one task, and pytest-asyncio sets a fixture up and
    tears it down in two."""
    argv = [sys.executable, "-m", "fiotray", "mcp", *options]
    return mcp_session(argv, env=env, stderr=stderr, secrets=[TOKEN])


async def test_tools_have_schemas_descriptions_and_annotations(env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        listed = {t.name: t for t in (await client.session.list_tools()).tools}
        # run_on_foundries_device only with --allow-commands.
        assert set(listed) == set(TOOLS)
        for name, kind in TOOLS.items():
            tool = listed[name]
            assert tool.description and len(tool.description) > 200, name
            assert tool.inputSchema["type"] == "object"
            assert tool.outputSchema and tool.outputSchema["type"] == "object", name
            hints = tool.annotations
            assert hints is not None and hints.title, name
            assert hints.readOnlyHint is (kind == "read"), name
            if kind != "read":
                assert hints.destructiveHint is (kind == "destroy"), name
                assert hints.idempotentHint is True, name
        devices = listed["list_foundries_devices"].inputSchema["properties"]
        assert {"factory", "search", "tag", "group", "target", "online", "vpn", "limit"} <= set(
            devices
        )
        assert devices["limit"]["maximum"] == 500 and devices["limit"]["default"] == 50
        assert devices["vpn"]["anyOf"][0]["enum"] == ["enabled", "disabled", "pending"]
        assert listed["foundries_device_vpn"].inputSchema["required"] == ["device"]
        route = listed["foundries_ssh_command"].inputSchema["properties"]["route"]
        assert route["anyOf"][0]["enum"] == ["jump", "direct", "public"]
        (guide,) = (await client.session.list_resources()).resources
        text = (await client.session.read_resource(guide.uri)).contents[0].text
        assert "pending" in text and "jump" in text


async def test_listing_counts_every_match_and_returns_the_first_n(env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        everything = await client.call("list_foundries_devices")
        assert (everything["total_devices"], everything["matched"]) == (RACK + 3, RACK + 3)
        assert everything["returned"] == 50 and len(everything["devices"]) == 50
        assert everything["vpn_enabled"] == 1 and everything["vpn_disabled"] == RACK + 2
        assert everything["top_groups"]["rack"] == RACK
        assert "Narrow with search" in everything["narrow"]
        names = [d["name"] for d in everything["devices"]]
        assert names == sorted(names) and names[:3] == ["alpha", "beta", "nokey"]

        rack = await client.call("list_foundries_devices", group="rack", online=False, limit=5)
        assert (rack["matched"], rack["returned"], rack["online"]) == (RACK // 3, 5, 0)
        assert rack["filters"] == "group=rack offline"
        lab = await client.call("list_foundries_devices", search="lab ALPHA")
        assert [d["name"] for d in lab["devices"]] == ["alpha"] and lab["narrow"] is None
        (alpha,) = lab["devices"]
        assert alpha == {
            "name": "alpha",
            "online": True,
            "last_seen": alpha["last_seen"],
            "target": "lmp-alpha",
            "group": "lab",
            "tag": "main",
            "vpn": "enabled",
            "vpn_address": "10.42.42.2",
        }
        enabled = await client.call("list_foundries_devices", vpn="enabled", target="lmp-*")
        assert [d["name"] for d in enabled["devices"]] == ["alpha"]


async def test_enable_is_pending_until_the_device_applies_it(factory, env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        changed = await client.call("enable_foundries_vpn_device", device="beta")
        assert (changed["enabled"], changed["pending"], changed["applied"]) == (True, True, False)
        assert changed["address"] == "10.42.42.3" and changed["stage"] == "pending"
        assert changed["reachable"] is None and changed["reason"] is None
        assert "pending until the device applies it" in changed["message"]
        assert (
            factory.current_file("beta", "wireguard-client") == f"address=10.42.42.3\npubkey={KEY}"
        )
        listed = await client.call("list_foundries_devices", vpn="pending")
        assert [d["name"] for d in listed["devices"]] == ["beta"]
        state = await client.call("foundries_device_vpn", device="beta")
        assert state == {
            "factory": FACTORY,
            "device": "beta",
            "enabled": True,
            "address": "10.42.42.3",
            "public_key": KEY,
            "pending": True,
            "applied": False,
        }
        factory.apply_pending("beta")
        state = await client.call("foundries_device_vpn", device="beta")
        assert (state["pending"], state["applied"]) == (False, True)
        off = await client.call("disable_foundries_vpn_device", device="beta")
        assert (off["enabled"], off["pending"], off["address"]) == (False, True, "10.42.42.3")
        assert factory.current_file("beta", "wireguard-client").endswith("\nenabled=0")


async def test_a_wait_follows_the_device_and_says_why_it_stopped(env, tmp_path, factory):
    # No tunnel on this machine: applied, then not reachable, and why (as enable --wait).
    factory.auto_apply_after = 0.0
    factory.add_device("lab-0", vpn_enabled=False)
    async with served(env, tmp_path / "mcp.err") as client:
        on = await client.call("enable_foundries_vpn_device", device="lab-0", wait_seconds=3)
        assert (on["stage"], on["applied"], on["reachable"]) == ("applied", True, False)
        assert "has no tunnel on this computer for the jump route" in on["reason"]
        assert on["message"].startswith("VPN enabled on lab-0 (address 10.42.42.")
        off = await client.call("disable_foundries_vpn_device", device="lab-0", wait_seconds=10)
        assert (off["stage"], off["pending"], off["reachable"], off["reason"]) == (
            "applied",
            False,
            None,
            None,
        )
        listed = await client.call("foundries_device_vpn", device="lab-0")
        assert (listed["enabled"], listed["applied"]) == (False, True)


async def test_failures_are_tool_errors_with_the_clis_sentence(env, server, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        cases = [
            (("enable_foundries_vpn_device", {"device": "nokey"}), ("enable", "nokey")),
            (("foundries_device_vpn", {"device": "ghost"}), ("device-vpn", "ghost")),
            (
                ("foundries_device_vpn", {"device": "-oProxyCommand=x"}),
                ("device-vpn", "--", "-oProxyCommand=x"),
            ),
            (("foundries_ssh_command", {"device": "beta"}), ("ssh", "beta", "--print")),
            (("list_foundries_devices", {"factory": "other"}), ("devices", "--factory", "other")),
        ]
        for (tool, arguments), argv in cases:
            text, code = await client.error(tool, **arguments)
            line = cli(env, *argv)
            assert line.returncode == 1, line.stderr
            assert f"fiotray: {text}\n" == line.stderr, (tool, line.stderr)
            assert code and code != "internal"
        assert patches(server) == []
        # The SDK's schema checks: which argument is wrong, not what was sent.
        text, code = await client.error("list_foundries_devices", limit=100000, vpn="weird")
        assert text.startswith("Invalid arguments for list_foundries_devices: ")
        assert "limit" in text and "vpn" in text and "100000" not in text
        assert code == "usage"
        server.inject(
            "GET",
            r"^/ota/factories/.*/wireguard-ips/$",
            status=403,
            body={"msg": "You lack devices:read on this factory"},
        )
        text, code = await client.error("list_foundries_devices")
        assert "403 Forbidden: You lack devices:read on this factory" in text


async def test_refused_sign_in_says_sign_in_again(factory, env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        factory.revoke(TOKEN)
        text, code = await client.error("list_foundries_devices")
        assert code == "auth" and "sign in again" in text.lower()
        line = cli(env, "devices")
        assert line.returncode == 3 and f"fiotray: {text}\n" == line.stderr


def patches(server) -> list[dict]:
    return [json.loads(r.body) for r in server.requests if r.method == "PATCH"]


async def test_ssh_command_is_given_not_run(env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        cmd = await client.call("foundries_ssh_command", device="alpha")
        assert cmd["route"] == "jump" and cmd["argv"][0] == "ssh"
        assert cmd["argv"][-1] == "fio@10.42.42.2" and "-J" in cmd["argv"]
        assert any(a.startswith("HostKeyAlias=") for a in cmd["argv"])
        assert cmd["tunnel"] is None and cmd["tunnel_up"] is None
        assert "Not run" in cmd["note"]
        direct = await client.call("foundries_ssh_command", device="alpha", route="direct")
        assert "-J" not in direct["argv"]


async def test_status_without_tunnels(env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        status = await client.call("foundries_vpn_status")
        assert status["tunnels"] == [] and "No tunnel is configured" in status["summary"]
        text, _ = await client.error("connect_foundries_vpn")
        line = cli(env, "connect")
        assert f"fiotray: {text}\n" == line.stderr


async def test_commands_are_refused_unless_allowed(env, tmp_path):
    async with served(env, tmp_path / "mcp.err") as client:
        listed = {t.name for t in (await client.session.list_tools()).tools}
        assert "run_on_foundries_device" not in listed
        text, code = await client.error("run_on_foundries_device", device="alpha", command="id")
        assert "--allow-commands" in text and code == "not-allowed"
        argv = [sys.executable, "-m", "fiotray", "mcp", "--allow-commands", "--devices", "lab-*"]
        async with mcp_session(argv, env=env, stderr=tmp_path / "allowed.err") as allowed:
            tools = {t.name: t for t in (await allowed.session.list_tools()).tools}
            run = tools["run_on_foundries_device"]
            assert run.annotations.destructiveHint is True and run.annotations.readOnlyHint is False
            assert run.inputSchema["required"] == ["device", "command"]
            text, code = await allowed.error(
                "run_on_foundries_device", device="alpha", command="id"
            )
            assert "only on devices matching lab-*" in text and code == "not-allowed"


def test_devices_needs_allow_commands(env):
    usage = cli(env, "mcp", "--devices", "lab-*")
    assert usage.returncode == 2 and "--allow-commands" in usage.stderr


def test_stdout_carries_only_the_protocol(env, tmp_path):
    """Raw JSON-RPC over the pipes: every line on stdout is a protocol message."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "list_foundries_devices", "arguments": {"limit": 1}},
        },
    ]
    errors = tmp_path / "stderr"
    with errors.open("w") as err:  # a file: -vv can write more than a pipe holds
        proc = subprocess.Popen(
            [sys.executable, "-m", "fiotray", "-vv", "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    proc.stdin.flush()
    lines = []
    deadline = time.monotonic() + 60
    while len(lines) < 3:
        # The answers come in their own time: wait for each, within the deadline.
        ready, _, _ = select.select([proc.stdout], [], [], max(0, deadline - time.monotonic()))
        assert ready, f"only {len(lines)} replies within 60 s"
        lines.append(proc.stdout.readline())
    proc.stdin.close()  # the client leaves: the server ends
    assert proc.wait(timeout=30) == 0, errors.read_text()
    assert proc.stdout.read() == ""
    proc.stdout.close()
    stderr = errors.read_text()
    replies = [json.loads(line) for line in lines]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[0]["result"]["serverInfo"]["name"] == "fiotray"
    assert replies[2]["result"]["structuredContent"]["returned"] == 1
    # -vv logged at debug level, on stderr (and to the log file), never on stdout.
    assert "DEBUG" in stderr
    log = Path(env["XDG_STATE_HOME"]) / "fiotray" / "fiotray.log"
    assert "MCP server started" in log.read_text()


async def test_demo_tunnel_connects_and_disconnects(tmp_path):
    """`fiotray --demo mcp`: the demo's simulated tunnel, as the tray's demo has it."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "fiotray", "--demo", "mcp"]
    async with mcp_session(argv, env=env, stderr=tmp_path / "demo.err") as client:
        (down,) = (await client.call("foundries_vpn_status"))["tunnels"]
        assert (down["name"], down["state"], down["is_default"]) == (
            "demo-factory",
            "disconnected",
            True,
        )
        assert down["why_not_connected"].startswith("down")
        up = await client.call("connect_foundries_vpn", wait_seconds=5)
        assert up["tunnel"]["state"] == "connected" and up["tunnel"]["connected"]
        assert up["tunnel"]["why_not_connected"] is None
        assert "polkit may have shown a password prompt" in up["message"]
        (now,) = (await client.call("foundries_vpn_status"))["tunnels"]
        assert now["handshake_age_seconds"] is not None and now["state"] == "connected"
        listed = await client.call("list_foundries_devices", vpn="enabled", limit=1)
        device = listed["devices"][0]["name"]
        ssh = await client.call("foundries_ssh_command", device=device)
        assert ssh["tunnel_up"] is True
        gone = await client.call("disconnect_foundries_vpn", tunnel="demo-factory")
        assert gone["tunnel"]["state"] == "disconnected"
        ssh = await client.call("foundries_ssh_command", device=device)
        assert ssh["tunnel_up"] is False and "connect_foundries_vpn first" in ssh["note"]
