"""Upstream's OAuth creds file (`--oauthcreds`), taken over as it is: the daemon reads it,
refreshes the token 600 s before it expires (as upstream) and writes it back.

The file is `{"access_token", "refresh_token", "expires_in", "created"}` from the
authorization-code sign-in of upstream's public client (no client secret). Upstream
leaves it readable by everyone; it is tightened to 0600 when taken over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from fiotray.core import auth
from fiotray.core.errors import AuthError
from fiotray.core.files import write_private

log = logging.getLogger(__name__)

# factory-wireguard-server's own public OAuth client and its out-of-band redirect.
CLIENT_ID = "fioid_B68H03zaynCXzycBX9M3WKL7xLqJYJyf"
REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
DEFAULT_OAUTH_URL = "https://app.foundries.io/oauth"
REFRESH_MARGIN = 600.0  # upstream's slack, kept: both daemons may share one file


@dataclass
class _Creds:
    access_token: str
    refresh_token: str
    expires_in: float
    created: float


def read_creds(path: Path) -> _Creds:
    """The creds file, tightened to 0600 if others could read it; AuthError otherwise."""
    try:
        st = path.stat()
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthError(
            f"There is no OAuth creds file at {path}: sign in once with "
            f"`fiotray-server -f FACTORY -a {path} login`."
        ) from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise AuthError(f"The OAuth creds file {path} is unreadable; sign in again.") from None
    if st.st_mode & 0o077:
        log.warning("%s was readable by others (as upstream leaves it): now 0600", path)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    try:
        token = auth.token_from_fields(data if isinstance(data, dict) else {})
    except ValueError as exc:
        raise AuthError(
            f"The OAuth creds file {path} has no valid '{exc}'; sign in again."
        ) from None
    return _Creds(token.access_token, token.refresh_token, token.expires_in, token.created)


def write_creds(path: Path, token: auth.TokenSet) -> None:
    data = {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token,
        "expires_in": token.expires_in,
        "created": token.created,
    }
    # own_dir=False: the directory is the admin's (upstream keeps the file in its own).
    write_private(path, json.dumps(data, indent=2) + "\n", error=AuthError, own_dir=False)


class CredsFileCredentials:
    """fiotray.core.auth.Credentials over the creds file (Bearer, as upstream sends it)."""

    def __init__(
        self,
        path: Path,
        oauth_url: str = DEFAULT_OAUTH_URL,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.oauth_url = oauth_url
        self._clock = clock
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"CredsFileCredentials(path={self.path})"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        async with self._lock:
            creds = await asyncio.to_thread(read_creds, self.path)
            if self._clock() > creds.created + creds.expires_in - REFRESH_MARGIN:
                creds = await self._refresh(http, creds)
            return {"Authorization": f"Bearer {creds.access_token}"}

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        """A 401: refresh once if the token sent is still the file's; then retry."""
        async with self._lock:
            creds = await asyncio.to_thread(read_creds, self.path)
            if sent.get("Authorization") != f"Bearer {creds.access_token}":
                return True  # refreshed meanwhile (by us or another process)
            await self._refresh(http, creds)
            return True

    async def _refresh(self, http: httpx.AsyncClient, creds: _Creds) -> _Creds:
        log.info("refreshing the OAuth token in %s", self.path)
        self.refreshes += 1
        token = await auth.public_client_grant(
            http,
            self.oauth_url,
            {"grant_type": "refresh_token", "refresh_token": creds.refresh_token},
            what="the refresh token of the creds file",
            clock=self._clock,
        )
        await asyncio.to_thread(write_creds, self.path, token)
        return _Creds(token.access_token, token.refresh_token, token.expires_in, token.created)


def authorize_url(factory: str, oauth_url: str = DEFAULT_OAUTH_URL) -> str:
    """Where the admin authorizes the server, as upstream prints it."""
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": f"{factory}:devices:read-update {factory}:devices:read",
        }
    )
    base = oauth_url.removesuffix("/oauth").rstrip("/")
    return f"{base}/authorize?{query}"


async def _code_grant(
    http: httpx.AsyncClient, oauth_url: str, code: str, scope: str, **extra: str
) -> auth.TokenSet:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        **extra,
    }
    return await auth.public_client_grant(http, oauth_url, form, what="the code")


async def sign_in_with_code(
    http: httpx.AsyncClient, factory: str, code: str, path: Path, oauth_url: str = DEFAULT_OAUTH_URL
) -> None:
    """Exchange the pasted code for the long-lived `devices:read` token the daemon uses,
    and keep it in the creds file (0600)."""
    token = await _code_grant(http, oauth_url, code, f"{factory}:devices:read")
    await asyncio.to_thread(write_creds, path, token)


async def update_token_with_code(
    http: httpx.AsyncClient, factory: str, code: str, oauth_url: str = DEFAULT_OAUTH_URL
) -> str:
    """What upstream's `enable` asks first for the pasted code: a 90-second
    `devices:read-update` token, enough to register the server in the factory's config
    and never kept anywhere."""
    token = await _code_grant(http, oauth_url, code, f"{factory}:devices:read-update", expires="90")
    return token.access_token


class BearerToken:
    """fiotray.core.auth.Credentials for one short-lived token (upstream's `enable`)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(token=***)"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def unauthorized(self, http: httpx.AsyncClient, sent: Mapping[str, str]) -> bool:
        return False
