"""`fiotray tunnels` commands that need no network: SSH settings per tunnel."""

import json

import pytest

from fiotray import cli
from fiotray.core import tunnels


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    store = tunnels.TunnelStore(tmp_path / "fiotray")
    store.save(
        tunnels.Tunnel(
            "acme",
            "foundries",
            "fioacme",
            "[Interface]\n",
            "K",
            factory="acme",
            server_address="10.42.42.1",
        )
    )
    return store


def test_ssh_settings_saved_validated_and_shown(config, capsys):
    assert (
        cli.main(
            [
                "tunnels",
                "ssh",
                "acme",
                "--route",
                "public",
                "--jump-host",
                "vpn.example.com:2222",
                "--user",
                "root",
                "--option",
                "ServerAliveInterval=30",
            ]
        )
        == 0
    )
    saved = json.loads(config.path.read_text())["tunnels"]["acme"]["ssh"]
    assert saved == {
        "user": "root",
        "route": "public",
        "jump_host": "vpn.example.com:2222",
        "extra_options": ["ServerAliveInterval=30"],
    }
    assert "route: public" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["--jump-host=-oProxyCommand=touch x"],
        ["--user", "a;b"],
        ["--option", "ProxyCommand=touch x"],
        ["--route", "public"],  # public needs the server's public SSH host
    ],
)
def test_bad_ssh_settings_refused_and_nothing_saved(config, capsys, args):
    before = config.path.read_text()
    assert cli.main(["tunnels", "ssh", "acme", *args]) == 1
    assert config.path.read_text() == before
    assert capsys.readouterr().err.startswith("fiotray: ")
