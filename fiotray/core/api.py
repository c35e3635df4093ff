"""FactoryClient: the FoundriesFactory REST API over httpx.

One AsyncClient per factory. Every call has a timeout; GETs are retried on
429 (honouring Retry-After) and 5xx with capped backoff; credentials are only
ever sent to the configured API origin; errors become one readable ApiError.

Whatever the server sends, a call ends, in bounded time and memory, with a result or
one ApiError: each request has a deadline from sending to the last byte (httpx's
timeout is per read, which a server sending a byte every few seconds never trips);
a reply is read to at most `max_reply_bytes`, counted on the wire and again after
decompression (a few kilobytes of gzip can inflate to gigabytes); a listing reads at
most `max_devices` devices in at most the pages that takes, whatever `total` says,
follows no `next` twice, and has a deadline of its own; and server text in an error
is made safe to show (`safe_text`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import gc
import itertools
import logging
import math
import os
import random
import ssl
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from fiotray import __version__
from fiotray.core.errors import ApiError, AuthError, FiotrayError, NotFoundError
from fiotray.core.format import safe_text, size
from fiotray.core.models import (
    LISTED_FIELDS,
    ConfigEntry,
    ConfigFile,
    Device,
    ListedRecord,
    WireguardIp,
    listed_record,
    require_dict,
    require_list,
    wireguard_ip_fields,
)

if TYPE_CHECKING:
    from fiotray.core.auth import Credentials

log = logging.getLogger(__name__)

USER_AGENT = f"fiotray-{__version__}"
PAGE_SIZES = (10, 20, 30, 40, 50, 100, 200, 500, 1000)
SUCCESS = frozenset({200, 201, 202, 204})
MAX_MESSAGE = 300

# The bounds on what a server can make fiotray do (FactoryClient's defaults).
# A factory of 100,000 devices is far beyond any real one; a listing that says it holds
# more is refused rather than read: 100 pages at fioctl's largest page (1000), 200 at
# its default (500).
MAX_DEVICES = 100_000
# One reply, decoded: a page of 1000 devices is 1-3 MB of JSON (a few hundred bytes to a
# few KB per device), wireguard-ips for 100,000 devices ~12 MB. At most
# `page_concurrency` replies are held at once, so this also bounds a listing's peak.
MAX_REPLY_BYTES = 16 * 1024 * 1024
# An error reply is read this far and no further: only its first sentence is shown.
MAX_ERROR_BYTES = 64 * 1024
# One request, from sending it to the last byte of its reply; a 1000-device page over a
# slow link takes a few seconds. A request that used it all is not retried: it would
# most likely use it all again.
REQUEST_DEADLINE = 60.0
# One whole listing (every page of the devices, every page of a config history).
LISTING_DEADLINE = 300.0
# A `next` chain: config histories (and device lists without a `total`) are read by
# following it, one page after another.
MAX_CONFIG_PAGES = 100
# Decompression steps: no single step inflates more than this at once.
INFLATE_STEP = 256 * 1024

PageCallback = Callable[[Sequence[Any], int | None], Awaitable[None] | None]
T = TypeVar("T")


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """Verifying TLS context: certifi's roots plus SSL_CERT_FILE and CACERT (as fioctl)."""
    import certifi  # with the bundle it names: only when TLS is wanted

    env = os.environ if env is None else env
    ctx = ssl.create_default_context(cafile=certifi.where())
    for var in ("SSL_CERT_FILE", "CACERT"):
        path = env.get(var)
        if not path:
            continue
        try:
            ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            reason = (
                "not a PEM file of certificates"
                if isinstance(exc, ssl.SSLError)
                else (exc.strerror or "unreadable")
            )
            raise ApiError(f"{var}={path} cannot be used as a CA bundle: {reason}.") from None
    return ctx


def tls_context_for(urls: Iterable[str], env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The TLS context of a client that talks only to `urls`: `ssl_context()` when one of
    them is https.

    When all are plain http (the fake API on loopback, a test server) no CA bundle is read
    (~20 ms of a command's start): the context verifies as strictly but trusts no CA, so an
    https URL reached by mistake is refused, never let through unverified.
    """
    if any(urlsplit(url).scheme.lower() != "http" for url in urls):
        return ssl_context(env)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname


def new_http_client(
    *,
    timeout: float = 20.0,
    max_connections: int = 10,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The one way fiotray builds an HTTP client: timeouts, verified TLS, our User-Agent."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        verify=verify if verify is not None else ssl_context(),
        # Only the encodings `_Inflater` reads, each with a bounded step; httpx would also
        # offer brotli and zstd when those are installed, and inflate a chunk whole.
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        },
        limits=httpx.Limits(max_connections=max_connections),
        # A redirect could carry our credentials to another host: never follow one.
        follow_redirects=False,
        transport=transport,
        # Proxies and CA bundles come from the environment we read ourselves (CACERT).
        trust_env=False,
    )


def error_message(resp: httpx.Response) -> str:
    """One line from a JSON error body (msg, message, errors, detail) or a short text body,
    safe to show (control and bidi characters escaped) and cut to MAX_MESSAGE."""
    text = ""
    try:
        body = resp.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        body = None
    if isinstance(body, dict):
        parts: list[str] = []
        for key in ("msg", "message", "detail", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                parts.append(value.strip())
                break
        errors = body.get("errors")
        if isinstance(errors, list):
            parts.extend(_scalar(e) for e in errors[:20] if _scalar(e))
        elif isinstance(errors, dict):
            parts.extend(f"{k}: {_flatten(v)}" for k, v in itertools.islice(errors.items(), 20))
        elif isinstance(errors, str):
            parts.append(errors)
        text = "; ".join(parts)
    elif isinstance(body, str):
        text = body
    elif body is None:
        raw = resp.text[: MAX_MESSAGE * 4].strip()
        if raw and not raw.lstrip().startswith("<"):  # HTML error pages say nothing useful
            text = raw
    return safe_text(" ".join(text[: MAX_MESSAGE * 4].split()), MAX_MESSAGE)


def _scalar(value: object) -> str:
    # Strings and numbers only: str() of a nested list can be huge or recurse too deep.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float):
            return f"{value:.6g}"
        # A number of thousands of digits cannot even be turned into text (ValueError).
        return str(value) if abs(value) < 10**18 else "(a huge number)"
    return ""


def _flatten(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(s for s in map(_scalar, value[:20]) if s)
    return _scalar(value)


class FactoryClient:
    """Async client for one factory. Use as ``async with FactoryClient(...) as api``."""

    def __init__(
        self,
        api_url: str,
        factory: str,
        credentials: Credentials,
        *,
        timeout: float = 20.0,
        page_size: int = 500,
        page_concurrency: int = 8,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 30.0,
        request_deadline: float = REQUEST_DEADLINE,
        listing_deadline: float = LISTING_DEADLINE,
        max_devices: int = MAX_DEVICES,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        max_config_pages: int = MAX_CONFIG_PAGES,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        if page_size not in PAGE_SIZES:
            raise ValueError(f"page_size must be one of {PAGE_SIZES}")
        self.api_url = api_url.rstrip("/")
        self.factory = factory
        self.credentials = credentials
        self.page_size = page_size
        self.page_concurrency = max(1, page_concurrency)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.request_deadline = request_deadline
        self.listing_deadline = listing_deadline
        self.max_devices = max_devices
        self.max_reply_bytes = max_reply_bytes
        self.max_config_pages = max_config_pages
        self._origin = origin(self.api_url)
        self.http = new_http_client(
            timeout=timeout,
            max_connections=self.page_concurrency + 2,
            transport=transport,
            verify=verify,
        )

    async def __aenter__(self) -> FactoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- transport -------------------------------------------------------

    def url(self, path: str) -> str:
        return self.api_url + path

    def _check_origin(self, url: str) -> None:
        if origin(url) != self._origin:
            host = urlsplit(url).netloc or url
            raise ApiError(
                f"The server pointed to another host ({safe_text(host, 80)}); "
                "fiotray does not send your credentials there."
            )

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        """Retry-After as seconds or an HTTP date; anything else counts as absent (our own
        backoff), and no wait is longer than `retry_after_cap`."""
        value = resp.headers.get("Retry-After", "").strip()
        delay: float | None = None
        if value:
            try:
                delay = float(value)
            except ValueError:
                delay = _http_date_delay(value)
        if delay is None or not math.isfinite(delay):
            delay = self._backoff(attempt)
        return min(self.retry_after_cap, max(0.0, delay))

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send with auth; retry what is safe to retry; raise ApiError/AuthError otherwise."""
        self._check_origin(url)
        idempotent = method in ("GET", "HEAD")
        what = f"{method} {safe_text(urlsplit(url).path, 100)}"
        attempt = 0
        refreshed = False
        while True:
            headers = await self.credentials.headers(self.http)
            try:
                async with asyncio.timeout(self.request_deadline):
                    resp = await self._send(method, url, params, json, headers, what)
            except TimeoutError:
                raise ApiError(
                    f"{self._host()} did not finish answering within "
                    f"{self.request_deadline:g} s ({what})."
                ) from None
            except httpx.TimeoutException:
                # A PATCH that timed out may have been applied: retrying it blind is not safe.
                if idempotent and attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise ApiError(f"{self._host()} did not answer in time ({what}).") from None
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError)
                if (idempotent or never_sent) and attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise ApiError(f"Cannot reach {self._host()}: {_transport_reason(exc)}.") from None
            status = resp.status_code
            if status in SUCCESS:
                return resp
            if status == 401:
                if not refreshed and await self.credentials.unauthorized(self.http, headers):
                    refreshed = True
                    continue
                raise AuthError(
                    f"{self._host()} rejected the credentials for factory {self.factory}; "
                    "sign in again with `fiotray login`."
                )
            # 429 means the request was not processed, so even a PATCH may go again.
            retryable = status == 429 or (idempotent and status >= 500)
            if retryable and attempt < self.max_retries:
                attempt += 1
                delay = (
                    self._retry_after(resp, attempt) if status == 429 else self._backoff(attempt)
                )
                log.info("%s answered %s; retrying in %.2fs", what, status, delay)
                await asyncio.sleep(delay)
                continue
            raise self._error(resp, what)

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        json: Any,
        headers: Mapping[str, str],
        what: str,
    ) -> httpx.Response:
        """One attempt, its reply read whole within the size caps: a Response with the
        decoded body as its content (what `.json()`/`.text` read) and the same status and
        headers, less those about the encoding that no longer applies."""
        request = self.http.build_request(method, url, params=params, json=json, headers=headers)
        resp = await self.http.send(request, stream=True)
        try:
            ok = resp.status_code in SUCCESS
            body = await read_body(
                resp,
                self.max_reply_bytes if ok else MAX_ERROR_BYTES,
                # An error reply is only read for its first sentence: cut, not refused.
                cut=not ok,
                what=what,
            )
        finally:
            await resp.aclose()
        return httpx.Response(
            resp.status_code,
            headers=[
                (k, v)
                for k, v in resp.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ],
            content=body,
            request=request,
            extensions={k: v for k, v in resp.extensions.items() if k == "reason_phrase"},
        )

    def _host(self) -> str:
        return self._origin[1]

    def _error(self, resp: httpx.Response, what: str) -> ApiError:
        detail = error_message(resp)
        reason = safe_text(resp.reason_phrase, 40) or "error"
        text = f"{what} failed: {resp.status_code} {reason}"
        if detail:
            text += f": {detail}"
        cls = NotFoundError if resp.status_code == 404 else ApiError
        return cls(text if text.endswith((".", "…")) else text + ".", status=resp.status_code)

    async def get_json(self, url: str, params: Mapping[str, str | int] | None = None) -> Any:
        resp = await self.request("GET", url, params=params)
        return _json(resp, url)

    async def _get_page(
        self, url: str, params: Mapping[str, str | int] | None, parse: Callable[[object], T]
    ) -> tuple[list[T], int | None, str | None]:
        """One page of the device list, decoded and parsed in a worker thread.

        Decoding and checking 500 devices is ~10 ms of Python: on a worker thread the
        interpreter hands the event loop its turn every few milliseconds meanwhile.
        The garbage collector is paused for it: a decoded page is a few thousand
        containers that live only until parsed, and a collection in the middle would
        promote them towards the oldest generation until, some pages later, they set off
        a full collection (tens of milliseconds with a big list in memory). Unpaused,
        reference counting frees them before any collection sees them.
        """
        resp = await self.request("GET", url, params=params)
        return await _off_loop(_decode_page, resp, url, parse)

    # -- devices ---------------------------------------------------------

    def _device_path(self, name: str) -> str:
        return "/ota/devices/" + quote(name, safe="") + "/"

    async def list_devices(
        self, *, name_glob: str | None = None, on_page: PageCallback | None = None
    ) -> list[Device]:
        """Every device: the first page, then the rest concurrently (bounded)."""
        return await self._list_pages(Device.from_json, _device_key, name_glob, on_page)

    async def list_device_records(
        self,
        *,
        name_glob: str | None = None,
        on_page: PageCallback | None = None,
        previous: Sequence[tuple[Any, ...]] = (),
    ) -> list[ListedRecord]:
        """Every device as the list keeps it (see `listed_record`): compact, for big factories.

        `previous`: records of an earlier listing (or tuples that start with one). A
        device that has not changed since comes back made of that record's objects, and
        what its page decoded for it is freed with the page: a refresh does not hold a
        second copy of every unchanged device while it runs.
        """
        parse: Callable[[object], ListedRecord] = listed_record
        if previous:
            parse = _reusing(previous)
        return await self._list_pages(parse, _record_key, name_glob, on_page)

    async def _list_pages(
        self,
        parse: Callable[[object], T],
        key: Callable[[T], Hashable],
        name_glob: str | None,
        on_page: PageCallback | None,
    ) -> list[T]:
        try:
            async with asyncio.timeout(self.listing_deadline):
                return await self._read_pages(parse, key, name_glob, on_page)
        except TimeoutError:
            raise ApiError(
                f"{self._host()} did not finish sending the device list within "
                f"{self.listing_deadline:g} s."
            ) from None

    async def _read_pages(
        self,
        parse: Callable[[object], T],
        key: Callable[[T], Hashable],
        name_glob: str | None,
        on_page: PageCallback | None,
    ) -> list[T]:
        params: dict[str, str | int] = {
            "factory": self.factory,
            "limit": self.page_size,
            "sortby": "name",
        }
        if name_glob:
            params["name"] = name_glob
        devices, total, next_url = await self._get_page(self.url("/ota/devices/"), params, parse)
        # Bounds from what fiotray reads, never from what the server claims (`total`).
        max_pages = math.ceil(self.max_devices / self.page_size)
        if total is not None and total > self.max_devices:
            raise self._too_many()
        if on_page is not None:
            await _maybe_await(on_page(devices, total))
        pages: list[list[T]] = [devices]
        count = len(devices)
        if next_url:
            self._check_origin(next_url)
            template = _page_template(next_url)
            if template is not None and total is not None and total > len(devices):
                pages_total = min(max_pages, math.ceil(total / self.page_size))
                more_pages, next_url = await self._pages_concurrently(
                    template, pages_total, total, parse, on_page
                )
                pages += more_pages
                count += sum(map(len, more_pages))
            seen: set[str] = set()
            while next_url:  # no total, or the factory grew while we read it
                self._check_origin(next_url)
                if next_url in seen:
                    raise ApiError(
                        "The server's device list points back to a page it already sent; giving up."
                    )
                seen.add(next_url)
                if count > self.max_devices:
                    raise self._too_many()
                if len(pages) >= max_pages:
                    raise ApiError(
                        f"The server's device list goes on past {max_pages:,} pages "
                        f"({self.max_devices:,} devices at {self.page_size} a page), more "
                        "than fiotray reads from one factory; giving up."
                    )
                more, total, next_url = await self._get_page(next_url, None, parse)
                pages.append(more)
                count += len(more)
                if on_page is not None:
                    await _maybe_await(on_page(more, total))
        if count > self.max_devices:
            raise self._too_many()
        return _dedupe(pages, key)

    def _too_many(self) -> ApiError:
        # The server's `total` is not repeated: it may be thousands of digits long.
        return ApiError(
            f"The server's device list goes on past {self.max_devices:,} devices, more than "
            "fiotray reads from one factory; giving up."
        )

    async def _pages_concurrently(
        self,
        template: tuple[str, list[tuple[str, str]]],
        pages_total: int,
        total: int,
        parse: Callable[[object], T],
        on_page: PageCallback | None,
    ) -> tuple[list[list[T]], str | None]:
        """Pages 2..pages_total, in order, and the `next` of the last one.

        `page_concurrency` workers take the next page number in turn: the tasks in flight
        are that many, however many pages there are.
        """
        results: dict[int, list[T]] = {}
        last_next: dict[int, str | None] = {}
        numbers = iter(range(2, pages_total + 1))

        async def worker() -> None:
            for page in numbers:  # shared: each number goes to one worker
                devices, _, nxt = await self._get_page(_page_url(template, page), None, parse)
                results[page] = devices
                last_next[page] = nxt
                if on_page is not None:
                    await _maybe_await(on_page(devices, total))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.page_concurrency, pages_total - 1)):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            # One clear error, not a group: a rejected sign-in matters more than a 5xx.
            errors = _leaves(failed)
            raise next((e for e in errors if isinstance(e, AuthError)), errors[0]) from None
        return [results[p] for p in sorted(results)], last_next.get(pages_total)

    async def get_device(self, name: str, *, by_uuid: bool = False) -> Device:
        params: dict[str, str | int] = {"factory": self.factory}
        if by_uuid:
            params["by-uuid"] = 1
        try:
            data = await self.get_json(self.url(self._device_path(name)), params)
        except NotFoundError:
            raise NotFoundError(
                f"No device named {name!r} in factory {self.factory}.", status=404
            ) from None
        return _checked(self._device_path(name), Device.from_json, data)

    async def device_config(self, name: str) -> list[ConfigEntry]:
        url = self.url(self._device_path(name) + "config/")
        return await self._config_list(url, {"factory": self.factory})

    async def patch_device_config(self, name: str, reason: str, files: list[ConfigFile]) -> None:
        url = self.url(self._device_path(name) + "config/")
        body = {"reason": reason, "files": [f.to_json() for f in files]}
        await self.request("PATCH", url, params={"factory": self.factory}, json=body)

    async def factory_config(self) -> list[ConfigEntry]:
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/config/")
        return await self._config_list(url, None)

    async def patch_factory_config(self, reason: str, files: list[ConfigFile]) -> None:
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/config/")
        body = {"reason": reason, "files": [f.to_json() for f in files]}
        await self.request("PATCH", url, json=body)

    async def factory_config_files(self) -> list[ConfigFile]:
        """The factory's current config files: its newest config entry, one request. Each
        change makes an entry holding every file (the ones not named are carried over),
        which is how upstream's daemon reads its own file too."""
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/config/")
        return _checked(url, _newest_files, await self.get_json(url))

    async def wireguard_ips(self) -> list[WireguardIp]:
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/wireguard-ips/")
        return _checked(url, _wireguard_ips, await self.get_json(url))

    async def vpn_columns(self) -> dict[str, tuple[bool, str]]:
        """Device name -> (VPN enabled with an address, address), from `wireguard_ips`' reply.

        For the device list, which holds the reply through its whole load: tens of
        thousands of WireguardIp objects would be walked at every full garbage collection,
        and their number alone sets one off. Parsed as a page is (see `_get_page`).
        """
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/wireguard-ips/")
        resp = await self.request("GET", url)
        return await _off_loop(_decode_vpn_columns, resp, url)

    async def _config_list(
        self, url: str, params: Mapping[str, str | int] | None
    ) -> list[ConfigEntry]:
        try:
            async with asyncio.timeout(self.listing_deadline):
                return await self._read_config_list(url, params)
        except TimeoutError:
            raise ApiError(
                f"{self._host()} did not finish sending the config history within "
                f"{self.listing_deadline:g} s."
            ) from None

    async def _read_config_list(
        self, url: str, params: Mapping[str, str | int] | None
    ) -> list[ConfigEntry]:
        entries: list[ConfigEntry] = []
        next_url: str | None = url
        seen: set[str] = set()
        pages = 0
        while next_url:
            self._check_origin(next_url)
            if next_url in seen:
                raise ApiError(
                    "The server's config history points back to a page it already sent; giving up."
                )
            if pages >= self.max_config_pages:
                raise ApiError(
                    f"The server's config history goes on past {self.max_config_pages} "
                    "pages; giving up."
                )
            seen.add(next_url)
            data = await self.get_json(next_url, params if not pages else None)
            pages += 1
            page, nxt = _checked(next_url, _config_page, data)
            entries += page
            next_url = nxt
        return entries


def _newest_files(data: object) -> list[ConfigFile]:
    entries = require_list(require_dict(data, "config reply").get("config"), "config")
    return list(ConfigEntry.from_json(entries[0]).files) if entries else []


def _wireguard_ips(data: object) -> list[WireguardIp]:
    return [WireguardIp.from_json(item) for item in require_list(data, "wireguard-ips reply")]


def _config_page(data: object) -> tuple[list[ConfigEntry], str | None]:
    d = require_dict(data, "config reply")
    entries = [ConfigEntry.from_json(e) for e in require_list(d.get("config"), "config")]
    nxt = d.get("next")
    return entries, nxt if isinstance(nxt, str) and nxt else None


def _http_date_delay(value: str) -> float | None:
    """Seconds until an HTTP date, or None when `value` is not one (any odd text)."""
    try:
        when = email.utils.parsedate_to_datetime(value)
        return when.timestamp() - time.time()
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


class _Inflater:
    """A reply's Content-Encoding undone in bounded steps (`zlib`'s max_length), so that
    a bomb is caught by the size cap after at most one step past it, never inflated whole.
    (httpx's own decoders inflate each network chunk in one go: 64 KiB of gzip can
    become 64 MiB before anyone counts.)"""

    def __init__(self, header: str, what: str) -> None:
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        self._deflate = False
        self._started = False
        self._z: Any = None
        if not codings:
            return
        if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
            raise ApiError(
                f"The server sent a reply to {what} in an encoding fiotray does not read "
                f"({safe_text(header, 40)})."
            )
        self._deflate = codings[0] == "deflate"
        self._z = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16)

    def feed(self, data: bytes, room: int) -> list[bytes]:
        """The decoded bytes of `data`; more than `room` of them means the reply is over
        its cap (the caller stops there)."""
        if self._z is None:
            return [data]
        out: list[bytes] = []
        produced = 0
        while produced <= room:
            step = min(INFLATE_STEP, room - produced + 1)
            try:
                piece = self._z.decompress(data, step)
            except zlib.error:
                if self._deflate and not self._started:
                    # "deflate" is sometimes sent raw, without its zlib header (as httpx reads).
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise ApiError("The server sent a reply that does not decompress.") from None
            self._started = True
            out.append(piece)
            produced += len(piece)
            data = self._z.unconsumed_tail
            # Done with this chunk: the stream ended, or all of it went in and what came
            # out did not fill the step (a full step may leave output inside zlib: go on).
            if self._z.eof or (not data and len(piece) < step):
                break
        return out


async def read_body(resp: httpx.Response, cap: int, *, cut: bool, what: str) -> bytes:
    """The reply's body, decoded, at most `cap` bytes on the wire and `cap` decoded.

    Past the cap: ApiError, or with `cut` the first `cap` bytes (an error reply, of which
    only the first sentence is shown). Streamed, so the excess is never held.
    """
    try:
        # A transport that hands over a body already read (httpx.MockTransport in tests):
        # nothing left to stream, only to measure.
        done = resp.content
    except httpx.ResponseNotRead:
        pass
    else:
        if len(done) > cap and not cut:
            raise _too_big(what, cap)
        return done[:cap]
    inflater = _Inflater(resp.headers.get("Content-Encoding", ""), what)
    body = bytearray()
    raw = 0
    # Stopping early leaves httpx's and httpcore's generators under aiter_raw suspended.
    # Closing the response first makes their own closing a no-op; then closing ours
    # finalizes them at once, here on the loop. Otherwise the garbage collector does it
    # later, and under qasync (which sets no async-generator hooks) outside any loop,
    # where httpcore's close fails: "no running event loop".
    async with contextlib.aclosing(resp.aiter_raw()) as chunks:  # type: ignore[type-var]
        try:
            async for chunk in chunks:
                raw += len(chunk)
                if raw <= cap or cut:
                    for piece in inflater.feed(chunk, cap - len(body)):
                        body += piece
                if len(body) > cap or raw > cap:
                    if not cut:
                        raise _too_big(what, cap)
                    del body[cap:]
                    break
        finally:
            await resp.aclose()
    return bytes(body)


def _too_big(what: str, cap: int) -> ApiError:
    return ApiError(
        f"The server's reply to {what} is larger than the {size(cap)} fiotray reads; giving up."
    )


_parser: concurrent.futures.ThreadPoolExecutor | None = None
_parser_lock = threading.Lock()


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the one thread that parses replies, with the collector paused.

    One thread, not a pool: parsers on several threads would take turns at the
    interpreter lock with each other as well as with the event loop, which then waits
    longer for its turn; and each pause of the collector must end before the next one
    starts (see `FactoryClient._get_page`).
    """
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fiotray-parse")
    return await asyncio.get_running_loop().run_in_executor(_parser, _gc_paused, fn, *args)


def _gc_paused(fn: Callable[..., T], *args: Any) -> T:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(*args)
    finally:
        if enabled:
            gc.enable()


def _decode_page(
    resp: httpx.Response, url: str, parse: Callable[[object], T]
) -> tuple[list[T], int | None, str | None]:
    return _checked(url, _parse_page, _json(resp, url), parse)


def _decode_vpn_columns(resp: httpx.Response, url: str) -> dict[str, tuple[bool, str]]:
    def columns_of(data: object) -> dict[str, tuple[bool, str]]:
        columns: dict[str, tuple[bool, str]] = {}
        for item in require_list(data, "wireguard-ips reply"):
            name, ip, enabled, _ = wireguard_ip_fields(item)
            columns[name] = (enabled and bool(ip), ip)
        return columns

    return _checked(url, columns_of, _json(resp, url))


def _json(resp: httpx.Response, url: str) -> Any:
    try:
        return resp.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        path = safe_text(urlsplit(url).path, 100)
        raise ApiError(f"The server sent a malformed reply to GET {path} (not JSON).") from None


def _checked(url: str, parse: Callable[..., T], *args: Any) -> T:
    """`parse(*args)` over a reply, failing only with an ApiError.

    The models raise ApiError for every shape they check; this is the net under them, so
    that a reply nobody thought of is still one sentence and not a traceback.
    """
    try:
        return parse(*args)
    except FiotrayError:
        raise
    except Exception:
        log.debug("unexpected reply to %s", url, exc_info=True)
        path = safe_text(urlsplit(url).path, 100)
        raise ApiError(f"The server sent a malformed reply to GET {path}.") from None


def _parse_page(
    data: object, parse: Callable[[object], T]
) -> tuple[list[T], int | None, str | None]:
    d = require_dict(data, "device list")
    devices = [parse(item) for item in require_list(d.get("devices"), "device list")]
    total = d.get("total")
    nxt = d.get("next")
    return (
        devices,
        total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None,
        nxt if isinstance(nxt, str) and nxt else None,
    )


def _page_template(next_url: str) -> tuple[str, list[tuple[str, str]]] | None:
    """Split a page-2 `next` URL so any page can be built from it; None if not page-numbered."""
    parts = urlsplit(next_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if dict(query).get("page") != "2":
        return None
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return base, [(k, v) for k, v in query if k != "page"]


def _page_url(template: tuple[str, list[tuple[str, str]]], page: int) -> str:
    base, query = template
    return base + "?" + urlencode([*query, ("page", str(page))])


def _reusing(previous: Sequence[tuple[Any, ...]]) -> Callable[[object], ListedRecord]:
    before: dict[str, tuple[Any, ...]] | None = None

    def parse(raw: object) -> ListedRecord:
        nonlocal before
        if before is None:  # on the parser's thread, with the first page
            before = {r[0]: r for r in previous}
        record = listed_record(raw)
        old = before.get(record[0])
        if old is not None:
            old_record = old[:LISTED_FIELDS]
            if old_record == record:
                return old_record  # type: ignore[return-value]
        return record

    return parse


def _device_key(device: Device) -> str:
    return device.uuid or device.name


def _record_key(record: ListedRecord) -> str:
    return record[1] or record[0]


def _dedupe(pages: list[list[T]], key: Callable[[T], Hashable]) -> list[T]:
    # Pages read at different moments can overlap when devices are added meanwhile.
    seen: set[Hashable] = set()
    out: list[T] = []
    for page in pages:
        for device in page:
            k = key(device)
            if k not in seen:
                seen.add(k)
                out.append(device)
    return out


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    cause: BaseException | None = exc
    for _ in range(10):  # httpx hides the OS error under "All connection attempts failed"
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            text = "CERTIFICATE_VERIFY_FAILED"
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "its TLS certificate is not trusted "
            "(set CACERT to your CA bundle if it uses a private CA)"
        )
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return " ".join(text.split())[:200]
