"""fiotray.server.oauth: upstream's OAuth creds file, over HTTP against the fake API's
public client (authorization code, refresh without a secret)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from fiotray.core.api import FactoryClient, new_http_client
from fiotray.core.errors import AuthError
from fiotray.demo.fakeapi import FakeFactory
from fiotray.server import oauth

FACTORY = "srv-factory"


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory(FACTORY)
    f.add_public_client(oauth.CLIENT_ID)
    f.add_device("dev-1", vpn_address="10.42.42.2")
    return f


async def _sign_in(factory, server, path):
    async with new_http_client() as http:
        await oauth.sign_in_with_code(
            http, FACTORY, factory.authorization_code(oauth.CLIENT_ID), path, server.oauth_url
        )


async def test_a_pasted_code_becomes_a_creds_file_in_upstreams_format(factory, server, tmp_path):
    path = tmp_path / "creds.json"
    await _sign_in(factory, server, path)
    data = json.loads(path.read_text())
    assert set(data) == {"access_token", "refresh_token", "expires_in", "created"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert abs(data["created"] - time.time()) < 60
    # A code is good once; a wrong one saves nothing.
    again = tmp_path / "again.json"
    async with new_http_client() as http:
        with pytest.raises(AuthError, match="refused the code"):
            await oauth.sign_in_with_code(http, FACTORY, "not-a-code", again, server.oauth_url)
    assert not again.exists()


async def test_the_daemon_uses_upstreams_file_and_refreshes_it_early(factory, server, tmp_path):
    path = tmp_path / "creds.json"
    await _sign_in(factory, server, path)
    # As upstream leaves it: readable by everyone, and expiring in 5 minutes (< 600 s).
    data = json.loads(path.read_text())
    data["created"] = time.time() - data["expires_in"] + 300
    path.write_text(json.dumps(data))
    path.chmod(0o644)
    creds = oauth.CredsFileCredentials(path, server.oauth_url)
    async with FactoryClient(server.api_url, FACTORY, creds) as api:
        assert [ip.name for ip in await api.wireguard_ips()] == ["dev-1"]
        assert creds.refreshes == 1
        await api.wireguard_ips()
        assert creds.refreshes == 1  # fresh now: no second refresh
    renewed = json.loads(path.read_text())
    assert renewed["access_token"] != data["access_token"]
    assert renewed["refresh_token"] != data["refresh_token"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for secret in (data["access_token"], renewed["access_token"], renewed["refresh_token"]):
        assert secret not in repr(creds)


async def test_a_revoked_token_is_refreshed_once_then_a_refused_refresh_says_so(
    factory, server, tmp_path
):
    path = tmp_path / "creds.json"
    await _sign_in(factory, server, path)
    creds = oauth.CredsFileCredentials(path, server.oauth_url)
    async with FactoryClient(server.api_url, FACTORY, creds) as api:
        factory.revoke(json.loads(path.read_text())["access_token"])
        assert [ip.name for ip in await api.wireguard_ips()] == ["dev-1"]  # after one 401
        assert creds.refreshes == 1
        stored = json.loads(path.read_text())
        factory.revoke(stored["access_token"])
        factory.revoke(stored["refresh_token"])
        with pytest.raises(AuthError, match="refused the refresh token"):
            await api.wireguard_ips()


def test_a_missing_or_broken_file_says_what_to_do(tmp_path):
    with pytest.raises(AuthError, match="login"):
        oauth.read_creds(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"access_token": "x"}')
    with pytest.raises(AuthError, match="refresh_token"):
        oauth.read_creds(broken)


def test_the_authorize_link_is_upstreams():
    url = oauth.authorize_url("acme")
    assert url.startswith("https://app.foundries.io/authorize?client_id=fioid_")
    assert "redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob" in url
    assert "scope=acme%3Adevices%3Aread-update+acme%3Adevices%3Aread" in url


def test_enable_without_a_creds_file_registers_with_the_pasted_code(
    factory, server, tmp_path, monkeypatch, capsys
):
    """As upstream's `enable`: a link, the pasted code; a short read-update token makes the
    change. The fake's codes are good once, so the daemon's token is asked for with
    `login` afterwards (where the code works twice, it lands in the creds file)."""
    import io

    from fiotray.core import wgconf
    from fiotray.server import cli

    creds, key = tmp_path / "creds.json", tmp_path / "private.key"
    code = factory.authorization_code(oauth.CLIENT_ID)
    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))
    argv = ["-f", FACTORY, "-n", "fiotest0", "-a", str(creds), "-k", str(key)]
    argv += ["--oauth-url", server.oauth_url, "--state-dir", str(tmp_path / "state")]
    argv += ["enable", "-e", "vpn.example.test", "-v", "10.99.0.1", "--no-check-ip"]
    argv += ["--api-url", server.api_url]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "authorize?client_id=fioid_" in out
    assert f"-a {creds} login" in out and not creds.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = wgconf.public_key(key.read_text().strip())
    with factory.lock:
        files = {f.name: f.value for f in factory.factory_configs[0].files}
        reason = factory.factory_configs[0].reason
    assert files["wireguard-server"] == (
        f"endpoint=vpn.example.test:5555\nserver_address=10.99.0.1\npubkey={public}"
    )
    assert reason == "Enable Wireguard for factory"
    # An empty code changes nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(argv) == 1
    assert "No code was entered; nothing was changed" in capsys.readouterr().err
