"""The real `fiotray` command against hostile servers (tests/hostile.py): one line on
stderr, a non-zero exit, no traceback and no raw control character, whatever is sent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import hostile
from tests.hostile import HostileServer
from tests.user_config import cli_env

TOKEN = "hostile-cli-token"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def env(tmp_path, secret_service) -> dict[str, str]:
    return cli_env(tmp_path, secret_service.bus_address)


def fiotray(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "fiotray", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def signed_in(env: dict[str, str], server: HostileServer) -> None:
    login = fiotray(
        env,
        "login",
        "--factory",
        hostile.FACTORY,
        "--api-url",
        server.url,
        "--api-token-stdin",
        stdin=TOKEN,
    )
    assert login.returncode == 0, login.stderr


def assert_one_clean_line(proc: subprocess.CompletedProcess) -> str:
    for text in (proc.stdout, proc.stderr):
        assert "Traceback" not in text, text
        assert not any(c in text for c in RAW), repr(text)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fiotray: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (hostile.huge_total(), "past 100,000 devices"),
        (hostile.repeating_next, "points back to a page"),
        (hostile.bomb(256 << 20), "larger than the 16.0 MiB"),
        (hostile.deep_json, "malformed reply"),
        (hostile.bad_retry_after, "429"),
        (hostile.escapes_in_msg, "403"),
        (hostile.escapes_in_error_keys, "400"),
        (hostile.escapes_in_text, "500"),
    ],
    ids=[
        "huge-total",
        "repeating-next",
        "gzip-bomb",
        "deep-json",
        "retry-after",
        "msg",
        "keys",
        "text",
    ],
)
def test_devices_against_a_hostile_server_prints_one_line(env, behaviour, expected):
    with HostileServer(behaviour) as server:
        signed_in(env, server)
        proc = fiotray(env, "devices")
    assert proc.returncode == 1, proc.stderr
    assert expected in assert_one_clean_line(proc)


def test_escapes_in_a_wireguard_file_are_not_printed_raw(env):
    value = f"address=10.42.42.9{hostile.ESCAPES}\npubkey=key{hostile.ESCAPES}"

    async def config(req: hostile.Request) -> None:
        entry = {"created-at": "", "applied-at": "", "reason": hostile.ESCAPES, "files": []}
        entry["files"] = [{"name": "wireguard-client", "value": value, "unencrypted": True}]
        await req.reply(200, {"config": [entry], "total": 1, "next": None})

    with HostileServer(config) as server:
        signed_in(env, server)
        proc = fiotray(env, "device-vpn", "d1")
    assert proc.returncode == 0, proc.stderr
    assert not any(c in proc.stdout for c in RAW), repr(proc.stdout)
    assert "Address: 10.42.42.9\\x1b]0;pwned\\x07" in proc.stdout


def test_escapes_in_an_error_on_enable_are_not_printed_raw(env):
    async def device_then_denied(req: hostile.Request) -> None:
        if req.path == "/ota/devices/d1/":
            await req.reply(200, hostile.device("d1"))
        else:
            await hostile.escapes_in_msg(req)

    with HostileServer(device_then_denied) as server:
        signed_in(env, server)
        proc = fiotray(env, "enable", "d1")
    assert proc.returncode == 1
    assert "403" in assert_one_clean_line(proc)
