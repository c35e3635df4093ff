"""FactoryClient logic against httpx.MockTransport: retries, errors, paging, origin checks."""

import asyncio
import json
from collections.abc import Mapping

import httpx
import pytest

from fiotray.core.api import FactoryClient, error_message, ssl_context, tls_context_for
from fiotray.core.errors import ApiError, AuthError, NotFoundError

API = "https://api.example.test"


class FakeCreds:
    def __init__(self, refresh_ok: bool = True) -> None:
        self.token = "t1"
        self.refreshes = 0
        self.refresh_ok = refresh_ok

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"OSF-TOKEN": self.token}

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        self.refreshes += 1
        self.token = f"t{self.refreshes + 1}"
        return self.refresh_ok


def client(handler, creds=None, **kw) -> FactoryClient:
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return FactoryClient(
        API, "acme", creds or FakeCreds(), transport=httpx.MockTransport(handler), **kw
    )


def devices_page(names, total, next_url):
    return {
        "devices": [{"name": n, "uuid": f"u-{n}"} for n in names],
        "total": total,
        "next": next_url,
    }


async def test_user_agent_and_token_sent():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async with client(handler) as api:
        assert await api.wireguard_ips() == []
    assert seen[0].headers["user-agent"].startswith("fiotray-")
    assert seen[0].headers["osf-token"] == "t1"
    assert seen[0].url.path == "/ota/factories/acme/wireguard-ips/"


async def test_get_retries_5xx_then_succeeds():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503 if len(calls) < 3 else 200, json=[])

    async with client(handler) as api:
        await api.wireguard_ips()
    assert len(calls) == 3


async def test_get_gives_up_after_max_retries_with_message():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(502, json={"message": "bad gateway upstream"})

    async with client(handler, max_retries=2) as api:
        with pytest.raises(ApiError, match="502 Bad Gateway: bad gateway upstream") as info:
            await api.wireguard_ips()
    assert info.value.status == 502
    assert len(calls) == 3


async def test_429_honours_retry_after(monkeypatch):
    slept = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay):
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("fiotray.core.api.asyncio.sleep", fake_sleep)
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        return httpx.Response(200, json=[])

    async with client(handler) as api:
        await api.wireguard_ips()
    assert slept == [7.0]


async def test_retry_after_is_capped(monkeypatch):
    slept = []

    async def fake_sleep(delay):
        slept.append(delay)

    monkeypatch.setattr("fiotray.core.api.asyncio.sleep", fake_sleep)
    responses = iter(
        [httpx.Response(429, headers={"Retry-After": "86400"}), httpx.Response(200, json=[])]
    )
    async with client(lambda r: next(responses), retry_after_cap=5) as api:
        await api.wireguard_ips()
    assert slept == [5]


async def test_patch_not_retried_on_5xx():
    calls = []

    def handler(request):
        calls.append(request.method)
        return httpx.Response(500, json={"msg": "boom"})

    async with client(handler) as api:
        with pytest.raises(ApiError, match="boom"):
            await api.patch_device_config("d1", "r", [])
    assert calls == ["PATCH"]


async def test_401_refreshes_once_and_retries_once():
    tokens = []

    def handler(request):
        tokens.append(request.headers["osf-token"])
        return httpx.Response(401 if len(tokens) == 1 else 200, json=[])

    creds = FakeCreds()
    async with client(handler, creds) as api:
        await api.wireguard_ips()
    assert tokens == ["t1", "t2"]
    assert creds.refreshes == 1


async def test_401_twice_means_sign_in_again():
    def handler(request):
        return httpx.Response(401, json={"msg": "Token expired"})

    creds = FakeCreds()
    async with client(handler, creds) as api:
        with pytest.raises(AuthError, match="sign in again"):
            await api.wireguard_ips()
    assert creds.refreshes == 1


async def test_404_is_not_found_with_device_name():
    async with client(lambda r: httpx.Response(404, json={"msg": "Not found"})) as api:
        with pytest.raises(NotFoundError, match="No device named 'ghost' in factory acme"):
            await api.get_device("ghost")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"msg": "m1"}, "m1"),
        ({"message": "m2", "errors": ["e1", "e2"]}, "m2; e1; e2"),
        ({"errors": {"limit": ["bad"], "name": "worse"}}, "limit: bad; name: worse"),
        ("<html><body>nginx</body></html>", ""),
        ("plain words", "plain words"),
        ({"msg": "x" * 1000}, "x" * 299 + "…"),
    ],
)
def test_error_message(body, expected):
    if isinstance(body, dict):
        resp = httpx.Response(400, json=body)
    else:
        resp = httpx.Response(400, text=body)
    assert error_message(resp) == expected


@pytest.mark.parametrize(
    "reply",
    [
        b'{"devices": [',
        b"[]",
        b'{"devices": {}}',
        b'{"devices": [{"uuid": "x"}]}',
        b'{"devices": [{"name": 5}]}',
        b"null",
    ],
)
async def test_malformed_device_list_is_a_clear_error(reply):
    async with client(lambda r: httpx.Response(200, content=reply)) as api:
        with pytest.raises(ApiError, match="malformed|without a name"):
            await api.list_devices()


async def test_wrong_optional_field_types_are_tolerated():
    page = {
        "devices": [
            {
                "name": "d",
                "uuid": 3,
                "last-seen": 12,
                "docker-apps": "x",
                "network-info": [],
                "device-group": {},
            }
        ],
        "total": 1,
        "next": None,
    }
    async with client(lambda r: httpx.Response(200, json=page)) as api:
        (device,) = await api.list_devices()
    assert (device.name, device.uuid, device.last_seen, device.docker_apps, device.group) == (
        "d",
        "",
        None,
        (),
        None,
    )


async def test_pages_fetched_concurrently_and_in_order():
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        page = int(request.url.params.get("page", "1"))
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        names = [f"d{page:02d}-{i:02d}" for i in range(10)]
        nxt = f"{API}/ota/devices/?factory=acme&limit=10&page={page + 1}" if page < 9 else None
        return httpx.Response(200, json=devices_page(names, 90, nxt))

    async with client(handler, page_size=10, page_concurrency=4) as api:
        devices = await api.list_devices()
    assert [d.name for d in devices] == sorted(d.name for d in devices)
    assert len(devices) == 90
    assert peak == 4


async def test_next_to_another_host_is_refused_without_sending():
    hosts = []

    def handler(request):
        hosts.append(request.url.host)
        return httpx.Response(
            200, json=devices_page(["a"], 2, "https://evil.test/ota/devices/?page=2")
        )

    async with client(handler) as api:
        with pytest.raises(ApiError, match="another host"):
            await api.list_devices()
    assert hosts == ["api.example.test"]


async def test_next_without_total_is_followed_sequentially():
    def handler(request):
        page = int(request.url.params.get("page", "1"))
        nxt = f"{API}/ota/devices/?factory=acme&cursor=x{page}" if page < 3 else None
        if "cursor" in request.url.params:
            page = int(request.url.params["cursor"][1:]) + 1
            nxt = f"{API}/ota/devices/?factory=acme&cursor=x{page}" if page < 3 else None
        return httpx.Response(200, json=devices_page([f"d{page}"], None, nxt))

    async with client(handler) as api:
        devices = await api.list_devices()
    assert [d.name for d in devices] == ["d1", "d2", "d3"]


async def test_failed_page_raises_one_error_not_a_group():
    def handler(request):
        page = int(request.url.params.get("page", "1"))
        if page == 3:
            return httpx.Response(403, json={"msg": "no access"})
        nxt = f"{API}/ota/devices/?factory=acme&limit=10&page={page + 1}"
        return httpx.Response(200, json=devices_page([f"d{page}"], 50, nxt))

    async with client(handler, page_size=10) as api:
        with pytest.raises(ApiError, match="403 Forbidden: no access"):
            await api.list_devices()


async def test_redirects_are_not_followed():
    def handler(request):
        return httpx.Response(302, headers={"Location": "https://evil.test/"})

    async with client(handler) as api:
        with pytest.raises(ApiError, match="302"):
            await api.wireguard_ips()


async def test_connection_refused_is_readable():
    async with FactoryClient(
        "http://127.0.0.1:9", "acme", FakeCreds(), max_retries=1, backoff_base=0.001
    ) as api:
        with pytest.raises(ApiError, match="Cannot reach 127.0.0.1: connection refused"):
            await api.wireguard_ips()


async def test_timeout_is_readable():
    async def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    async with client(handler, max_retries=1) as api:
        with pytest.raises(ApiError, match="did not answer in time"):
            await api.wireguard_ips()


def test_cacert_unreadable_is_clear(tmp_path):
    with pytest.raises(ApiError, match="CACERT=.*cannot be used"):
        ssl_context({"CACERT": str(tmp_path / "missing.pem")})
    bad = tmp_path / "bad.pem"
    bad.write_text("not a cert")
    with pytest.raises(ApiError, match="not a PEM file"):
        ssl_context({"CACERT": str(bad)})


def test_plain_http_reads_no_ca_bundle_and_trusts_no_server():
    import ssl

    ctx = tls_context_for(["http://127.0.0.1:8080", "HTTP://localhost/oauth"])
    # Nothing loaded, yet verifying: an https URL reached by mistake fails, never passes.
    assert ctx.cert_store_stats()["x509_ca"] == 0
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    for urls in (["https://api.foundries.io"], ["http://127.0.0.1", "https://app.example/oauth"]):
        assert tls_context_for(urls).cert_store_stats()["x509_ca"] > 0
    # CACERT is read (and checked) whenever TLS is wanted.
    with pytest.raises(ApiError, match="CACERT="):
        tls_context_for(["https://api.foundries.io"], {"CACERT": "/nonexistent.pem"})


async def test_device_name_is_percent_encoded_in_path():
    paths = []

    def handler(request):
        paths.append(request.url.raw_path)
        return httpx.Response(200, json={"config": [], "total": 0, "next": None})

    async with client(handler) as api:
        await api.device_config("a b/../c?x#y")
    assert paths[0].startswith(b"/ota/devices/a%20b%2F..%2Fc%3Fx%23y/config/")
    json.dumps(paths[0].decode())
