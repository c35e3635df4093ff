"""fiotray.wg.tools: finding tools and running them on subprocess, with real (tiny) tools."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fiotray.wg import tools
from fiotray.wg.errors import EXIT_MISSING_TOOL, EXIT_WG_QUICK, WgError
from tests.unit.wgsamples import PRIV


def tool(tmp_path: Path, body: str, name: str = "tool") -> str:
    """An executable shell script; its absolute path."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --------------------------------------------------------------------------- run_tool


def test_exit_code_and_output_captured(tmp_path: Path) -> None:
    done = tools.run_tool([tool(tmp_path, "echo out; echo err >&2; exit 3\n"), "a b"], 10)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


def test_stdin_is_the_given_bytes_or_nothing(tmp_path: Path) -> None:
    cat = tool(tmp_path, "exec cat\n")
    assert tools.run_tool([cat], 10, input=b"[Interface]\n").stdout == b"[Interface]\n"
    assert tools.run_tool([cat], 10).stdout == b""  # /dev/null, never the caller's stdin


def test_fixed_environment_cwd_and_no_inherited_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("WG_QUICK_USERSPACE_IMPLEMENTATION", "/tmp/evil")
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    # One a careless caller left open for children, at a number no shell uses itself.
    leaked = os.dup2(write_end, 123, inheritable=True)
    try:
        script = tool(tmp_path, "env; echo cwd=$(pwd); ls /proc/$$/fd | tr '\\n' ' '\n")
        lines = tools.run_tool([script], 10).stdout.decode().splitlines()
    finally:
        for fd in (read_end, write_end, leaked):
            os.close(fd)
    *env_lines, cwd, fds = lines
    # sh adds PWD (and may add SHLVL) itself; everything else is tool_env()'s.
    env = dict(line.split("=", 1) for line in env_lines)
    env = {k: v for k, v in env.items() if k not in ("PWD", "SHLVL", "OLDPWD", "_")}
    assert env == tools.tool_env()
    assert "LD_PRELOAD" not in env
    assert env.get("WG_QUICK_USERSPACE_IMPLEMENTATION") in (None, "wireguard-go")
    assert cwd == "cwd=/"
    assert "123" not in fds.split()


def test_absolute_path_required() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        tools.run_tool(["true"], 10)


def test_timeout_stops_the_tool_and_its_group_and_says_so(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tool(tmp_path, f"sleep 60 & echo $$ $! > {pids}; wait\n", name="wg-quick")
    start = time.monotonic()
    with pytest.raises(tools.ToolTimeout) as info:
        tools.run_tool([script, "up", "x"], 0.5)
    assert time.monotonic() - start < 4  # SIGTERM was enough: no SIGKILL grace spent
    assert info.value.code == EXIT_WG_QUICK
    assert info.value.message == "wg-quick timed out after 0.5 s"
    assert info.value.timeout == 0.5
    shell, child = map(int, pids.read_text().split())
    assert gone(shell)  # reaped by run_tool
    assert wait_gone(child), "the tool's background child outlived the timeout"


def test_timeout_gives_the_tool_a_chance_to_clean_up(tmp_path: Path) -> None:
    # wg-quick removes a half-made interface in its TERM trap: SIGTERM must come first.
    cleaned = tmp_path / "cleaned"
    script = tool(tmp_path, f"trap 'echo yes > {cleaned}; exit 1' TERM\nsleep 60 & wait\n")
    with pytest.raises(tools.ToolTimeout):
        tools.run_tool([script], 0.5)
    assert cleaned.read_text() == "yes\n"


def test_a_tool_ignoring_sigterm_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "STOP_GRACE", 0.3)
    pid_file = tmp_path / "pid"
    script = tool(tmp_path, f"trap '' TERM\necho $$ > {pid_file}\nwhile :; do sleep 0.05; done\n")
    start = time.monotonic()
    with pytest.raises(tools.ToolTimeout):
        tools.run_tool([script], 0.3)
    assert time.monotonic() - start < 3
    assert gone(int(pid_file.read_text()))


# --------------------------------------------------------------------------- finding tools


def test_missing_tool_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tools, "TOOL_DIRS", (str(tmp_path),))
    with pytest.raises(WgError) as info:
        tools.require_tool("wg-quick")
    assert info.value.code == EXIT_MISSING_TOOL
    assert "install the Debian package wireguard-tools" in info.value.message
    assert "WG_QUICK_USERSPACE_IMPLEMENTATION" not in tools.tool_env()
    fake = tmp_path / "wireguard-go"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert tools.tool_env() == {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C",
        "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
        "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
    }


def test_wg_quick_stderr_reduced_to_one_clean_line() -> None:
    stderr = (
        b"[#] ip link add wgx type wireguard\n"
        b"Error: Unknown device type.\n"
        b"Key is not the correct length or format: `" + PRIV.encode() + b"'\n"
        b"[#] ip link delete dev wgx\n\n"
    )
    line = tools.last_error_line(stderr, [PRIV])
    assert line == "Key is not the correct length or format: `<redacted>'"
    assert tools.last_error_line(b"[#] only commands\n", []) == "no error output"
    assert len(tools.last_error_line(b"word " * 300 + b"\n", [])) == 200
    assert tools.last_error_line("bad \x1b \u00e9\n".encode(), []) == "bad ? ?"
