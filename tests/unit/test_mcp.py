"""The MCP server's pieces without a process: result shaping, errors that must not leak,
the missing-SDK message, and ops.ssh.run_remote (its timeout, cap and exit status).

The server is reached through the SDK's in-memory client, over the demo services.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fiotray.core.errors import FiotrayError
from fiotray.core.ssh import SshSettings, SshTarget
from fiotray.mcp import results
from fiotray.ops import ssh

SECRET = "super-secret-value-8842"


# -- the server, in memory ----------------------------------------------------------------


async def test_unexpected_failures_name_the_log_not_the_exception(services, monkeypatch, caplog):
    from mcp.shared.memory import create_connected_server_and_client_session

    from fiotray.mcp.server import Policy, build_server
    from fiotray.ops import tunnels

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"token={SECRET}")

    monkeypatch.setattr(tunnels, "status", broken)
    server = build_server(services, Policy(), log_path="/home/u/.local/state/fiotray/fiotray.log")
    with caplog.at_level(logging.ERROR, logger="fiotray.mcp.server"):
        async with create_connected_server_and_client_session(server) as client:
            result = await client.call_tool("foundries_vpn_status", {})
    assert result.isError
    (content,) = result.content
    assert content.text == (
        "foundries_vpn_status failed unexpectedly (RuntimeError); the details are in "
        "fiotray's log file, /home/u/.local/state/fiotray/fiotray.log."
    )
    assert SECRET not in str(result.model_dump())
    assert result.meta == {"fiotray/code": "internal"}
    # The traceback went to the log, for whoever debugs it.
    assert any(r.exc_info and SECRET in str(r.exc_info[1]) for r in caplog.records)


async def test_commands_on_allowed_devices_only(services):
    from mcp.shared.memory import create_connected_server_and_client_session

    from fiotray.mcp.server import Policy, build_server

    server = build_server(services, Policy(allow_commands=True, devices=("lab-*", "on-*")))
    async with create_connected_server_and_client_session(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "run_on_foundries_device" in names
        refused = await client.call_tool(
            "run_on_foundries_device", {"device": "off-vpn", "command": "id"}
        )
        assert refused.isError
        assert refused.content[0].text == (
            "Commands are not allowed on 'off-vpn': the server allows them only on devices "
            "matching lab-* on-* (fiotray mcp --devices)."
        )
        # Allowed, but the demo's tunnel is down: the route's check answers, nothing runs.
        down = await client.call_tool(
            "run_on_foundries_device", {"device": "on-vpn", "command": "id"}
        )
        assert down.isError and "is down" in down.content[0].text
        assert down.meta == {"fiotray/code": "tunnel-down"}


def test_policy_without_commands_refuses_every_device():
    from fiotray.mcp.server import Policy

    with pytest.raises(FiotrayError, match="--allow-commands"):
        Policy().check_device("anything")
    Policy(allow_commands=True).check_device("anything")


# -- without the SDK -------------------------------------------------------------------------


async def test_without_the_sdk_mcp_says_how_to_get_it(monkeypatch, services):
    import argparse

    from fiotray.cli import mcp as cli_mcp
    from fiotray.cli.output import Context

    for name in [
        m for m in sys.modules if m.partition(".")[0] == "mcp" or m.startswith("fiotray.mcp")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an uninstalled package looks like
    args = argparse.Namespace(demo=True, allow_commands=False, devices=None)
    with pytest.raises(FiotrayError) as refused:
        await cli_mcp.cmd_mcp(args, Context(services))
    assert "pip install 'fiotray[mcp]'" in str(refused.value)
    assert "\n" not in str(refused.value)
    # The .deb's bundle: no pip into it; a Python install of fiotray serves MCP instead.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    text = cli_mcp.missing_sdk()
    assert "the .deb" in text and ".[mcp]" in text and "fiotray[mcp]'" not in text


# -- shaping ------------------------------------------------------------------------------


async def test_listing_is_capped_and_counts_every_match(services):
    from fiotray.ops import devices

    fake = services.demo.server.factory
    for i in range(30):
        fake.add_device(f"bulk-{i:02d}", group="bulk", vpn_enabled=False)
    rows = await devices.list_devices(services)
    where = devices.Selector(group="bulk")
    matched = devices.filter_rows(rows, where=where)
    shaped = results.device_list("demo-factory", rows, matched, limit=7, search=None, where=where)
    assert (shaped.total_devices, shaped.matched, shaped.returned) == (len(rows), 30, 7)
    assert [d.name for d in shaped.devices] == [f"bulk-{i:02d}" for i in range(7)]
    assert shaped.top_groups == {"bulk": 30} and shaped.narrow
    # Beyond the cap, the cap: a model cannot ask for 50,000 rows.
    huge = results.device_list("f", rows, rows, limit=10**6, search="x", where=devices.Selector())
    assert huge.returned == min(len(rows), results.MAX_LIMIT) and huge.filters == "search='x'"
    every = results.device_list("f", rows, matched, limit=500, search=None, where=where)
    assert every.narrow is None


def test_server_text_is_escaped():
    from datetime import UTC, datetime

    from fiotray.core.devices import DeviceRow
    from fiotray.core.models import Device

    device = Device.from_json(
        {"name": "evil", "target-name": "t\x1b]0;owned\x07", "device-group": "g\u202e1", "tag": "x"}
    )
    info = results.device_info(
        DeviceRow(device, True, "10.0.0.1", False), "enabled", datetime.now(UTC)
    )
    assert info.target == "t\\x1b]0;owned\\x07" and info.group == "g\\u202e1"


# -- ops.ssh.run_remote -------------------------------------------------------------------------


@pytest.fixture
def fake_ssh(tmp_path: Path) -> Path:
    """An "ssh" that runs its last argument (the remote command) with sh, here."""
    script = tmp_path / "ssh"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys
            assert sys.argv[1:5] == ["-o", "BatchMode=yes", "-T", "-n"], sys.argv
            os.execvp("sh", ["sh", "-c", sys.argv[-1]])
            """
        )
    )
    script.chmod(0o755)
    return script


def remote(script: Path, command: str) -> ssh.SshCommand:
    argv = [str(script), "-o", "HostKeyAlias=x", "--", "fio@10.0.0.1", command]
    target = SshTarget("f", "dev", "10.0.0.1", "10.0.0.254")
    return ssh.SshCommand("f", "dev", argv, SshSettings(route="public"), None, target)


async def test_run_remote_returns_status_and_output(services, fake_ssh):
    run = await ssh.run_remote(services, remote(fake_ssh, "echo out; echo err >&2; exit 3"))
    assert (run.exit_status, run.stdout, run.stderr) == (3, b"out\n", b"err\n")
    assert not (run.timed_out or run.stdout_truncated or run.stderr_truncated)


async def test_run_remote_caps_output_and_reads_to_the_end(services, fake_ssh):
    cmd = remote(fake_ssh, "head -c 300000 /dev/zero; echo done >&2")
    run = await ssh.run_remote(services, cmd, max_output=1000)
    assert len(run.stdout) == 1000 and run.stdout_truncated
    assert run.stderr == b"done\n" and run.exit_status == 0


async def test_run_remote_stops_at_the_timeout_with_its_children(services, fake_ssh, tmp_path):
    pid_file = tmp_path / "child"
    cmd = remote(fake_ssh, f"echo early; sleep 60 & echo $! > {pid_file}; wait")
    started = time.monotonic()
    run = await ssh.run_remote(services, cmd, timeout=1.0)
    assert time.monotonic() - started < 10
    assert run.timed_out and run.exit_status is None and run.stdout == b"early\n"
    child = int(pid_file.read_text())
    # Killed with its group; reaped by init, so gone or a zombie on its way out.
    state = Path(f"/proc/{child}/stat")
    assert not state.exists() or state.read_text().split()[2] == "Z"
    shaped = results.command_result(cmd, "x", run, 1.0)
    assert shaped.timed_out and "Stopped after 1 s" in shaped.notes[0]


def test_batch_argv_puts_batchmode_first():
    cmd = remote(Path("ssh"), "id")
    assert ssh.batch_argv(cmd)[:5] == ["ssh", "-o", "BatchMode=yes", "-T", "-n"]
    assert ssh.batch_argv(cmd)[-2:] == ["fio@10.0.0.1", "id"]
    assert os.path.basename(ssh.batch_argv(cmd)[0]) == "ssh"
