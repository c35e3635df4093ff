"""Credentials saved, loaded, refreshed and forgotten in a real Secret Service.

gnome-keyring on a private bus (tests/keyring_session); the token endpoint is the
fake of tests/unit/test_auth.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fiotray.core.auth import (
    OAuthCredentials,
    TokenSet,
    forget,
    load_credentials,
    save_api_token,
    save_oauth,
)
from fiotray.core.errors import AuthError
from fiotray.core.factories import Factory
from fiotray.core.secrets import SecretStore, factory_key
from tests.keyring_session import SecretServiceSession
from tests.unit.test_auth import CLIENT_SECRET, T0, FakeOAuth, bearer, oauth_factory, token


@pytest.fixture
def fake() -> FakeOAuth:
    return FakeOAuth()


@pytest.fixture
async def http(fake: FakeOAuth) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        yield client


async def test_oauth_save_load_and_persist_refresh_in_real_keyring(
    secret_service: SecretServiceSession, fake: FakeOAuth, http: httpx.AsyncClient
) -> None:
    store = SecretStore()
    factory = oauth_factory()
    await forget(factory, store)
    stored = TokenSet("access-stored", "refresh-stored", "bearer", 3600, T0 - 3500)
    fake.valid_refresh.add("refresh-stored")
    await save_oauth(factory, store, CLIENT_SECRET, stored)

    # A fresh store (new backend, new D-Bus connection) reads what was saved.
    c = await load_credentials(factory, SecretStore())
    assert isinstance(c, OAuthCredentials)
    assert c.token == stored
    # The stored token expires soon (real clock): refreshing saves the new one.
    assert await c.headers(http) == {"Authorization": bearer("access-1")}
    assert fake.grants() == ["refresh_token"]
    saved = TokenSet.from_json(SecretStore().get(factory_key("acme", "oauth_token")) or "")
    assert saved.access_token == "access-1"
    assert saved.refresh_token == "refresh-1"
    assert SecretStore().get(factory_key("acme", "client_secret")) == CLIENT_SECRET

    await forget(factory, store)
    for what in ("client_secret", "oauth_token", "api_token"):
        assert SecretStore().get(factory_key("acme", what)) is None
    with pytest.raises(AuthError) as info:
        await load_credentials(factory, store)
    assert str(info.value) == ("Not signed in to acme; run `fiotray login --factory acme` first.")


async def test_api_token_save_load_and_switching_kinds(
    secret_service: SecretServiceSession, http: httpx.AsyncClient
) -> None:
    store = SecretStore()
    oauth_acme = oauth_factory()
    token_acme = Factory(factory="acme", auth="token")
    await save_oauth(oauth_acme, store, CLIENT_SECRET, token())
    await save_api_token(token_acme, store, "API-TOKEN-SECRET")

    c = await load_credentials(token_acme, SecretStore())
    assert await c.headers(http) == {"OSF-TOKEN": "API-TOKEN-SECRET"}
    # One auth kind per factory: the OAuth secrets are gone.
    assert store.get(factory_key("acme", "client_secret")) is None
    assert store.get(factory_key("acme", "oauth_token")) is None

    await save_oauth(oauth_acme, store, CLIENT_SECRET, token())
    assert store.get(factory_key("acme", "api_token")) is None
    await forget(token_acme, store)
    with pytest.raises(AuthError, match="Not signed in to acme"):
        await load_credentials(token_acme, store)
