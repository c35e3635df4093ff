"""FactoryClient: the FoundriesFactory REST API over httpx.

One AsyncClient per factory. Every call has a timeout; GETs are retried on
429 (honouring Retry-After) and 5xx with capped backoff; credentials are only
ever sent to the configured API origin; errors become one readable ApiError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import gc
import logging
import math
import os
import random
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import certifi
import httpx

from fiotray import __version__
from fiotray.core.errors import ApiError, AuthError, NotFoundError
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

PageCallback = Callable[[Sequence[Any], int | None], Awaitable[None] | None]
T = TypeVar("T")


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """Verifying TLS context: certifi's roots plus SSL_CERT_FILE and CACERT (as fioctl)."""
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
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        limits=httpx.Limits(max_connections=max_connections),
        # A redirect could carry our credentials to another host: never follow one.
        follow_redirects=False,
        transport=transport,
        # Proxies and CA bundles come from the environment we read ourselves (CACERT).
        trust_env=False,
    )


def error_message(resp: httpx.Response) -> str:
    """One line from a JSON error body (msg, message, errors, detail) or a short text body."""
    text = ""
    try:
        body = resp.json()
    except ValueError:
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
            parts.extend(str(e) for e in errors if isinstance(e, str | int | float))
        elif isinstance(errors, dict):
            parts.extend(f"{k}: {_flatten(v)}" for k, v in errors.items())
        elif isinstance(errors, str):
            parts.append(errors)
        text = "; ".join(parts)
    elif isinstance(body, str):
        text = body
    elif body is None:
        raw = resp.text.strip()
        if raw and not raw.lstrip().startswith("<"):  # HTML error pages say nothing useful
            text = raw
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def _flatten(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


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
                f"The server pointed to another host ({host[:80]}); "
                "fiotray does not send your credentials there."
            )

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        value = resp.headers.get("Retry-After", "").strip()
        delay: float | None = None
        if value:
            try:
                delay = float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value) if value else None
                if when is not None:
                    delay = when.timestamp() - time.time()
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
        what = f"{method} {urlsplit(url).path}"
        attempt = 0
        refreshed = False
        while True:
            headers = await self.credentials.headers(self.http)
            try:
                resp = await self.http.request(
                    method, url, params=params, json=json, headers=headers
                )
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

    def _host(self) -> str:
        return self._origin[1]

    def _error(self, resp: httpx.Response, what: str) -> ApiError:
        detail = error_message(resp)
        reason = resp.reason_phrase or "error"
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
        params: dict[str, str | int] = {
            "factory": self.factory,
            "limit": self.page_size,
            "sortby": "name",
        }
        if name_glob:
            params["name"] = name_glob
        devices, total, next_url = await self._get_page(self.url("/ota/devices/"), params, parse)
        if on_page is not None:
            await _maybe_await(on_page(devices, total))
        pages: list[list[T]] = [devices]
        if next_url:
            self._check_origin(next_url)
            template = _page_template(next_url)
            if template is not None and isinstance(total, int) and total > len(devices):
                pages_total = math.ceil(total / self.page_size)
                more_pages, next_url = await self._pages_concurrently(
                    template, pages_total, total, parse, on_page
                )
                pages += more_pages
            while next_url:  # no total, or the factory grew while we read it
                self._check_origin(next_url)
                more, total, next_url = await self._get_page(next_url, None, parse)
                pages.append(more)
                if on_page is not None:
                    await _maybe_await(on_page(more, total))
        return _dedupe(pages, key)

    async def _pages_concurrently(
        self,
        template: tuple[str, list[tuple[str, str]]],
        pages_total: int,
        total: int,
        parse: Callable[[object], T],
        on_page: PageCallback | None,
    ) -> tuple[list[list[T]], str | None]:
        """Pages 2..pages_total, in order, and the `next` of the last one."""
        limiter = asyncio.Semaphore(self.page_concurrency)
        results: dict[int, list[T]] = {}
        last_next: dict[int, str | None] = {}

        async def fetch(page: int) -> None:
            async with limiter:
                devices, _, nxt = await self._get_page(_page_url(template, page), None, parse)
            results[page] = devices
            last_next[page] = nxt
            if on_page is not None:
                await _maybe_await(on_page(devices, total))

        try:
            async with asyncio.TaskGroup() as group:
                for page in range(2, pages_total + 1):
                    group.create_task(fetch(page))
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
        return Device.from_json(data)

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
        data = require_dict(await self.get_json(url), "config reply")
        entries = require_list(data.get("config"), "config")
        return list(ConfigEntry.from_json(entries[0]).files) if entries else []

    async def wireguard_ips(self) -> list[WireguardIp]:
        url = self.url(f"/ota/factories/{quote(self.factory, safe='')}/wireguard-ips/")
        data = await self.get_json(url)
        return [WireguardIp.from_json(item) for item in require_list(data, "wireguard-ips reply")]

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
        entries: list[ConfigEntry] = []
        next_url: str | None = url
        first = True
        while next_url:
            self._check_origin(next_url)
            data = require_dict(
                await self.get_json(next_url, params if first else None), "config reply"
            )
            first = False
            entries += [
                ConfigEntry.from_json(e) for e in require_list(data.get("config"), "config")
            ]
            nxt = data.get("next")
            next_url = nxt if isinstance(nxt, str) and nxt else None
        return entries


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
    return _parse_page(_json(resp, url), parse)


def _decode_vpn_columns(resp: httpx.Response, url: str) -> dict[str, tuple[bool, str]]:
    columns: dict[str, tuple[bool, str]] = {}
    for item in require_list(_json(resp, url), "wireguard-ips reply"):
        name, ip, enabled, _ = wireguard_ip_fields(item)
        columns[name] = (enabled and bool(ip), ip)
    return columns


def _json(resp: httpx.Response, url: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        path = urlsplit(url).path
        raise ApiError(f"The server sent a malformed reply to GET {path} (not JSON).") from None


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
