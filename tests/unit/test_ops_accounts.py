"""fiotray.ops.accounts and the demo services: the demo keeps to its own temp dir."""

from __future__ import annotations

from pathlib import Path

from fiotray.ops import accounts, devices, tunnels

FACTORY = "demo-factory"


async def test_the_demo_keeps_to_its_temp_dir(services, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    services.tunnels.remove(FACTORY)  # one tunnel per factory
    await tunnels.add_foundries(services, address="10.42.42.201", name="scratch")
    await devices.set_vpn(services, FACTORY, "off-vpn", True)
    root = services.settings.path.parent.parent
    assert services.tunnels.path.is_relative_to(root)
    assert list(tmp_path.iterdir()) == []
    assert [f.factory for f in accounts.factories(services)] == [FACTORY]
    assert accounts.factories(services)[0].default
    await services.aclose()
    assert not Path(root).exists()


async def test_a_keyring_failure_at_sign_in_leaves_the_factories_as_they_were(
    services, monkeypatch
):
    import pytest

    from fiotray.core.errors import SecretsUnavailable

    fake = services.demo.server
    fake.factory.add_api_token("second-token")
    calls: list[str] = []

    def refuse(key: str, value: str) -> None:
        calls.append(key)
        raise SecretsUnavailable("The system keyring refused to store the secret.")

    before = services.factories.list()
    monkeypatch.setattr(services.secrets, "set", refuse)
    with pytest.raises(SecretsUnavailable):
        await accounts.sign_in_token(
            services, factory=FACTORY, token="second-token", api_url=fake.api_url
        )
    assert calls == [f"profile/{FACTORY}/api_token"]
    # The factory signed in before keeps its entry (and its old secret).
    assert services.factories.list() == before


async def test_orphans_are_found_by_name_and_removed_one_owner_at_a_time(services):
    services.secrets.set("tunnel/ghost/private_key", "k")
    services.secrets.set("profile/gone/api_token", "t")
    services.secrets.set("profile/gone/client_secret", "s")
    assert sorted(accounts.orphan_secrets(services)) == [
        "profile/gone/api_token",
        "profile/gone/client_secret",
        "tunnel/ghost/private_key",
    ]
    gone = await accounts.forget_orphans(services, factory="gone")
    assert sorted(gone) == ["profile/gone/api_token", "profile/gone/client_secret"]
    assert accounts.orphan_secrets(services) == ["tunnel/ghost/private_key"]
    assert await accounts.forget_orphans(services, tunnel="nothing") == []


async def test_signing_out_is_never_guessed_among_several_factories(tmp_path):
    import pytest

    from fiotray.core.errors import FiotrayError
    from fiotray.core.factories import Factory, FactoryStore
    from fiotray.core.secrets import MemorySecretStore
    from fiotray.core.services import Services
    from fiotray.core.settings import SettingsStore
    from fiotray.core.tunnels import TunnelController, TunnelStore

    factories, tunnels = FactoryStore(tmp_path), TunnelStore(tmp_path)
    secrets = MemorySecretStore()
    services = Services(
        factories, tunnels, SettingsStore(tmp_path), secrets, TunnelController(tunnels, secrets)
    )
    factories.save(Factory(factory="acme", auth="token"), make_default=True)
    factories.save(Factory(factory="bravo", auth="token"))
    with pytest.raises(FiotrayError, match=r"Several factories are signed in \(acme, bravo\)"):
        await accounts.sign_out(services)
    assert [f.factory for f in factories.list()] == ["acme", "bravo"]  # the default stays
    assert (await accounts.sign_out(services, "bravo")).factory == "bravo"
    assert (await accounts.sign_out(services)).factory == "acme"  # the only one: no guess
