"""Signing in to factories and out of them, and which factories are signed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fiotray.core.factories import Factory
from fiotray.core.services import Services


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


async def sign_in_token(
    services: Services,
    *,
    factory: str,
    token: str,
    api_url: str | None = None,
    oauth_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """An API token, proven against the API, then saved (secret to the keyring)."""
    from fiotray.core import signin

    return await signin.sign_in_api_token(
        services.factories,
        services.secrets,
        factory=factory,
        token=token,
        api_url=api_url,
        oauth_url=oauth_url,
        make_default=make_default,
    )


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
    """OAuth2 application credentials (what `fioctl login` uses), proven, then saved."""
    from fiotray.core import signin

    return await signin.sign_in_client_credentials(
        services.factories,
        services.secrets,
        client_id=client_id,
        client_secret=client_secret,
        factory=factory,
        api_url=api_url,
        oauth_url=oauth_url,
        make_default=make_default,
    )


async def sign_in_fioctl(
    services: Services,
    *,
    path: Path | None = None,
    factory: str | None = None,
    api_url: str | None = None,
    make_default: bool = False,
) -> Factory:
    """fioctl's saved application credentials, moved into the keyring (its file stays)."""
    from fiotray.core import signin

    return await signin.sign_in_from_fioctl(
        services.factories,
        services.secrets,
        path=path,
        factory=factory,
        api_url=api_url,
        make_default=make_default,
    )


async def sign_out(services: Services, factory: str | None = None) -> Factory:
    """Forget the factory: its secrets leave the keyring, its entry the factories file."""
    from fiotray.core import signin

    signed_in = services.factory(factory)
    await services.forget_client(signed_in.factory)
    await signin.sign_out(services.factories, services.secrets, signed_in.factory)
    return signed_in
