"""The CLI end to end as an engineer uses it: real gnome-keyring, fake API over real HTTP.

Signs in with application credentials, lists devices across a token expiry
(between two commands and in the middle of one), signs out, then scans every
place the app could have written to for the client secret and every token it
was handed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from fiotray.core.secrets import SecretStore, factory_key
from fiotray.demo.fakeapi import FakeApiServer, FakeFactory

FACTORY = "e2e-factory"
CLIENT_ID = "e2e-client-id"
CLIENT_SECRET = "e2e-client-secret-Zq9xW7vK2mP4"
DEVICES = 1234  # three pages of 500


class JumpClock:
    """The fake's clock: real time plus an offset the test moves to expire tokens."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def world(tmp_path, secret_service):
    factory = FakeFactory(FACTORY)
    factory.populate(DEVICES, seed=3)
    factory.set_wireguard_server()
    factory.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
    factory.clock = JumpClock()
    dirs = {name: tmp_path / name for name in ("home", "config", "cache", "state", "data", "tmp")}
    for d in dirs.values():
        d.mkdir()
    env = {
        **os.environ,
        "HOME": str(dirs["home"]),
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "XDG_STATE_HOME": str(dirs["state"]),
        "XDG_DATA_HOME": str(dirs["data"]),
        "TMPDIR": str(dirs["tmp"]),
        "DBUS_SESSION_BUS_ADDRESS": secret_service.bus_address,
    }
    env.pop("PYTHON_KEYRING_BACKEND", None)
    with FakeApiServer(factory) as server:
        yield factory, server, env, dirs, secret_service


def run(env, *args, stdin: str | None = None, outputs: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "fiotray", "-vv", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 0, f"fiotray {' '.join(args)} failed: {proc.stderr[-2000:]}"
    return proc


def token_grants(server, grant: str) -> int:
    return sum(
        1
        for r in server.requests
        if r.method == "POST"
        and r.path.endswith("/token/")
        and f"grant_type={grant}" in r.body.decode()
    )


def expire_after(factory: FakeFactory, calls: int) -> threading.Event:
    """Move the fake's clock past every token's life after `calls` authenticated requests."""
    done = threading.Event()
    real = factory.authenticate
    count = [0]

    def authenticate(headers):
        result = real(headers)
        count[0] += 1
        if count[0] == calls:
            factory.clock.offset += 2 * factory.token_ttl
            done.set()
        return result

    factory.authenticate = authenticate
    return done


def test_sign_in_list_across_expiry_sign_out_leaves_no_secret(world):
    factory, server, env, dirs, keyring_session = world
    outputs: list[str] = []
    started = time.time()

    run(
        env,
        "login",
        "--factory",
        FACTORY,
        "--oauth-url",
        server.oauth_url,
        "--api-url",
        server.api_url,
        "--client-id",
        CLIENT_ID,
        "--client-secret-stdin",
        stdin=CLIENT_SECRET + "\n",
        outputs=outputs,
    )
    assert token_grants(server, "client_credentials") == 1

    listed = json.loads(run(env, "devices", "--json", outputs=outputs).stdout)
    assert len(listed) == DEVICES
    assert {d["name"] for d in listed} == set(factory.devices)

    # Every token expires between two commands: the next one refreshes and goes on.
    factory.clock.offset += 2 * factory.token_ttl
    listed = json.loads(run(env, "devices", "--json", outputs=outputs).stdout)
    assert len(listed) == DEVICES
    assert token_grants(server, "refresh_token") == 1

    # ... and in the middle of a listing, after its first page: still one refresh.
    expired = expire_after(factory, 1)
    listed = json.loads(run(env, "devices", "--json", outputs=outputs).stdout)
    assert expired.is_set()
    assert len(listed) == DEVICES
    assert token_grants(server, "refresh_token") == 2

    store = SecretStore()
    assert store.get(factory_key(FACTORY, "client_secret")) == CLIENT_SECRET
    run(env, "logout", "--factory", FACTORY, outputs=outputs)
    for kind in ("client_secret", "oauth_token", "api_token"):
        assert store.get(factory_key(FACTORY, kind)) is None, f"{kind} left in the keyring"
    assert "No factory configured" in run(env, "factories", outputs=outputs).stdout

    secrets = {CLIENT_SECRET, *factory.issued_tokens}
    # The Bearer header carries the access token base64-encoded: look for that form too.
    secrets |= {base64.b64encode(t.encode()).decode() for t in factory.issued_tokens}
    assert len(factory.issued_tokens) >= 6  # 3 grants, an access and a refresh token each

    scanned = 0
    roots = [*dirs.values(), keyring_session.data_dir, Path(tempfile.gettempdir())]
    for root in roots:
        # os.walk, not rglob: other processes may remove temp files while we walk.
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() or not path.is_file():
                        continue
                    if root == Path(tempfile.gettempdir()) and path.stat().st_mtime < started:
                        continue  # the shared temp dir: only what appeared during this test
                    data = path.read_bytes()
                except OSError:
                    continue
                scanned += 1
                for secret in secrets:
                    assert secret.encode() not in data, f"a secret was written to {path}"
    assert scanned > 0
    for text in outputs:
        for secret in secrets:
            assert secret not in text, "a secret appeared in the CLI's output or logs"
