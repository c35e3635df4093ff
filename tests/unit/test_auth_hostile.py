"""The OAuth token endpoint, hostile: deep JSON, escape sequences, a gzip bomb, a trickle.
Every answer is one AuthError or ApiError with printable text, in bounded time and
memory (tests/hostile.py's servers on loopback)."""

from __future__ import annotations

import asyncio
import json

import pytest

from fiotray.core import auth
from fiotray.core.api import new_http_client
from fiotray.core.errors import ApiError, AuthError
from tests.hostile import ESCAPES, HostileServer, Request, gzip_bomb


async def _grant(url: str) -> None:
    async with new_http_client() as http:
        await auth.fetch_client_credentials_token(http, url, "client-id", "client-secret-42")


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None):
    async def behaviour(req: Request) -> None:
        await req.reply(status, body, headers=headers)

    return behaviour


async def test_a_token_nested_too_deep_is_one_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    with HostileServer(_answer(200, deep)) as srv, pytest.raises(AuthError, match="not a token"):
        await _grant(srv.url)


async def test_escape_sequences_in_a_refusal_are_escaped():
    body = json.dumps({"error_description": f"bad client {ESCAPES}"}).encode()
    with HostileServer(_answer(401, body)) as srv, pytest.raises(AuthError) as refused:
        await _grant(srv.url)
    text = str(refused.value)
    assert "bad client" in text and text.isprintable(), text
    assert "\x1b" not in text and "\u202e" not in text


async def test_a_gzip_bomb_for_a_token_is_cut_not_inflated():
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros
    with (
        HostileServer(_answer(200, bomb, {"Content-Encoding": "gzip"})) as srv,
        pytest.raises(AuthError, match="not a token"),
    ):
        await asyncio.wait_for(_grant(srv.url), 20)


async def test_a_trickled_token_reply_meets_the_deadline(monkeypatch):
    monkeypatch.setattr(auth, "TOKEN_DEADLINE", 1.0)

    async def trickle(req: Request) -> None:
        await req.send_head(200, {"Content-Type": "application/json", "Content-Length": "1000"})
        for _ in range(1000):
            req.writer.write(b" ")
            await req.writer.drain()
            await asyncio.sleep(0.2)

    with HostileServer(trickle) as srv, pytest.raises(ApiError, match="did not answer in time"):
        await asyncio.wait_for(_grant(srv.url), 10)
