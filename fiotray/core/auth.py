"""Credentials for the FoundriesFactory API: an API token, or OAuth2 client credentials.

The API client calls ``headers()`` before each request and ``unauthorized()``
after a 401. OAuth tokens are fetched and refreshed here, with the same rules as
fioctl (base64 access token in the Bearer header, ``POST {oauth}/token/``) and
factory-wireguard-server (refresh early).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from fiotray.core.errors import ApiError, AuthError, FiotrayError, SetupError
from fiotray.core.factories import (
    DEFAULT_OAUTH_URL,
    Factory,
    api_url_from_oauth,
    validate_factory_name,
    validate_url,
)
from fiotray.core.secrets import SecretStore, factory_key

log = logging.getLogger(__name__)

MAX_MARGIN = 600.0  # factory-wireguard-server refreshes this early
MARGIN_FRACTION = 0.1  # ...but short-lived tokens must stay usable
_MAX_DETAIL = 200
# A token renewed because of a 401 that is refused again within this time is
# not renewed again: the server refuses this client, not this token.
_RECENT_401_RENEWAL = 30.0


class Credentials(Protocol):
    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        """Headers for the next API request (fetching or refreshing a token first)."""
        ...

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        """The API answered 401 to headers ``sent``: True to retry once, False if hopeless."""
        ...


def _check_header_value(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AuthError(f"The {what} is empty; sign in again with `fiotray login`.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or not value.isascii():
        raise AuthError(
            f"The {what} contains characters that cannot be sent in a header; check what was "
            "pasted and sign in again."
        )
    return value


class ApiTokenCredentials:
    """A personal API token (``OSF-TOKEN`` header); nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = _check_header_value(token, "API token")

    def __repr__(self) -> str:
        return "ApiTokenCredentials(token=***)"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"OSF-TOKEN": self._token}

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        return False


@dataclass
class TokenSet:
    """An OAuth2 token answer plus the time it was received (what the keyring keeps)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_type: str
    expires_in: float
    created: float  # unix time the token was received
    scope: str = ""
    orgs: list[str] = field(default_factory=list)

    @property
    def expires_at(self) -> float:
        return self.created + self.expires_in

    def default_margin(self) -> float:
        return min(MAX_MARGIN, MARGIN_FRACTION * self.expires_in)

    def expires_soon(self, now: float, margin: float) -> bool:
        return now >= self.expires_at - margin

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> TokenSet:
        """Parse what ``to_json`` wrote; AuthError (secret-free) if it is not that."""
        bad = AuthError("The stored OAuth token is unreadable; sign in again with `fiotray login`.")
        try:
            data = json.loads(s)
        except (TypeError, ValueError):
            raise bad from None
        if not isinstance(data, dict):
            raise bad
        try:
            return _token_from_fields(data, require_refresh=False)
        except ValueError:
            raise bad from None


def _number(value: Any) -> float:
    """A finite non-negative number from a JSON/YAML number or numeric string."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, (int, float)):
        num = float(value)
    elif isinstance(value, str):
        num = float(value.strip())
    else:
        raise ValueError("not a number")
    if not math.isfinite(num) or num < 0:
        raise ValueError("out of range")
    return num


def _orgs(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("orgs is not a list")
    names = []
    for org in value:
        # The service sends {"name": F}; a bare string is accepted too (inferred shape).
        name = org.get("name") if isinstance(org, dict) else org
        if not isinstance(name, str) or not name:
            raise ValueError("org without a name")
        names.append(name)
    return names


def _token_from_fields(data: Mapping[str, Any], *, require_refresh: bool) -> TokenSet:
    """A TokenSet from a token response / stored dict; ValueError naming the bad field."""
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise ValueError("access_token")
    refresh = data.get("refresh_token", "")
    if refresh is None:
        refresh = ""
    if not isinstance(refresh, str) or (require_refresh and not refresh):
        raise ValueError("refresh_token")
    token_type = data.get("token_type") or "bearer"
    if not isinstance(token_type, str):
        raise ValueError("token_type")
    try:
        expires_in = _number(data.get("expires_in"))
    except ValueError:
        raise ValueError("expires_in") from None
    scope = data.get("scope") or ""
    if not isinstance(scope, str):
        raise ValueError("scope")
    try:
        orgs = _orgs(data.get("orgs"))
    except ValueError:
        raise ValueError("orgs") from None
    created = data.get("created", 0.0)
    try:
        created = _number(created)
    except ValueError:
        raise ValueError("created") from None
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        token_type=token_type,
        expires_in=expires_in,
        created=created,
        scope=scope,
        orgs=orgs,
    )


def bearer_header(token: TokenSet) -> str:
    """fioctl's form: the access token base64-encoded inside the Bearer header."""
    encoded = base64.b64encode(token.access_token.encode("utf-8")).decode("ascii")
    return f"Bearer {encoded}"


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


# A token reply is a few hundred bytes; anything near this is not one.
MAX_TOKEN_REPLY = 1024 * 1024
TOKEN_DEADLINE = 60.0


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    from fiotray.core.format import safe_text

    text = safe_text(text, 10 * _MAX_DETAIL)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3].rstrip() + "..."
    return text


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The reply as a JSON object, or None for anything else (nesting too deep too)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _error_detail(body: bytes, secrets: tuple[str, ...]) -> str:
    """The server's own explanation of a refusal, cut short and scrubbed of secrets."""
    data = _json_object(body) or {}
    for key in ("error_description", "error", "msg", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return _scrub(value, secrets)
    return ""


class _Rejected(Exception):
    """The token endpoint refused the credentials or grant (400/401/403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


async def _token_request(
    http: httpx.AsyncClient,
    oauth_url: str,
    form: dict[str, str],
    *,
    clock: Callable[[], float],
) -> TokenSet:
    """POST the form to the token endpoint and parse the answer.

    Raises _Rejected for a refusal, ApiError when the service is unreachable or
    failing (try again later), AuthError for an answer we cannot use.
    """
    url = f"{oauth_url.rstrip('/')}/token/"
    host = _host(oauth_url)
    secrets = tuple(v for k, v in form.items() if k in ("client_secret", "refresh_token"))
    from fiotray.core.api import read_body

    try:
        # Bounded as every API call is: a whole-reply deadline (httpx's is per read) and
        # a cap on the body, on the wire and inflated.
        async with asyncio.timeout(TOKEN_DEADLINE):
            request = http.build_request(
                "POST", url, data=form, headers={"Accept": "application/json"}
            )
            resp = await http.send(request, stream=True)
            body = await read_body(resp, MAX_TOKEN_REPLY, cut=True, what="the token request")
    except (TimeoutError, httpx.TimeoutException):
        raise ApiError(
            f"The sign-in service at {host} did not answer in time; try again."
        ) from None
    except httpx.HTTPError as exc:
        detail = _scrub(str(exc), secrets) or type(exc).__name__
        raise ApiError(
            f"The sign-in service at {host} is unreachable ({detail}); check your network "
            "and try again."
        ) from None
    status = resp.status_code
    if status in (400, 401, 403):
        raise _Rejected(status, _error_detail(body, secrets))
    if status == 429 or status >= 500:
        raise ApiError(
            f"The sign-in service at {host} failed (HTTP {status}); try again later.",
            status=status,
        )
    if not 200 <= status < 300:
        detail = _error_detail(body, secrets)
        raise ApiError(
            f"The sign-in service at {host} answered HTTP {status}"
            + (f" ({detail})" if detail else "")
            + "; check the OAuth URL of this factory.",
            status=status,
        )
    data = _json_object(body)
    if not isinstance(data, dict):
        raise AuthError(
            f"The sign-in service at {host} sent an answer that is not a token (not a JSON "
            "object); try again or sign in again."
        )
    try:
        token = _token_from_fields({**data, "created": clock()}, require_refresh=False)
    except ValueError as exc:
        raise AuthError(
            f"The sign-in service at {host} sent a token answer with a missing or invalid "
            f"'{exc}' field; try again or sign in again."
        ) from None
    return token


async def _grant(
    http: httpx.AsyncClient,
    oauth_url: str,
    form: dict[str, str],
    *,
    refused: str,
    advice: str,
    clock: Callable[[], float],
) -> TokenSet:
    """The token endpoint's answer; a refusal becomes one sentence naming what was refused."""
    try:
        return await _token_request(http, oauth_url, form, clock=clock)
    except _Rejected as exc:
        raise AuthError(
            f"The sign-in service at {_host(oauth_url)} {refused}"
            + (f" ({exc.detail})" if exc.detail else "")
            + advice
        ) from None


async def fetch_client_credentials_token(
    http: httpx.AsyncClient,
    oauth_url: str,
    client_id: str,
    client_secret: str,
    *,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Sign in with application credentials (what ``fiotray login`` checks them with)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    return await _grant(
        http,
        oauth_url,
        form,
        refused="rejected the client credentials",
        advice="; check the client id and secret.",
        clock=clock,
    )


async def public_client_grant(
    http: httpx.AsyncClient,
    oauth_url: str,
    form: dict[str, str],
    *,
    what: str,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """A grant of a public client (no client secret): a refresh token, or an authorization
    code pasted by a person. `what` names it in the refusal ("the refresh token")."""
    return await _grant(http, oauth_url, form, refused=f"refused {what}", advice=".", clock=clock)


def token_from_fields(data: Mapping[str, Any]) -> TokenSet:
    """A TokenSet from a stored token (a dict with access_token, refresh_token,
    expires_in and created); ValueError naming the missing or bad field."""
    return _token_from_fields(data, require_refresh=True)


class OAuthCredentials:
    """OAuth2 client credentials with a cached, early-refreshed bearer token."""

    def __init__(
        self,
        oauth_url: str,
        client_id: str,
        client_secret: str,
        token: TokenSet | None = None,
        *,
        on_token: Callable[[TokenSet], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        margin: float | None = None,
    ) -> None:
        self.oauth_url = oauth_url.rstrip("/")
        self.client_id = _check_header_value(client_id, "client id")
        self._client_secret = client_secret
        if not isinstance(client_secret, str) or not client_secret:
            raise AuthError("The client secret is empty; sign in again with `fiotray login`.")
        self._token = token
        self._on_token = on_token
        self._clock = clock
        self._margin = margin
        # Created here, bound to a loop on first use (Python >= 3.10).
        self._lock = asyncio.Lock()
        self._renewed_after_401: tuple[str, float] | None = None
        self.token_requests = 0  # for diagnostics and tests

    def __repr__(self) -> str:
        return f"OAuthCredentials(oauth_url={self.oauth_url!r}, client_id={self.client_id!r})"

    @property
    def token(self) -> TokenSet | None:
        return self._token

    def _needs_renewal(self, token: TokenSet | None) -> bool:
        if token is None:
            return True
        margin = token.default_margin() if self._margin is None else self._margin
        return token.expires_soon(self._clock(), margin)

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._needs_renewal(self._token):
            async with self._lock:
                # Another task may have renewed while this one waited for the lock.
                if self._needs_renewal(self._token):
                    await self._renew(http)
        assert self._token is not None
        return {"Authorization": bearer_header(self._token)}

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        sent_auth = next((v for k, v in sent.items() if k.lower() == "authorization"), None)
        async with self._lock:
            current = bearer_header(self._token) if self._token is not None else None
            if current is not None and sent_auth != current:
                # Renewed since that request left (by a concurrent 401): just retry.
                return True
            recent = self._renewed_after_401
            if (
                current is not None
                and recent is not None
                and recent[0] == current
                and self._clock() - recent[1] < _RECENT_401_RENEWAL
            ):
                return False
            await self._renew(http)
            assert self._token is not None
            self._renewed_after_401 = (bearer_header(self._token), self._clock())
            return True

    async def _renew(self, http: httpx.AsyncClient) -> None:
        """Refresh the token, or sign in again with the client secret; caller holds the lock."""
        new: TokenSet | None = None
        old = self._token
        if old is not None and old.refresh_token:
            self.token_requests += 1
            try:
                new = await _token_request(
                    http,
                    self.oauth_url,
                    {
                        "grant_type": "refresh_token",
                        "client_id": self.client_id,
                        "client_secret": self._client_secret,
                        "refresh_token": old.refresh_token,
                    },
                    clock=self._clock,
                )
            except _Rejected as exc:
                # Refresh token expired or revoked: the client secret can still sign in.
                log.info("auth: refresh refused (HTTP %s); signing in again", exc.status)
        if new is None:
            self.token_requests += 1
            try:
                new = await _token_request(
                    http,
                    self.oauth_url,
                    {
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self._client_secret,
                    },
                    clock=self._clock,
                )
            except _Rejected:
                raise AuthError(
                    f"Your sign-in for {_host(self.oauth_url)} has expired or was revoked; "
                    "sign in again with `fiotray login`."
                ) from None
        self._token = new
        if self._on_token is not None:
            try:
                await self._on_token(new)
            except FiotrayError as exc:
                # The token works in memory; losing it only costs a new sign-in
                # with the client secret next time, so requests go on.
                log.warning("auth: could not save the new token: %s", exc)


# -- keyring layout and CLI helpers ---------------------------------------------------


def _not_signed_in(factory: Factory) -> AuthError:
    return AuthError(
        f"Not signed in to {factory.factory}; run `fiotray login --factory {factory.factory}` "
        "first."
    )


async def load_credentials(factory: Factory, secrets: SecretStore) -> Credentials:
    """Credentials of a factory from the keyring; AuthError if they are not there."""
    if factory.auth == "token":
        api_token = await secrets.aget(factory_key(factory.factory, "api_token"))
        if not api_token:
            raise _not_signed_in(factory)
        return ApiTokenCredentials(api_token)
    if factory.auth != "oauth":
        raise SetupError(f"Factory {factory.factory} has an unknown auth kind.")
    if not factory.client_id:
        raise _not_signed_in(factory)
    client_secret = await secrets.aget(factory_key(factory.factory, "client_secret"))
    if not client_secret:
        raise _not_signed_in(factory)
    token_key = factory_key(factory.factory, "oauth_token")
    stored = await secrets.aget(token_key)
    token: TokenSet | None = None
    if stored:
        try:
            token = TokenSet.from_json(stored)
        except AuthError:
            # The client secret can get a new one; no reason to bother the user.
            log.warning("auth: stored token of %s is unreadable; fetching a new one", factory.name)

    async def save(new: TokenSet) -> None:
        await secrets.aset(token_key, new.to_json())

    return OAuthCredentials(
        factory.oauth_url, factory.client_id, client_secret, token, on_token=save
    )


async def save_api_token(factory: Factory, secrets: SecretStore, token: str) -> None:
    """Store an API token; OAuth secrets of the same factory are removed (one auth kind)."""
    _check_header_value(token, "API token")
    await secrets.aset(factory_key(factory.factory, "api_token"), token)
    for what in ("client_secret", "oauth_token"):
        await secrets.adelete(factory_key(factory.factory, what))


async def save_oauth(
    factory: Factory, secrets: SecretStore, client_secret: str, token: TokenSet
) -> None:
    """Store client secret and token set; an API token of the same factory is removed."""
    if not client_secret:
        raise AuthError("The client secret is empty; check what was entered.")
    await secrets.aset(factory_key(factory.factory, "client_secret"), client_secret)
    await secrets.aset(factory_key(factory.factory, "oauth_token"), token.to_json())
    await secrets.adelete(factory_key(factory.factory, "api_token"))


async def forget(factory: Factory, secrets: SecretStore) -> None:
    """Delete every secret of the factory (missing ones are fine)."""
    for what in ("client_secret", "oauth_token", "api_token"):
        await secrets.adelete(factory_key(factory.factory, what))


# -- importing fioctl's configuration ---------------------------------------------


@dataclass
class FioctlImport:
    factory: str | None
    api_url: str
    oauth_url: str
    client_id: str
    client_secret: str = field(repr=False)
    token: TokenSet | None


def default_fioctl_config() -> Path:
    # fioctl uses $HOME/.config/fioctl.yaml whatever XDG_CONFIG_HOME says.
    return Path.home() / ".config" / "fioctl.yaml"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*([Zz]|[+-]\d{2}:?\d{2})?"
)


def parse_rfc3339(value: Any) -> float:
    """Unix time of an RFC 3339 timestamp (nanoseconds allowed) or a YAML datetime."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.timestamp()
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        raise ValueError("not a timestamp")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    base = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
    )
    offset = 0
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return base.timestamp() - offset


def _fioctl_token(cc: Mapping[str, Any], path: Path) -> TokenSet | None:
    """The token fioctl cached, or None when absent or unusable (the secret gets a new one)."""
    if not cc.get("access_token"):
        return None
    try:
        created = parse_rfc3339(cc.get("created"))
        return _token_from_fields({**cc, "created": created}, require_refresh=False)
    except ValueError as exc:
        log.info("fioctl import: ignoring the cached token in %s (%s)", path, exc)
        return None


def read_fioctl_config(path: Path | None = None) -> FioctlImport:
    """What ``fiotray login --from-fioctl`` needs from fioctl's plain-text config.

    SetupError for anything unusable; messages name the file and the problem,
    never a value from it (the file holds the client secret).
    """
    path = Path(path) if path is not None else default_fioctl_config()

    def bad(problem: str) -> SetupError:
        return SetupError(f"Cannot import {path}: {problem}.")

    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise bad("the file does not exist (sign in with fioctl first, or log in here)") from None
    except IsADirectoryError:
        raise bad("it is a directory") from None
    except OSError as exc:
        raise bad(exc.strerror or type(exc).__name__) from None
    except UnicodeDecodeError:
        raise bad("it is not UTF-8 text") from None
    # Here, not at the top: only `login --from-fioctl` reads YAML, and PyYAML takes ~8 ms
    # to import, which every API command would otherwise pay.
    import yaml

    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may be the client secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise bad(f"it is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise bad("it is not a YAML mapping") from None

    factory = data.get("factory")
    if factory is not None:
        if not isinstance(factory, str):
            raise bad("'factory' is not a string") from None
        factory = factory.strip() or None
        if factory is not None:
            try:
                validate_factory_name(factory)
            except SetupError:
                raise bad("'factory' is not a valid factory name") from None

    server = data.get("server") or {}
    if not isinstance(server, dict):
        raise bad("'server' is not a mapping") from None
    insecure = server.get("insecure_skip_verify", False)
    if insecure not in (None, False):
        raise bad(
            "it sets server.insecure_skip_verify, but fiotray always verifies TLS; point "
            "the CACERT environment variable at your CA bundle and set it to false"
        ) from None

    cc = data.get("clientcredentials")
    if cc is None:
        raise bad("it has no 'clientcredentials' section (sign in with fioctl first)") from None
    if not isinstance(cc, dict):
        raise bad("'clientcredentials' is not a mapping") from None
    client_id = cc.get("client_id")
    client_secret = cc.get("client_secret")
    if not isinstance(client_id, str) or not client_id.strip():
        raise bad("clientcredentials.client_id is missing or not a string") from None
    if not isinstance(client_secret, str) or not client_secret:
        raise bad("clientcredentials.client_secret is missing or not a string") from None

    oauth_url = cc.get("url") or DEFAULT_OAUTH_URL
    if not isinstance(oauth_url, str):
        raise bad("clientcredentials.url is not a string") from None
    try:
        oauth_url = validate_url(oauth_url, "OAuth URL")
    except SetupError as exc:
        raise bad(f"clientcredentials.url: {str(exc).rstrip('.')}") from None

    api_url = server.get("url")
    try:
        if api_url is None or api_url == "":
            api_url = api_url_from_oauth(oauth_url)
        elif not isinstance(api_url, str):
            raise bad("server.url is not a string") from None
        else:
            api_url = validate_url(api_url, "API URL")
    except SetupError as exc:
        raise bad(f"server.url: {str(exc).rstrip('.')}") from None

    return FioctlImport(
        factory=factory,
        api_url=api_url,
        oauth_url=oauth_url,
        client_id=client_id.strip(),
        client_secret=client_secret,
        token=_fioctl_token(cc, path),
    )
