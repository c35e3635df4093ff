"""API token and OAuth2 credentials against a fake token endpoint (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from fiotray.core.auth import (
    ApiTokenCredentials,
    OAuthCredentials,
    TokenSet,
    bearer_header,
    fetch_client_credentials_token,
    load_credentials,
    parse_rfc3339,
    read_fioctl_config,
)
from fiotray.core.errors import ApiError, AuthError, SecretsUnavailable, SetupError
from fiotray.core.factories import Factory
from fiotray.core.secrets import MemorySecretStore, SecretStore, factory_key

OAUTH_URL = "https://app.example.com/oauth"
CLIENT_ID = "client-id-1"
CLIENT_SECRET = "client-SECRET-0123456789"
T0 = 1_700_000_000.0
# Everything a message must never contain.
SECRETS = (CLIENT_SECRET, "access-", "refresh-", "API-TOKEN-SECRET", "fioctl-SECRET-9876")


def assert_clean(exc: BaseException) -> None:
    text = f"{exc} {exc!r}"
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} leaked into {text!r}"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Handler = Callable[[dict[str, str], int], Awaitable[httpx.Response] | httpx.Response]


class FakeOAuth:
    """A token endpoint like app.foundries.io/oauth/token/."""

    def __init__(self, expires_in: Any = 3600) -> None:
        self.expires_in = expires_in
        self.forms: list[dict[str, str]] = []
        self.issued = 0
        self.valid_refresh: set[str] = set()
        self.accept_refresh = True
        self.accept_client = True
        self.override: Handler | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.host == "app.example.com"
        assert request.url.path == "/oauth/token/"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(parse_qsl(request.content.decode()))
        self.forms.append(form)
        if self.override is not None:
            result = self.override(form, len(self.forms))
            return await result if isinstance(result, Awaitable) else result
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return httpx.Response(401, json={"error": "invalid_client"})
        if form["grant_type"] == "refresh_token":
            if not self.accept_refresh or form.get("refresh_token") not in self.valid_refresh:
                return httpx.Response(
                    400, json={"error": "invalid_grant", "error_description": "bad refresh"}
                )
        elif form["grant_type"] != "client_credentials" or not self.accept_client:
            return httpx.Response(401, json={"error": "invalid_client"})
        return httpx.Response(200, json=self.issue())

    def issue(self) -> dict[str, Any]:
        self.issued += 1
        refresh = f"refresh-{self.issued}"
        self.valid_refresh.add(refresh)
        return {
            "access_token": f"access-{self.issued}",
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": "acme:devices:read",
            "orgs": [{"name": "acme"}],
        }

    def grants(self) -> list[str]:
        return [f["grant_type"] for f in self.forms]


@pytest.fixture
def fake() -> FakeOAuth:
    return FakeOAuth()


@pytest.fixture
async def http(fake: FakeOAuth) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        yield client


def token(n: int = 1, *, created: float = T0, expires_in: float = 3600) -> TokenSet:
    return TokenSet(
        access_token=f"access-old-{n}",
        refresh_token=f"refresh-old-{n}",
        token_type="bearer",
        expires_in=expires_in,
        created=created,
    )


def bearer(access: str) -> str:
    return "Bearer " + base64.b64encode(access.encode()).decode()


def creds(fake: FakeOAuth | None = None, **kw: Any) -> OAuthCredentials:
    kw.setdefault("clock", Clock())
    return OAuthCredentials(OAUTH_URL, CLIENT_ID, CLIENT_SECRET, kw.pop("token", None), **kw)


# -- API token ---------------------------------------------------------------------


async def test_api_token_headers(http: httpx.AsyncClient) -> None:
    c = ApiTokenCredentials("API-TOKEN-SECRET")
    assert await c.headers(http) == {"OSF-TOKEN": "API-TOKEN-SECRET"}
    assert await c.unauthorized(http, {"OSF-TOKEN": "API-TOKEN-SECRET"}) is False
    assert "API-TOKEN-SECRET" not in repr(c)


@pytest.mark.parametrize("bad", ["", "  ", "API-TOKEN-SECRET\r\nX: y", "API-TOKEN-SECRETé"])
def test_api_token_must_be_a_header_value(bad: str) -> None:
    with pytest.raises(AuthError) as info:
        ApiTokenCredentials(bad)
    assert_clean(info.value)


# -- bearer, fetching and refreshing -----------------------------------------------


async def test_first_request_fetches_with_client_credentials(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    c = creds()
    headers = await c.headers(http)

    assert fake.forms == [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ]
    assert headers == {"Authorization": bearer("access-1")}
    # fioctl's form: base64 of the UTF-8 access token.
    assert base64.b64decode(headers["Authorization"].removeprefix("Bearer ")) == b"access-1"
    assert c.token is not None
    assert c.token.created == T0
    assert c.token.orgs == ["acme"]
    assert c.token.scope == "acme:devices:read"
    # Cached: no second request.
    assert await c.headers(http) == headers
    assert len(fake.forms) == 1


def test_bearer_header_encodes_utf8() -> None:
    t = token()
    t.access_token = "tök"
    assert bearer_header(t) == "Bearer " + base64.b64encode("tök".encode()).decode()


@pytest.mark.parametrize(
    ("expires_in", "margin"),
    [(3600, 360), (36000, 600), (100_000, 600), (10, 1)],
)
async def test_refresh_before_expiry_with_default_margin(
    fake: FakeOAuth, http: httpx.AsyncClient, expires_in: float, margin: float
) -> None:
    clock = Clock()
    fake.valid_refresh.add("refresh-old-1")
    c = creds(token=token(expires_in=expires_in), clock=clock)

    clock.now = T0 + expires_in - margin - 0.5
    assert await c.headers(http) == {"Authorization": bearer("access-old-1")}
    assert fake.forms == []

    clock.now = T0 + expires_in - margin
    assert await c.headers(http) == {"Authorization": bearer("access-1")}
    assert fake.forms == [
        {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": "refresh-old-1",
        }
    ]
    assert c.token is not None and c.token.created == clock.now


async def test_explicit_margin(fake: FakeOAuth, http: httpx.AsyncClient) -> None:
    clock = Clock(T0 + 3600 - 31)
    fake.valid_refresh.add("refresh-old-1")
    c = creds(token=token(), clock=clock, margin=30)
    await c.headers(http)
    assert fake.forms == []
    clock.now += 1
    await c.headers(http)
    assert fake.grants() == ["refresh_token"]


async def test_refresh_refused_falls_back_to_client_credentials(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    saved: list[TokenSet] = []

    async def on_token(t: TokenSet) -> None:
        saved.append(t)

    c = creds(token=token(created=T0 - 7200), on_token=on_token)
    headers = await c.headers(http)
    assert fake.grants() == ["refresh_token", "client_credentials"]
    assert headers == {"Authorization": bearer("access-1")}
    assert [t.access_token for t in saved] == ["access-1"]


async def test_everything_refused_means_sign_in_again(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    fake.accept_client = False
    c = creds(token=token(created=T0 - 7200))
    with pytest.raises(AuthError) as info:
        await c.headers(http)
    assert str(info.value) == (
        "Your sign-in for app.example.com has expired or was revoked; "
        "sign in again with `fiotray login`."
    )
    assert fake.grants() == ["refresh_token", "client_credentials"]
    assert_clean(info.value)


async def test_invalid_client_credentials(fake: FakeOAuth, http: httpx.AsyncClient) -> None:
    def echo_secret(form: dict[str, str], n: int) -> httpx.Response:
        # A server that quotes what it got must not make us print the secret.
        detail = f"Client authentication failed for {form['client_secret']}"
        return httpx.Response(401, json={"error": "invalid_client", "error_description": detail})

    fake.override = echo_secret
    with pytest.raises(AuthError) as info:
        await fetch_client_credentials_token(http, OAUTH_URL, CLIENT_ID, CLIENT_SECRET)
    assert "rejected the client credentials" in str(info.value)
    assert "Client authentication failed" in str(info.value)
    assert_clean(info.value)


async def test_error_detail_is_cut_short(fake: FakeOAuth, http: httpx.AsyncClient) -> None:
    fake.override = lambda form, n: httpx.Response(400, json={"msg": "x" * 5000})
    with pytest.raises(AuthError) as info:
        await fetch_client_credentials_token(http, OAUTH_URL, CLIENT_ID, CLIENT_SECRET)
    assert len(str(info.value)) < 350


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_failure_is_not_an_auth_error(
    fake: FakeOAuth, http: httpx.AsyncClient, status: int
) -> None:
    fake.override = lambda form, n: httpx.Response(status, text="oops")
    with pytest.raises(ApiError) as info:
        await creds().headers(http)
    assert not isinstance(info.value, AuthError)
    assert info.value.status == status
    assert "try again" in str(info.value)
    assert_clean(info.value)


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (httpx.ReadTimeout("timed out"), "did not answer in time; try again"),
        (httpx.ConnectTimeout("timed out"), "did not answer in time; try again"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "unreachable"),
    ],
)
async def test_network_failure_is_not_an_auth_error(exc: Exception, text: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        with pytest.raises(ApiError) as info:
            await creds().headers(client)
    assert not isinstance(info.value, AuthError)
    assert text in str(info.value)
    assert "app.example.com" in str(info.value)
    assert_clean(info.value)


async def test_unexpected_status_points_at_the_url(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    fake.override = lambda form, n: httpx.Response(404, json={"message": "not found"})
    with pytest.raises(ApiError, match=r"HTTP 404 \(not found\); check the OAuth URL"):
        await creds().headers(http)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<html>", "not a JSON object"),
        (b"[]", "not a JSON object"),
        (b'{"refresh_token": "r", "expires_in": 5}', "'access_token'"),
        (b'{"access_token": "", "expires_in": 5}', "'access_token'"),
        (b'{"access_token": "a", "expires_in": "soon"}', "'expires_in'"),
        (b'{"access_token": "a", "expires_in": true}', "'expires_in'"),
        (b'{"access_token": "a"}', "'expires_in'"),
        (b'{"access_token": "a", "expires_in": -1}', "'expires_in'"),
        (b'{"access_token": "a", "expires_in": 5, "refresh_token": 7}', "'refresh_token'"),
        (b'{"access_token": "a", "expires_in": 5, "orgs": "acme"}', "'orgs'"),
        (b'{"access_token": "a", "expires_in": 5, "orgs": [{"id": 1}]}', "'orgs'"),
        (b'{"access_token": "a", "expires_in": 5, "scope": ["x"]}', "'scope'"),
    ],
)
async def test_malformed_token_answers(
    fake: FakeOAuth, http: httpx.AsyncClient, body: bytes, field: str
) -> None:
    fake.override = lambda form, n: httpx.Response(200, content=body)
    with pytest.raises(AuthError) as info:
        await creds().headers(http)
    assert field in str(info.value)
    assert_clean(info.value)


async def test_tolerant_token_answers(fake: FakeOAuth, http: httpx.AsyncClient) -> None:
    fake.override = lambda form, n: httpx.Response(
        200,
        json={
            "access_token": "access-x",
            "refresh_token": "refresh-x",
            "token_type": "Bearer",
            "expires_in": "3599.5",
            "orgs": ["acme", {"name": "beta"}],
        },
    )
    got = await fetch_client_credentials_token(
        http, OAUTH_URL, CLIENT_ID, CLIENT_SECRET, clock=Clock()
    )
    assert got.expires_in == 3599.5
    assert got.orgs == ["acme", "beta"]
    assert got.scope == ""
    assert got.created == T0


# -- 401 handling and concurrency ------------------------------------------------


async def test_unauthorized_refreshes_once_and_retries(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    fake.valid_refresh.add("refresh-old-1")
    c = creds(token=token())
    sent = await c.headers(http)
    assert await c.unauthorized(http, sent) is True
    assert fake.grants() == ["refresh_token"]
    assert await c.headers(http) == {"Authorization": bearer("access-1")}


async def test_unauthorized_for_an_old_token_just_retries(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    c = creds()
    await c.headers(http)
    stale = {"authorization": bearer("access-old-9")}  # header names are case-insensitive
    assert await c.unauthorized(http, stale) is True
    assert len(fake.forms) == 1


async def test_refused_again_right_after_renewal_gives_up(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    c = creds(clock=clock)
    first = await c.headers(http)
    assert await c.unauthorized(http, first) is True
    renewed = await c.headers(http)
    assert await c.unauthorized(http, renewed) is False  # nothing a new token would fix
    assert fake.issued == 2
    clock.now += 60  # much later, a 401 may well mean revocation: renew again
    assert await c.unauthorized(http, renewed) is True
    assert fake.issued == 3


async def test_concurrent_401s_cause_exactly_one_refresh(fake: FakeOAuth) -> None:
    pages = 20
    token_requests = 0
    api_seen: list[str] = []
    all_sent = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal token_requests
        if request.url.host == "app.example.com":
            token_requests += 1
            return await fake.handle(request)
        api_seen.append(request.headers["authorization"])
        # The API has revoked every token but the newest one.
        if request.headers["authorization"] == bearer(f"access-{fake.issued}"):
            return httpx.Response(200, json={"ok": True})
        # Answer the first wave only once all pages are in flight, so that
        # every request really is refused with the same old token.
        if len(api_seen) == pages:
            all_sent.set()
        await asyncio.wait_for(all_sent.wait(), 10)
        return httpx.Response(401, json={"detail": "expired"})

    async def api_get(c: OAuthCredentials, client: httpx.AsyncClient, n: int) -> int:
        headers = await c.headers(client)
        resp = await client.get(f"https://api.example.com/ota/devices/?page={n}", headers=headers)
        if resp.status_code == 401 and await c.unauthorized(client, headers):
            resp = await client.get(
                f"https://api.example.com/ota/devices/?page={n}", headers=await c.headers(client)
            )
        return resp.status_code

    fake.valid_refresh.add("refresh-old-1")
    c = creds(token=token())
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        statuses = await asyncio.wait_for(
            asyncio.gather(*(api_get(c, client, n) for n in range(pages))), 10
        )
    assert statuses == [200] * pages
    assert token_requests == 1
    assert fake.grants() == ["refresh_token"]
    assert api_seen.count(bearer("access-old-1")) == pages
    assert api_seen.count(bearer("access-1")) == pages


async def test_concurrent_401s_wait_for_the_refresh_in_flight(fake: FakeOAuth) -> None:
    # Hold the token endpoint until every 401 handler is queued behind the one refresh.
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def slow(form: dict[str, str], n: int) -> httpx.Response:
        arrived.set()
        await asyncio.wait_for(release.wait(), 10)
        return httpx.Response(200, json=fake.issue())

    fake.override = slow
    c = creds(token=token())
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        sent = await c.headers(client)
        tasks = [asyncio.create_task(c.unauthorized(client, sent)) for _ in range(10)]
        await asyncio.wait_for(arrived.wait(), 10)
        assert not any(t.done() for t in tasks)
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert results == [True] * 10
    assert len(fake.forms) == 1


async def test_concurrent_first_headers_fetch_once(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    c = creds()
    results = await asyncio.wait_for(asyncio.gather(*(c.headers(http) for _ in range(15))), 10)
    assert len(fake.forms) == 1
    assert {r["Authorization"] for r in results} == {bearer("access-1")}


async def test_on_token_after_every_new_token(fake: FakeOAuth, http: httpx.AsyncClient) -> None:
    seen: list[str] = []

    async def on_token(t: TokenSet) -> None:
        seen.append(t.access_token)

    clock = Clock()
    c = creds(on_token=on_token, clock=clock)
    await c.headers(http)
    clock.now += 3600
    await c.headers(http)  # refresh grant with refresh-1
    assert fake.grants() == ["client_credentials", "refresh_token"]
    assert seen == ["access-1", "access-2"]


async def test_failing_on_token_does_not_fail_requests(
    fake: FakeOAuth, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_token(t: TokenSet) -> None:
        raise SecretsUnavailable("The system keyring is locked: unlock it.")

    c = creds(on_token=on_token)
    with caplog.at_level(logging.WARNING, logger="fiotray.core.auth"):
        assert await c.headers(http) == {"Authorization": bearer("access-1")}
    assert "could not save the new token" in caplog.text
    assert "access-1" not in caplog.text


def test_oauth_credentials_reject_empty_secret() -> None:
    with pytest.raises(AuthError):
        OAuthCredentials(OAUTH_URL, CLIENT_ID, "")
    assert CLIENT_SECRET not in repr(creds())


# -- TokenSet ---------------------------------------------------------------------


def test_token_set_json_round_trip_and_repr() -> None:
    t = TokenSet("access-A", "refresh-R", "bearer", 3600.5, T0, "s", ["acme"])
    assert TokenSet.from_json(t.to_json()) == t
    assert "access-A" not in repr(t) and "refresh-R" not in repr(t)


@pytest.mark.parametrize(
    "stored",
    ["not json access-SECRET", "[]", '{"access_token": "access-1"}', '{"expires_in": 5}'],
)
def test_token_set_from_bad_json(stored: str) -> None:
    with pytest.raises(AuthError) as info:
        TokenSet.from_json(stored)
    assert_clean(info.value)


def test_expires_soon() -> None:
    t = token(expires_in=100)
    assert not t.expires_soon(T0 + 89.9, 10)
    assert t.expires_soon(T0 + 90, 10)
    assert t.expires_soon(T0 + 200, 0)
    assert t.default_margin() == 10


# -- fioctl.yaml import -----------------------------------------------------------

FIOCTL_YAML = """\
factory: acme
server:
  url: https://api.example.com
  insecure_skip_verify: false
clientcredentials:
  client_id: {client_id}
  client_secret: fioctl-SECRET-9876
  access_token: access-fioctl
  refresh_token: refresh-fioctl
  token_type: bearer
  expires_in: 3600
  created: {created}
  url: https://app.example.com/oauth
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fioctl.yaml"
    path.write_text(text)
    return path


def test_fioctl_import(tmp_path: Path) -> None:
    path = write(
        tmp_path, FIOCTL_YAML.format(client_id="cid", created="2024-03-01T10:00:00.123456789Z")
    )
    got = read_fioctl_config(path)
    assert got.factory == "acme"
    assert got.api_url == "https://api.example.com"
    assert got.oauth_url == "https://app.example.com/oauth"
    assert got.client_id == "cid"
    assert got.client_secret == "fioctl-SECRET-9876"
    assert got.token is not None
    assert got.token.access_token == "access-fioctl"
    assert got.token.refresh_token == "refresh-fioctl"
    assert got.token.expires_in == 3600
    expected = datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert got.token.created == pytest.approx(expected, abs=1e-6)
    assert "fioctl-SECRET-9876" not in repr(got)


@pytest.mark.parametrize(
    "created",
    [
        "'2024-03-01T10:00:00.123456789Z'",  # quoted: stays a string
        "2024-03-01T12:00:00.123456789+02:00",
        '"2024-03-01T11:30:00.123456+01:30"',
    ],
)
def test_fioctl_timestamps(tmp_path: Path, created: str) -> None:
    path = write(tmp_path, FIOCTL_YAML.format(client_id="cid", created=created))
    got = read_fioctl_config(path)
    assert got.token is not None
    expected = datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert got.token.created == pytest.approx(expected, abs=1e-6)


def test_parse_rfc3339() -> None:
    assert parse_rfc3339("1970-01-01T00:00:01Z") == 1.0
    assert parse_rfc3339("1970-01-01T01:00:01+01:00") == 1.0
    assert parse_rfc3339("1970-01-01T00:00:00.5z") == 0.5
    assert parse_rfc3339(datetime(1970, 1, 1, 0, 0, 2)) == 2.0
    with pytest.raises(ValueError, match="timestamp"):
        parse_rfc3339("yesterday")


def test_fioctl_minimal_file_derives_urls(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clientcredentials:\n  client_id: cid\n  client_secret: fioctl-SECRET-9876\n",
    )
    got = read_fioctl_config(path)
    assert got.factory is None
    assert got.oauth_url == "https://app.foundries.io/oauth"
    assert got.api_url == "https://api.foundries.io"
    assert got.token is None


def test_fioctl_api_url_derived_from_custom_oauth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "factory: acme\nclientcredentials:\n  client_id: cid\n"
        "  client_secret: fioctl-SECRET-9876\n  url: https://app.staging.example.com/oauth\n",
    )
    assert read_fioctl_config(path).api_url == "https://api.staging.example.com"


def test_fioctl_unusable_cached_token_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, FIOCTL_YAML.format(client_id="cid", created="not-a-time"))
    got = read_fioctl_config(path)
    assert got.token is None
    assert got.client_secret == "fioctl-SECRET-9876"


def test_fioctl_default_path_is_home_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "fioctl.yaml").write_text(
        FIOCTL_YAML.format(client_id="home-cid", created="2024-03-01T10:00:00Z")
    )
    assert read_fioctl_config().client_id == "home-cid"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "does not exist"),
        ("clientcredentials: [\n  client_secret: fioctl-SECRET-9876\n", "not valid YAML at line"),
        ("client_secret: fioctl-SECRET-9876: x: y\n", "not valid YAML at line 1"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("factory: acme\n", "no 'clientcredentials' section"),
        ("clientcredentials: fioctl-SECRET-9876\n", "'clientcredentials' is not a mapping"),
        ("clientcredentials:\n  client_secret: fioctl-SECRET-9876\n", "client_id is missing"),
        ("clientcredentials:\n  client_id: cid\n", "client_secret is missing"),
        (
            "clientcredentials:\n  client_id: cid\n  client_secret: [fioctl-SECRET-9876]\n",
            "client_secret is missing or not a string",
        ),
        (
            "factory: 7\nclientcredentials:\n  client_id: c\n  client_secret: fioctl-SECRET-9876\n",
            "'factory' is not a string",
        ),
        (
            "factory: a b\nclientcredentials:\n  client_id: c\n"
            "  client_secret: fioctl-SECRET-9876\n",
            "not a valid factory name",
        ),
        (
            "server: x\nclientcredentials:\n  client_id: c\n  client_secret: fioctl-SECRET-9876\n",
            "'server' is not a mapping",
        ),
        (
            "server:\n  url: 5\nclientcredentials:\n  client_id: c\n"
            "  client_secret: fioctl-SECRET-9876\n",
            "server.url is not a string",
        ),
        (
            "server:\n  url: ftp://x\nclientcredentials:\n  client_id: c\n"
            "  client_secret: fioctl-SECRET-9876\n",
            "server.url",
        ),
        (
            "clientcredentials:\n  client_id: c\n  client_secret: fioctl-SECRET-9876\n"
            "  url: https://u:fioctl-SECRET-9876@app.example.com/oauth\n",
            "clientcredentials.url",
        ),
        (
            "server:\n  insecure_skip_verify: true\nclientcredentials:\n  client_id: c\n"
            "  client_secret: fioctl-SECRET-9876\n",
            "CACERT",
        ),
    ],
)
def test_fioctl_import_errors(tmp_path: Path, text: str | None, problem: str) -> None:
    path = tmp_path / "fioctl.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SetupError) as info:
        read_fioctl_config(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert_clean(info.value)
    # The original error (which may quote the file) is not attached either.
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_fioctl_insecure_message_is_clear(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  insecure_skip_verify: true\nclientcredentials:\n  client_id: c\n"
        "  client_secret: fioctl-SECRET-9876\n",
    )
    with pytest.raises(SetupError, match="always verifies TLS"):
        read_fioctl_config(path)


# -- keyring layout: load / save / forget ------------------------------------------


def oauth_factory() -> Factory:
    return Factory(factory="acme", auth="oauth", oauth_url=OAUTH_URL, client_id=CLIENT_ID)


async def test_load_with_unreadable_stored_token_signs_in_again(
    fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    store = MemorySecretStore()
    factory = oauth_factory()
    store.set(factory_key("acme", "client_secret"), CLIENT_SECRET)
    store.set(factory_key("acme", "oauth_token"), "{garbage")
    c = await load_credentials(factory, store)
    assert await c.headers(http) == {"Authorization": bearer("access-1")}
    assert fake.grants() == ["client_credentials"]
    assert json.loads(store.get(factory_key("acme", "oauth_token")) or "")["access_token"] == (
        "access-1"
    )


async def test_load_oauth_without_client_id_or_secret() -> None:
    store = MemorySecretStore()
    with pytest.raises(AuthError, match="Not signed in to acme"):
        await load_credentials(oauth_factory(), store)
    no_id = Factory(factory="acme", auth="oauth", oauth_url=OAUTH_URL)
    store.set(factory_key("acme", "client_secret"), CLIENT_SECRET)
    with pytest.raises(AuthError, match="Not signed in to acme"):
        await load_credentials(no_id, store)


async def test_load_without_keyring_says_so(no_keyring_backend: None) -> None:
    with pytest.raises(SecretsUnavailable, match="Secret Service"):
        await load_credentials(oauth_factory(), SecretStore())
