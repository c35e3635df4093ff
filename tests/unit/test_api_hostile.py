"""FactoryClient against hostile servers on loopback (tests/hostile.py): whatever a server
sends, each call ends soon, in bounded memory, with a result or one ApiError whose text
is safe to print."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fiotray.core.api import FactoryClient
from fiotray.core.errors import ApiError
from tests import hostile
from tests.hostile import HostileServer

Op = Callable[[FactoryClient], Awaitable[Any]]

OPS: dict[str, Op] = {
    "list": lambda api: api.list_device_records(),
    "device-config": lambda api: api.device_config("d1"),
    "factory-config": lambda api: api.factory_config(),
    "wireguard-ips": lambda api: api.vpn_columns(),
    "patch": lambda api: api.patch_device_config("d1", "r", []),
}
READS = ["list", "device-config", "factory-config", "wireguard-ips"]
# Old code looped or allocated without end on some of these: a test that does not finish
# in this long has failed.
GIVE_UP = 30.0


class Creds:
    async def headers(self, http: Any) -> dict[str, str]:
        return {"OSF-TOKEN": "t"}

    async def unauthorized(self, http: Any, sent: Any) -> bool:
        return False


def client(server: HostileServer, **kw: Any) -> FactoryClient:
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return FactoryClient(server.url, hostile.FACTORY, Creds(), **kw)


async def fails(server: HostileServer, op: Op, **kw: Any) -> ApiError:
    """The one ApiError `op` ends with against `server` (any other outcome fails the test)."""
    async with asyncio.timeout(GIVE_UP), client(server, **kw) as api:
        with pytest.raises(ApiError) as info:
            await op(api)
    return info.value


def assert_printable(text: str) -> None:
    assert text.isprintable(), repr(text)  # no ESC, BEL, C1, bidi control, line break


async def test_huge_total_is_refused_after_one_page():
    # Old code made one task per page of `total`: here 20,000 tasks and requests.
    with HostileServer(hostile.huge_total(10**7)) as server:
        error = await fails(server, OPS["list"])
    assert "past 100,000 devices" in str(error)
    assert len(server.requests) == 1


async def test_endless_next_chain_stops_at_the_page_cap():
    with HostileServer(hostile.endless_next) as server:
        error = await fails(server, OPS["list"], page_size=100)
    assert "past 1,000 pages (100,000 devices at 100 a page)" in str(error)
    # 100,000 devices at 100 a page: 1,000 pages, then it gives up.
    assert len(server.requests) == 1000


async def test_next_that_repeats_is_refused():
    with HostileServer(hostile.repeating_next) as server:
        error = await fails(server, OPS["list"])
    assert "points back to a page" in str(error)
    assert len(server.requests) == 2


@pytest.mark.parametrize("op", ["device-config", "factory-config"])
async def test_endless_config_history_stops(op):
    async def endless_config(req: hostile.Request) -> None:
        n = int(req.query.get("cursor", "0")) + 1
        nxt = f"{req.base}{req.path}?cursor={n}"
        await req.reply(200, {"config": [], "total": None, "next": nxt})

    with HostileServer(endless_config) as server:
        error = await fails(server, OPS[op])
    assert "goes on past 100 pages" in str(error)
    assert len(server.requests) == 100


async def test_trickled_body_meets_the_request_deadline():
    # A byte every 0.2 s never trips httpx's per-read timeout (20 s here).
    with HostileServer(hostile.trickle) as server:
        started = time.monotonic()
        error = await fails(server, OPS["list"], request_deadline=1.0)
        elapsed = time.monotonic() - started
    assert "did not finish answering within 1 s" in str(error)
    assert elapsed < 3
    assert len(server.requests) == 1  # not retried: it would only use its minute again


async def test_listing_has_a_deadline_of_its_own():
    async def slow_pages(req: hostile.Request) -> None:
        n = int(req.query.get("cursor", "0")) + 1
        await asyncio.sleep(0.1)
        await req.reply(200, hostile.page([f"d{n}"], None, f"{req.base}/ota/devices/?cursor={n}"))

    with HostileServer(slow_pages) as server:
        error = await fails(server, OPS["list"], listing_deadline=1.0)
    assert "did not finish sending the device list within 1 s" in str(error)


@pytest.mark.parametrize("op", READS)
async def test_gzip_bomb_is_stopped_at_the_cap_not_inflated(op):
    # 256 MiB of zeros in 256 KiB of gzip; the cap is 16 MiB.
    with HostileServer(hostile.bomb(256 << 20)) as server:
        tracemalloc.start()
        try:
            error = await fails(server, OPS[op])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "larger than the 16.0 MiB fiotray reads" in str(error)
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"


async def test_gzip_reply_in_the_caps_is_read():
    async def gzipped_page(req: hostile.Request) -> None:
        body = hostile.gzipped(hostile.page(["a", "b"], 2, None))
        await req.reply(200, body, headers={"Content-Encoding": "gzip"})

    with HostileServer(gzipped_page) as server:
        async with client(server) as api:
            records = await api.list_device_records()
    assert [r[0] for r in records] == ["a", "b"]


async def test_unknown_encoding_is_one_error():
    async def brotli(req: hostile.Request) -> None:
        await req.reply(200, b"\x1b\x00\x00", headers={"Content-Encoding": "br"})

    with HostileServer(brotli) as server:
        error = await fails(server, OPS["list"])
    assert "encoding fiotray does not read (br)" in str(error)


@pytest.mark.parametrize("op", READS)
async def test_deeply_nested_json_is_one_error(op):
    with HostileServer(hostile.deep_json) as server:
        error = await fails(server, OPS[op])
    assert "malformed reply" in str(error)


@pytest.mark.parametrize("op", [*READS, "patch"])
async def test_deeply_nested_json_in_an_error_is_one_error(op):
    with HostileServer(hostile.deep_json_error) as server:
        error = await fails(server, OPS[op])
    assert "400" in str(error)


@pytest.mark.parametrize("op", [*READS, "patch"])
async def test_bad_retry_after_counts_as_absent(op):
    with HostileServer(hostile.bad_retry_after_once()) as server:
        async with asyncio.timeout(GIVE_UP), client(server) as api:
            await OPS[op](api)
    assert len(server.requests) == 2  # the 429, then the retry that worked


@pytest.mark.parametrize(
    "value", ["soon", "Mon, 99 Foo 99999 99:99:99 GMT", "Fri, 31 Dec 9999 23:59:59 +9999", "nan"]
)
async def test_odd_retry_after_values_never_crash(value):
    async def reply(req: hostile.Request) -> None:
        if len(server.requests) == 1:
            await req.reply(429, {}, headers={"Retry-After": value})
        else:
            await hostile.normal(req)

    with HostileServer(reply) as server:
        async with asyncio.timeout(GIVE_UP), client(server, retry_after_cap=0.5) as api:
            await api.vpn_columns()


async def test_429_for_ever_ends_with_one_error():
    with HostileServer(hostile.bad_retry_after) as server:
        error = await fails(server, OPS["list"], max_retries=2)
    assert "429" in str(error) and "slow down" in str(error)
    assert len(server.requests) == 3


@pytest.mark.parametrize("op", [*READS, "patch"])
@pytest.mark.parametrize(
    "behaviour",
    [hostile.escapes_in_msg, hostile.escapes_in_error_keys, hostile.escapes_in_text],
    ids=["msg", "errors-keys", "text-body"],
)
async def test_escape_sequences_in_errors_are_escaped(op, behaviour):
    with HostileServer(behaviour) as server:
        error = await fails(server, OPS[op], max_retries=1)
    text = str(error)
    assert_printable(text)
    assert "\\x1b]0;pwned\\x07" in text  # shown, escaped: the user sees what was sent
    assert "\\u202e" in text or text.endswith("…")


async def test_escape_sequences_in_device_fields_are_escaped():
    async def fields(req: hostile.Request) -> None:
        dev = hostile.device(
            "ok",
            owner=hostile.ESCAPES,
            tag=hostile.ESCAPES,
            status=hostile.ESCAPES,
            **{"device-group": hostile.ESCAPES, "target-name": hostile.ESCAPES},
        )
        await req.reply(200, {"devices": [dev], "total": 1, "next": None})

    with HostileServer(fields) as server:
        async with client(server) as api:
            (record,) = await api.list_device_records()
            (device,) = await api.list_devices()
    for value in (*record, device.owner, device.target, device.group, device.tag):
        if isinstance(value, str):
            assert_printable(value)
    assert record[5].startswith("\\x1b]0;pwned\\x07\\x1b[2J")  # the target, escaped


async def test_escape_sequences_in_config_history_are_escaped():
    async def history(req: hostile.Request) -> None:
        entry = {
            "created-at": hostile.ESCAPES,
            "created-by": hostile.ESCAPES,
            "reason": hostile.ESCAPES,
            "files": [],
        }
        await req.reply(200, {"config": [entry], "total": 1, "next": None})

    with HostileServer(history) as server:
        async with client(server) as api:
            (entry,) = await api.device_config("d1")
    for value in (entry.created_at, entry.created_by, entry.reason):
        assert_printable(value)


async def test_non_utf8_reply_is_one_error():
    with HostileServer(hostile.not_utf8) as server:
        error = await fails(server, OPS["list"])
    assert "malformed" in str(error)
