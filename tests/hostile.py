"""Hostile HTTP servers on loopback: one misbehaviour each, for the API client's bounds.

A `HostileServer(behaviour)` runs a tiny asyncio HTTP/1.1 server on its own thread (so
synchronous tests and subprocesses can use it as well as async ones) and answers every
request with `behaviour(request)`. Each behaviour is a plain async function that writes
whatever bytes it likes: a wrong `total`, an endless `next`, a body trickled a byte at a
time, a gzip bomb, JSON nested too deep, a bad Retry-After, escape sequences.

Sign-in's probe (`GET /ota/devices/?limit=10`, as `fiotray login` sends it) is answered
normally by every behaviour, so the real CLI can sign in and then meet the misbehaviour.
Used by tests/unit/test_api_hostile.py, tests/integration/test_cli_hostile.py and
bench/hostile.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

FACTORY = "hostile"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b]8;;https://evil.test/\x1b\\click\x1b]8;;\x1b\\\x9b31m\u202e"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    writer: asyncio.StreamWriter = field(repr=False)

    @property
    def base(self) -> str:
        return "http://" + self.headers.get("host", "127.0.0.1")

    async def reply(
        self,
        status: int,
        body: bytes | str | object = b"",
        *,
        headers: dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        if isinstance(body, str):
            data = body.encode("utf-8", "surrogatepass")
            ctype = "text/plain; charset=utf-8"
        elif isinstance(body, bytes):
            data, ctype = body, "application/json"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        head = {"Content-Type": ctype, "Content-Length": str(len(data)), "Connection": "close"}
        head.update(headers or {})
        await self.send_head(status, head, reason)
        self.writer.write(data)
        await self.writer.drain()

    async def send_head(self, status: int, headers: dict[str, str], reason: str = "") -> None:
        lines = [f"HTTP/1.1 {status} {reason or 'Whatever'}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self.writer.drain()


Behaviour = Callable[[Request], Awaitable[None]]


def device(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "uuid": f"u-{name}", "last-seen": "", **extra}


def page(names: list[str], total: object, next_url: str | None) -> dict[str, object]:
    return {"devices": [device(n) for n in names], "total": total, "next": next_url}


def is_sign_in_probe(req: Request) -> bool:
    return (
        req.path == "/ota/devices/" and req.query.get("limit") == "10" and "page" not in req.query
    )


def is_listing(req: Request) -> bool:
    """The device list: what the listing behaviours misbehave on (the rest is answered
    right, so `fiotray devices`, which reads wireguard-ips alongside, meets them)."""
    return req.path == "/ota/devices/"


class HostileServer:
    """`with HostileServer(behaviour) as server:` `server.url`, `server.requests`."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="hostile-http")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._handle(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client gave up on us: that is what these tests want
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *rest = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = {}
        for h in rest:
            if ":" in h:
                k, v = h.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = urlsplit(target)
        req = Request(method, parts.path, dict(parse_qsl(parts.query)), headers, body, writer)
        self.requests.append(req)
        if is_sign_in_probe(req):
            await req.reply(200, page(["probe"], 1, None))
            return
        await self.behaviour(req)


# -- behaviours: each does one thing wrong ---------------------------------------------


def huge_total(total: int = 10**12) -> Behaviour:
    """Every page claims `total` devices (a trillion) and links to the next page."""

    async def reply(req: Request) -> None:
        if not is_listing(req):
            return await normal(req)
        n = int(req.query.get("page", "1"))
        limit = req.query.get("limit", "500")
        nxt = f"{req.base}/ota/devices/?factory={FACTORY}&limit={limit}&page={n + 1}"
        await req.reply(200, page([f"d{n}"], total, nxt))

    return reply


async def endless_next(req: Request) -> None:
    """No total; each page's `next` names a new page, for ever."""
    if not is_listing(req):
        return await normal(req)
    n = int(req.query.get("cursor", "0")) + 1
    await req.reply(200, page([f"d{n}"], None, f"{req.base}/ota/devices/?cursor={n}"))


async def repeating_next(req: Request) -> None:
    """No total; `next` always names the same page."""
    if not is_listing(req):
        return await normal(req)
    await req.reply(200, page(["d"], None, f"{req.base}/ota/devices/?cursor=same"))


TRICKLE_INTERVAL = 0.2


async def trickle(req: Request) -> None:
    """Headers at once, then one byte of the body every TRICKLE_INTERVAL seconds: never
    silent long enough for a per-read timeout."""
    data = json.dumps(page(["d"], 1, None)).encode() + b" " * 10_000
    await req.send_head(200, {"Content-Length": str(len(data)), "Content-Type": "application/json"})
    for b in data:
        req.writer.write(bytes([b]))
        await req.writer.drain()
        await asyncio.sleep(TRICKLE_INTERVAL)


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzipped (about a thousandth of `size`), built a MiB at a time."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zero = bytes(1 << 20)
    out = [z.compress(zero) for _ in range(size >> 20)]
    out.append(z.flush())
    return b"".join(out)


def bomb(size: int) -> Behaviour:
    """A small gzip body that inflates to `size` bytes (built now, not while a client waits:
    1 GiB takes a few seconds)."""
    data = gzip_bomb(size)

    async def gzip_bomb_reply(req: Request) -> None:
        await req.reply(200, data, headers={"Content-Encoding": "gzip"})

    return gzip_bomb_reply


def bomb_pages(size: int) -> Behaviour:
    """A first page that says 100,000 devices, then a gzip bomb for every other page: as
    many bombs at once as the client fetches pages at once."""
    data = gzip_bomb(size)

    async def reply(req: Request) -> None:
        if not is_listing(req):
            await normal(req)
        elif "page" not in req.query:
            limit = req.query.get("limit", "500")
            nxt = f"{req.base}/ota/devices/?factory={FACTORY}&limit={limit}&page=2"
            await req.reply(200, page(["d1"], 100_000, nxt))
        else:
            await req.reply(200, data, headers={"Content-Encoding": "gzip"})

    return reply


async def deep_json(req: Request) -> None:
    """Valid JSON nested 100,000 deep: Python's json parser recurses once per level."""
    await req.reply(200, b"[" * 100_000 + b"]" * 100_000)


async def deep_json_error(req: Request) -> None:
    await req.reply(400, b'{"msg": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


async def bad_retry_after(req: Request) -> None:
    """Always 429, with a Retry-After that is neither seconds nor an HTTP date."""
    await req.reply(429, {"msg": "slow down"}, headers={"Retry-After": "soon"})


def bad_retry_after_once() -> Behaviour:
    """429 with `Retry-After: soon` once, then whatever the path asks for, done right."""
    sent: list[int] = []

    async def reply(req: Request) -> None:
        if not sent:
            sent.append(1)
            await req.reply(429, {"msg": "slow down"}, headers={"Retry-After": "soon"})
        else:
            await normal(req)

    return reply


async def normal(req: Request) -> None:
    if "/config/" in req.path:
        await req.reply(200, {"config": [], "total": 0, "next": None})
    elif req.path.endswith("/wireguard-ips/"):
        await req.reply(200, [])
    elif req.method == "PATCH":
        await req.reply(200, {})
    else:
        await req.reply(200, page(["d1"], 1, None))


async def escapes_in_msg(req: Request) -> None:
    await req.reply(403, {"msg": f"denied {ESCAPES} here", "errors": [f"e{ESCAPES}"]})


async def escapes_in_error_keys(req: Request) -> None:
    await req.reply(400, {"errors": {f"field{ESCAPES}": [f"bad{ESCAPES}"]}})


async def escapes_in_text(req: Request) -> None:
    await req.reply(500, f"plain {ESCAPES} text")


async def not_utf8(req: Request) -> None:
    await req.reply(200, b'{"devices": [{"name": "\xff\xfe\x1b"}], "total": 1, "next": null}')


def gzipped(value: object) -> bytes:
    return gzip.compress(json.dumps(value).encode())
