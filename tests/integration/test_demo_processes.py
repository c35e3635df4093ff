"""The demo across processes: one simulated tunnel and one fiotray per user.

Real processes only: the tray app (offscreen) and `fiotray --demo` commands, each with
its own demo services, meeting in the user's runtime dir (each test has its own, see
tests/conftest.py) as they do on a desktop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fiotray.core.services import demo_services
from fiotray.core.tunnels import State
from fiotray.demo.factory import DEMO_FACTORY
from fiotray.gui.app import ALREADY_RUNNING, ALREADY_RUNNING_REAL
from tests.app_socket import AppSocket, wait_for
from tests.procs import stop
from tests.user_config import write_user_config


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A user with nothing set up (the app starts the demo), no keyring, no tray."""
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_DIRS": str(tmp_path / "etc-xdg"),
        "TMPDIR": str(tmp_path),  # the demo's temp stores and log
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }


def fiotray(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "fiotray", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, f"fiotray {' '.join(args)}: {proc.returncode}: {proc.stderr}"
    return proc


def status_json(env: dict[str, str]) -> dict:
    (tunnel,) = json.loads(fiotray(env, "--demo", "status", "--json").stdout)
    assert tunnel["tunnel"] == DEMO_FACTORY
    return tunnel


def socket_path() -> Path:
    return Path(os.environ["XDG_RUNTIME_DIR"]) / f"fiotray-{os.getuid()}.sock"


def start_app(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, AppSocket]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiotray", "--hidden", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = AppSocket(socket_path())

    def answering() -> bool:
        assert proc.poll() is None, f"the app exited: {proc.communicate()[1]}"
        try:
            return bool(app.status()["ok"])
        except OSError:
            return False

    wait_for("the app's socket", answering, timeout=30)
    return proc, app


def quit_app(proc: subprocess.Popen, app: AppSocket) -> None:
    try:
        assert app.request("quit") == {"ok": True}
        assert proc.wait(15) == 0
    finally:
        stop(proc)


async def test_the_cli_and_the_tray_demo_share_one_simulated_tunnel(env):
    """`fiotray --demo connect` / `status` / `disconnect`, the tray's demo and a third
    process with demo services all see and change the same tunnel."""
    assert status_json(env)["state"] == "disconnected"
    assert "connected" in fiotray(env, "--demo", "connect").stdout
    up = status_json(env)
    assert up["state"] == "connected" and up["endpoint"] == "vpn.example.test:5555"

    # The tray's demo, started now, shows the tunnel the command brought up.
    proc, app = start_app(env, "--demo")
    try:
        wait_for("the tray to see the tunnel up", lambda: app.tunnel() == "connected")
        # A third process's demo services: the same interface, up.
        services = demo_services(devices=2)
        try:
            (seen,) = await services.controller.status(DEMO_FACTORY)
            assert seen.state is State.CONNECTED and not seen.foreign

            # Taken down by another command: the tray and the third process see it down.
            assert "disconnected" in fiotray(env, "disconnect", "--demo").stdout
            wait_for("the tray to see the tunnel down", lambda: app.tunnel() == "disconnected")
            (seen,) = await services.controller.status(DEMO_FACTORY)
            assert seen.state is State.DISCONNECTED
            assert status_json(env)["state"] == "disconnected"

            # And the other way round: brought up here, the command sees it.
            await services.controller.connect(DEMO_FACTORY, wait=5.0)
            assert status_json(env)["state"] == "connected"
            await services.controller.disconnect(DEMO_FACTORY)
        finally:
            await services.aclose()
    finally:
        quit_app(proc, app)
    shared = Path(os.environ["XDG_RUNTIME_DIR"]) / f"fiotray-{os.getuid()}-demo-net"
    assert shared.is_dir() and list(shared.iterdir()) == []


def test_the_automatic_demo_and_demo_are_one_instance(env):
    """fiotray started with nothing set up shows the demo; `fiotray --demo` then brings
    that one forward instead of adding a second icon."""
    proc, app = start_app(env)  # nothing configured: the automatic demo
    try:
        before = app.status()
        assert before["demo"] is True and before["window"] is False  # --hidden
        second = fiotray(env, "--demo")
        assert ALREADY_RUNNING in second.stderr
        assert app.status()["window"] is True  # brought forward
        again = fiotray(env)  # a plain launch finds it too
        assert ALREADY_RUNNING in again.stderr
        runtime = Path(os.environ["XDG_RUNTIME_DIR"])
        assert sorted(p.name for p in runtime.glob("*.sock")) == [socket_path().name]
        assert proc.poll() is None
    finally:
        quit_app(proc, app)


def test_demo_while_the_users_factory_runs_says_so(env, tmp_path):
    write_user_config(tmp_path / "config")
    proc, app = start_app(env)  # the user's own factory: not a demo
    try:
        assert app.status()["demo"] is False
        second = fiotray(env, "--demo", code=1)
        assert second.stderr.strip() == ALREADY_RUNNING_REAL
        assert app.status()["window"] is True
    finally:
        quit_app(proc, app)
