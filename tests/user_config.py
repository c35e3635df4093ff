"""A user's configuration as the stores write it: one factory and one Foundries tunnel, down.

For runs of the real (non-demo) app that must make no network call at start-up.
"""

from __future__ import annotations

from pathlib import Path


def write_user_config(config_home: Path) -> None:
    """One signed-in-looking factory and one Foundries tunnel under `config_home`/fiotray."""
    from fiotray.core import wgconf
    from fiotray.core.factories import Factory, FactoryStore
    from fiotray.core.tunnels import Tunnel, TunnelStore

    config = config_home / "fiotray"
    FactoryStore(config).save(Factory(factory="acme", auth="token"), make_default=True)
    key = wgconf.generate_private_key()
    template = (
        "[Interface]\nAddress = 10.42.42.10/32\n\n[Peer]\n"
        f"PublicKey = {wgconf.public_key(wgconf.generate_private_key())}\n"
        "AllowedIPs = 10.42.42.0/24\nEndpoint = vpn.example.invalid:5555\n"
        "PersistentKeepalive = 25\n"
    )
    TunnelStore(config).save(
        Tunnel(
            name="acme",
            kind="foundries",
            interface="fioacme",
            template=template,
            public_key=wgconf.public_key(key),
            endpoint="vpn.example.invalid:5555",
            factory="acme",
            address="10.42.42.10",
            server_address="10.42.42.1",
        )
    )


def cli_env(home: Path, bus_address: str, **extra: str) -> dict[str, str]:
    """The environment of a `fiotray` process run as a user whose files are all under
    `home` and whose keyring is the private Secret Service at `bus_address`."""
    import os

    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "DBUS_SESSION_BUS_ADDRESS": bus_address,
        **extra,
    }
    env.pop("PYTHON_KEYRING_BACKEND", None)
    return env
