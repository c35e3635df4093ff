"""The embedded demo factory: the fake API with a few dozen varied devices."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fiotray.core.profiles import Profile
from fiotray.core.secrets import MemorySecretStore, profile_key
from fiotray.demo.fakeapi import FakeApiServer, FakeFactory

DEMO_FACTORY = "demo-factory"
DEMO_DEVICES = 36
# A demo device "checks in" and applies a VPN change this long after it was written.
DEMO_APPLY_SECONDS = 15.0


@dataclass
class DemoSession:
    server: FakeApiServer
    profile: Profile
    secrets: MemorySecretStore

    def close(self) -> None:
        self.server.stop()


def start_demo(devices: int = DEMO_DEVICES, latency: float = 0.0) -> DemoSession:
    factory = FakeFactory(DEMO_FACTORY)
    factory.populate(devices, seed=7)
    factory.set_wireguard_server()
    factory.auto_apply_after = DEMO_APPLY_SECONDS
    token = secrets.token_urlsafe(24)
    factory.add_api_token(token)
    server = FakeApiServer(factory, latency=latency).start()
    profile = Profile(
        factory=DEMO_FACTORY, auth="token", api_url=server.api_url, oauth_url=server.oauth_url
    )
    store = MemorySecretStore()
    store.set(profile_key(DEMO_FACTORY, "api_token"), token)
    return DemoSession(server=server, profile=profile, secrets=store)
