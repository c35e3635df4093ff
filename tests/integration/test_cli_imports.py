"""What `fiotray devices` loads, signed in with a token in a real Secret Service.

An API command needs httpx, keyring's Secret Service backend and its D-Bus stack (which
brings cryptography); it needs neither PyYAML (only `login --from-fioctl` reads YAML) nor
the keyring backends of other systems: keyring's macOS module alone costs ~25 ms on Linux
(ctypes.util.find_library runs ldconfig and a compiler) before it reports itself unusable.
The commands that need none of these are held to that in tests/unit/test_import_budget.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from fiotray.demo.fakeapi import FakeFactory
from tests.unit.test_import_budget import COMMAND, ROOT, loaded
from tests.user_config import cli_env

FACTORY = "imports-factory"
TOKEN = "imports-api-token-5c1e"


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory(FACTORY)
    f.add_api_token(TOKEN)
    f.add_device("alpha", vpn_address="10.42.42.2")
    return f


def test_devices_loads_only_what_it_uses(tmp_path, secret_service, server):
    env = {**cli_env(tmp_path, secret_service.bus_address), "PYTHONPATH": str(ROOT)}
    login = ["login", "--factory", FACTORY, "--api-url", server.api_url, "--api-token-stdin"]
    subprocess.run(
        [sys.executable, "-m", "fiotray", *login],
        input=TOKEN,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(COMMAND.replace("ARGV", "['devices']"))],
        text=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "alpha" in proc.stdout  # it did list the devices
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "keyring.backends.SecretService" in modules
    assert loaded(modules, ("yaml",)) == []
    others = ("keyring.backends.macOS", "keyring.backends.Windows", "win32ctypes", "pywintypes")
    assert loaded(modules, others) == []
