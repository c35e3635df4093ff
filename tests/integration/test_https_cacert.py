"""TLS is always verified; CACERT (as fioctl) and SSL_CERT_FILE add a private CA."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fiotray.core.api import FactoryClient, ssl_context
from fiotray.core.auth import ApiTokenCredentials
from fiotray.core.errors import ApiError
from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
from fiotray.demo.tlsca import make_tls_files

TOKEN = "https-test-token-4242"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    factory = FakeFactory("tlsfactory")
    factory.populate(30, seed=1)
    factory.add_api_token(TOKEN)
    with FakeApiServer(factory, tls=tls) as server:
        assert server.url.startswith("https://localhost:")
        yield server, tls


async def test_untrusted_certificate_is_refused_with_advice(tls_server):
    server, _ = tls_server
    verify = ssl_context({})
    async with FactoryClient(
        server.api_url, "tlsfactory", ApiTokenCredentials(TOKEN), verify=verify, max_retries=0
    ) as api:
        with pytest.raises(ApiError, match="TLS certificate is not trusted.*CACERT"):
            await api.list_devices()
    assert server.requests == []  # nothing reached the server, credentials included


@pytest.mark.parametrize("var", ["CACERT", "SSL_CERT_FILE"])
async def test_private_ca_from_environment(tls_server, var):
    server, tls = tls_server
    verify = ssl_context({var: str(tls.ca_cert)})
    async with FactoryClient(
        server.api_url, "tlsfactory", ApiTokenCredentials(TOKEN), verify=verify
    ) as api:
        assert len(await api.list_devices()) == 30


def test_cli_login_and_list_over_https_with_cacert(tls_server, tmp_path, secret_service):
    server, tls = tls_server
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_STATE_HOME": str(tmp_path / "s"),
        "CACERT": str(tls.ca_cert),
        "DBUS_SESSION_BUS_ADDRESS": secret_service.bus_address,
    }
    env.pop("SSL_CERT_FILE", None)
    fiotray = [sys.executable, "-m", "fiotray"]
    login = [
        *fiotray,
        "login",
        "--factory",
        "tlsfactory",
        "--api-url",
        server.api_url,
        "--api-token-stdin",
    ]
    without_ca = {k: v for k, v in env.items() if k != "CACERT"}
    refused = subprocess.run(
        login, input=TOKEN, env=without_ca, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "TLS certificate is not trusted" in refused.stderr
    assert not (tmp_path / "c" / "fiotray" / "profiles.json").exists()

    ok = subprocess.run(login, input=TOKEN, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run(
        [*fiotray, "devices"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.rstrip().endswith("30 devices")
    subprocess.run([*fiotray, "logout"], env=env, check=True, capture_output=True, timeout=60)
