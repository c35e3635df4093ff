"""System tools (wg-quick, wg, ip) by absolute path, run on subprocess with a fixed environment.

Root runs these on a user's behalf, so nothing about the run comes from the caller: tools are
looked up in the system directories only (never PATH), and run with a fixed environment, in
/, with no inherited file descriptors and in a session of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from fiotray.wg.errors import EXIT_MISSING_TOOL, EXIT_WG_QUICK, WgError, sanitize

# Tools are only taken from system directories: PATH belongs to the caller.
TOOL_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TOOL_PACKAGES = {
    "wg-quick": "wireguard-tools",
    "wg": "wireguard-tools",
    "ip": "iproute2",
    "wireguard-go": "wireguard-go",
}

# A timed-out tool's process group gets SIGTERM first, so that wg-quick's trap removes a
# half-made interface, then SIGKILL; each is followed by this many seconds' grace.
STOP_GRACE = 5.0


class ToolTimeout(WgError):
    """A tool did not finish in time; it was stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, tool: str, timeout: float) -> None:
        self.timeout = timeout
        name = os.path.basename(tool)
        super().__init__(EXIT_WG_QUICK, f"{name} timed out after {timeout:g} s")


def find_tool(name: str) -> str | None:
    for directory in TOOL_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise WgError(
            EXIT_MISSING_TOOL,
            f"{name} not found in {', '.join(TOOL_DIRS)}: "
            f"install the Debian package {TOOL_PACKAGES.get(name, name)}",
        )
    return path


def tool_env() -> dict[str, str]:
    env = {"PATH": TOOL_PATH, "LANG": "C"}
    if find_tool("wireguard-go"):
        # wg-quick still prefers the kernel module where there is one.
        env["WG_QUICK_USERSPACE_IMPLEMENTATION"] = "wireguard-go"
        env["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1"
    return env


def run_tool(
    argv: list[str], timeout: float, *, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run argv (absolute path, no shell) with tool_env(); its exit code and output.

    stdin is `input` (or /dev/null), stdout and stderr are captured; cwd is /, no descriptor
    but 0-2 is passed on, and the tool gets a session, so a process group, of its own.
    Output is read to end-of-file: wireguard-go, the one daemon wg-quick starts, gives its
    daemon /dev/null (unless LOG_LEVEL is set, which tool_env never does).

    On timeout the tool's process group is stopped (see STOP_GRACE) and ToolTimeout raised.
    """
    if not os.path.isabs(argv[0]):  # cwd is /, and PATH must play no part
        raise ValueError("run_tool needs an absolute path")
    # Not subprocess.run: on timeout it SIGKILLs the tool alone, and a killed wg-quick
    # leaves its half-made interface behind.
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=tool_env(),
        cwd="/",
        close_fds=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ToolTimeout(argv[0], timeout) from None
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # not reaped yet, so its pid is still its group's id
        try:
            proc.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def last_error_line(stderr: bytes, secrets: list[str]) -> str:
    """wg-quick's last line that is not an echo of a command it ran ("[#] ...")."""
    for raw in reversed(stderr.decode("utf-8", "replace").splitlines()):
        line = raw.strip()
        if line and not line.startswith("[#]"):
            return sanitize(line, secrets=secrets)
    return "no error output"
