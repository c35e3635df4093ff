"""Signing in to factories and out of them, and which factories are signed in.

Nothing is saved until the factory has answered an authenticated request with the
credentials; then the factory goes to the factories file and, after it, the secrets to
the keyring (a crash in between leaves a factory that asks to sign in again, never a
secret that nothing names; a failed keyring write takes the factory back out).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fiotray.core.errors import FiotrayError
from fiotray.core.factories import (
    DEFAULT_OAUTH_URL,
    Factory,
    api_url_from_oauth,
    validate_factory_name,
    validate_url,
)
from fiotray.core.services import Services

# httpx and keyring (behind fiotray.core.auth and .api) are imported by the sign-ins
# themselves: the tray lists its factories without them.
if TYPE_CHECKING:
    from fiotray.core import auth


@dataclass(frozen=True)
class FactoryInfo:
    factory: str
    auth: str  # "token" | "oauth"
    api_url: str
    oauth_url: str
    default: bool

    def to_json(self) -> dict[str, object]:
        return {
            "factory": self.factory,
            "auth": self.auth,
            "api_url": self.api_url,
            "oauth_url": self.oauth_url,
            "default": self.default,
        }


def factories(services: Services) -> list[FactoryInfo]:
    """The signed-in factories, the default one marked."""
    default = services.factories.default_name()
    return [
        FactoryInfo(f.factory, f.auth, f.api_url, f.oauth_url, f.factory == default)
        for f in services.factories.list()
    ]


def _urls(oauth_url: str | None, api_url: str | None) -> tuple[str, str]:
    oauth = validate_url(oauth_url or DEFAULT_OAUTH_URL, "the OAuth URL")
    api = validate_url(api_url, "the API URL") if api_url else api_url_from_oauth(oauth)
    return oauth, api


async def _prove(factory: Factory, creds: auth.Credentials) -> None:
    """One authenticated request: credentials the factory refuses are never saved."""
    from fiotray.core.api import FactoryClient

    async with FactoryClient(factory.api_url, factory.factory, creds, page_size=10) as api:
        await api.get_json(api.url("/ota/devices/"), {"factory": factory.factory, "limit": 10})


async def sign_in_token(
    services: Services,
    *,
    factory: str,
    token: str,
    api_url: str | None = None,
    oauth_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """An API token, proven against the API, then saved (the token to the keyring)."""
    from fiotray.core import auth

    oauth, api = _urls(oauth_url, api_url)
    signed_in = Factory(
        factory=validate_factory_name(factory), auth="token", api_url=api, oauth_url=oauth
    )
    await _prove(signed_in, auth.ApiTokenCredentials(token))
    await asyncio.to_thread(services.secrets.check)
    return await _save(
        services, signed_in, make_default, auth.save_api_token(signed_in, services.secrets, token)
    )


async def _save(
    services: Services,
    signed_in: Factory,
    make_default: bool,
    secrets: Coroutine[object, object, None],
) -> Factory:
    """The factory, then its secrets; the factories file as it was when they fail."""
    from fiotray.core import auth

    before = next((f for f in services.factories.list() if f.factory == signed_in.factory), None)
    default = services.factories.default_name()
    try:
        services.factories.save(signed_in, make_default=make_default)
    except BaseException:
        secrets.close()  # never started: nothing to undo
        raise
    try:
        await secrets
    except BaseException:
        if before is None:
            # Some may have been written (a client secret, then the token failed).
            with contextlib.suppress(FiotrayError):
                await auth.forget(signed_in, services.secrets)
            services.factories.remove(signed_in.factory)
        else:
            services.factories.save(before, make_default=default == before.factory)
        raise
    return signed_in


async def sign_in_client(
    services: Services,
    *,
    client_id: str,
    client_secret: str,
    factory: str | None = None,
    api_url: str | None = None,
    oauth_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """OAuth2 application credentials (what `fioctl login` uses): a token is granted,
    proven against the API, then the secret and the token go to the keyring. Without
    `factory`, the credentials' only factory."""
    from fiotray.core import auth
    from fiotray.core.api import new_http_client

    oauth, api = _urls(oauth_url, api_url)
    async with new_http_client() as http:
        token = await auth.fetch_client_credentials_token(http, oauth, client_id, client_secret)
    if factory is None:
        if len(token.orgs) != 1:
            orgs = ", ".join(token.orgs) or "none"
            raise FiotrayError(f"Name the factory: these credentials can use {orgs}.")
        factory = token.orgs[0]
    signed_in = Factory(
        factory=validate_factory_name(factory),
        auth="oauth",
        api_url=api,
        oauth_url=oauth,
        client_id=client_id,
    )
    await _prove(signed_in, auth.OAuthCredentials(oauth, client_id, client_secret, token))
    await asyncio.to_thread(services.secrets.check)
    return await _save(
        services,
        signed_in,
        make_default,
        auth.save_oauth(signed_in, services.secrets, client_secret, token),
    )


async def sign_in_fioctl(
    services: Services,
    *,
    path: Path | None = None,
    factory: str | None = None,
    api_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """fioctl's application credentials, moved into the keyring (its file is left alone)."""
    from fiotray.core import auth

    imported = await asyncio.to_thread(auth.read_fioctl_config, path)
    # fioctl's saved token may be stale: a fresh grant proves the credentials work.
    return await sign_in_client(
        services,
        client_id=imported.client_id,
        client_secret=imported.client_secret,
        factory=factory or imported.factory,
        api_url=api_url or imported.api_url,
        oauth_url=imported.oauth_url,
        make_default=make_default,
    )


async def sign_out(services: Services, factory: str | None = None) -> Factory:
    """Forget the factory: its secrets leave the keyring, its entry the factories file.
    None: the only one; with several, signing out is never guessed (not even the default)."""
    from fiotray.core import auth

    if factory is None:
        names = sorted(f.factory for f in services.factories.list())
        if len(names) > 1:
            raise FiotrayError(
                f"Several factories are signed in ({', '.join(names)}): name the one to sign "
                "out of (--factory NAME)."
            )
    signed_in = services.factory(factory)
    await services.forget_client(signed_in.factory)
    await auth.forget(signed_in, services.secrets)
    services.factories.remove(signed_in.factory)
    return signed_in


def orphan_secrets(services: Services) -> list[str]:
    """Keyring entries fiotray made whose factory or tunnel is gone (a crash between the
    two saves, a hand-edited file). Reads the entries' index, never the keyring."""
    from fiotray.core.secrets import owner_of

    factories = {f.factory for f in services.factories.list()}
    tunnels = {t.name for t in services.tunnels.list()}
    out = []
    for key in services.secrets.entry_names():
        owner = owner_of(key)
        if owner is None:
            continue
        kind, name = owner
        if name not in (factories if kind == "factory" else tunnels):
            out.append(key)
    return out


async def forget_orphans(
    services: Services, *, factory: str | None = None, tunnel: str | None = None
) -> list[str]:
    """Delete the orphaned entries of one factory or tunnel (what `logout` and tunnel
    removal do for a name that has no entry any more); the ones deleted."""
    from fiotray.core.secrets import owner_of

    wanted = ("factory", factory) if factory is not None else ("tunnel", tunnel)
    gone = [key for key in orphan_secrets(services) if owner_of(key) == wanted]
    for key in gone:
        await services.secrets.adelete(key)
    return gone
