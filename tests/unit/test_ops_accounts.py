"""fiotray.ops.accounts and the demo services: the demo keeps to its own temp dir."""

from __future__ import annotations

from pathlib import Path

from fiotray.ops import accounts, devices, tunnels

FACTORY = "demo-factory"


async def test_the_demo_keeps_to_its_temp_dir(services, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    await tunnels.add_foundries(services, address="10.42.42.201", name="scratch")
    await devices.set_vpn(services, FACTORY, "off-vpn", True)
    root = services.settings.path.parent.parent
    assert services.tunnels.path.is_relative_to(root)
    assert list(tmp_path.iterdir()) == []
    assert [f.factory for f in accounts.factories(services)] == [FACTORY]
    assert accounts.factories(services)[0].default
    await services.aclose()
    assert not Path(root).exists()
