"""Turn a saved profile into a signed-in FactoryClient."""

from __future__ import annotations

from fiotray.core.api import FactoryClient
from fiotray.core.auth import load_credentials
from fiotray.core.profiles import Profile
from fiotray.core.secrets import SecretStore


async def open_factory(profile: Profile, secrets: SecretStore, **options: object) -> FactoryClient:
    credentials = await load_credentials(profile, secrets)
    return FactoryClient(profile.api_url, profile.factory, credentials, **options)  # type: ignore[arg-type]
