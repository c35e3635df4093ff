"""Signing in to a factory: prove the credentials, then keep them (keyring) and the profile.

Shared by the CLI and the GUI. Nothing is saved until the factory has answered
an authenticated request with these credentials.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fiotray.core import auth
from fiotray.core.api import FactoryClient, new_http_client
from fiotray.core.errors import FiotrayError
from fiotray.core.factories import (
    DEFAULT_OAUTH_URL,
    Factory,
    FactoryStore,
    api_url_from_oauth,
    validate_factory_name,
    validate_url,
)
from fiotray.core.secrets import SecretStore


def _urls(oauth_url: str | None, api_url: str | None) -> tuple[str, str]:
    oauth = validate_url(oauth_url or DEFAULT_OAUTH_URL, "the OAuth URL")
    api = validate_url(api_url, "the API URL") if api_url else api_url_from_oauth(oauth)
    return oauth, api


async def _prove(profile: Factory, creds: auth.Credentials) -> None:
    async with FactoryClient(profile.api_url, profile.factory, creds, page_size=10) as api:
        await api.get_json(api.url("/ota/devices/"), {"factory": profile.factory, "limit": 10})


async def sign_in_api_token(
    profiles: FactoryStore,
    secrets: SecretStore,
    *,
    factory: str,
    token: str,
    api_url: str | None = None,
    oauth_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    oauth, api = _urls(oauth_url, api_url)
    profile = Factory(
        factory=validate_factory_name(factory), auth="token", api_url=api, oauth_url=oauth
    )
    await _prove(profile, auth.ApiTokenCredentials(token))
    await asyncio.to_thread(secrets.check)
    await auth.save_api_token(profile, secrets, token)
    profiles.save(profile, make_default=make_default)
    return profile


async def sign_in_client_credentials(
    profiles: FactoryStore,
    secrets: SecretStore,
    *,
    client_id: str,
    client_secret: str,
    factory: str | None = None,
    api_url: str | None = None,
    oauth_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    oauth, api = _urls(oauth_url, api_url)
    async with new_http_client() as http:
        token = await auth.fetch_client_credentials_token(http, oauth, client_id, client_secret)
    if factory is None:
        if len(token.orgs) != 1:
            orgs = ", ".join(token.orgs) or "none"
            raise FiotrayError(f"Name the factory: these credentials can use {orgs}.")
        factory = token.orgs[0]
    profile = Factory(
        factory=validate_factory_name(factory),
        auth="oauth",
        api_url=api,
        oauth_url=oauth,
        client_id=client_id,
    )
    await _prove(profile, auth.OAuthCredentials(oauth, client_id, client_secret, token))
    await asyncio.to_thread(secrets.check)
    await auth.save_oauth(profile, secrets, client_secret, token)
    profiles.save(profile, make_default=make_default)
    return profile


async def sign_in_from_fioctl(
    profiles: FactoryStore,
    secrets: SecretStore,
    *,
    path: Path | None = None,
    factory: str | None = None,
    api_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """fioctl's application credentials, moved into the keyring (its file is left alone)."""
    imported = await asyncio.to_thread(auth.read_fioctl_config, path)
    # fioctl's saved token may be stale: a fresh grant proves the credentials work.
    return await sign_in_client_credentials(
        profiles,
        secrets,
        client_id=imported.client_id,
        client_secret=imported.client_secret,
        factory=factory or imported.factory,
        api_url=api_url or imported.api_url,
        oauth_url=imported.oauth_url,
        make_default=make_default,
    )


async def sign_out(profiles: FactoryStore, secrets: SecretStore, factory: str) -> None:
    profile = profiles.get(factory)
    await auth.forget(profile, secrets)
    profiles.remove(profile.factory)
