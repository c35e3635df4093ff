"""The fake FoundriesFactory API behaves as the contract in foundries-api.md says.

Every other test of the API client trusts this fake, so each behaviour the
client relies on is pinned here over real HTTP(S) on loopback.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509

from fiotray.demo.fakeapi import (
    ConfigFile,
    FakeApiServer,
    FakeFactory,
    TlsFiles,
    make_tls_files,
    rfc3339,
)

FACTORY = "acme"
TOKEN = "api-token-rw"
VPN_HANDLER = "/usr/share/fioconfig/handlers/factory-config-vpn"
LIST_FIELDS = {
    "name", "uuid", "owner", "factory", "device-group", "last-seen", "target-name", "status",
    "up-to-date", "tag", "ostree-hash", "lmp-ver", "docker-apps", "current-update", "is-prod",
    "is-wave", "public-key",
}  # fmt: skip
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory(FACTORY)
    f.add_api_token(TOKEN)
    return f


@pytest.fixture
def client(server: FakeApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"OSF-TOKEN": TOKEN}, timeout=5) as c:
        yield c


def _devices(client: httpx.Client, **params: object) -> httpx.Response:
    return client.get("/ota/devices/", params={"factory": FACTORY, **params})


def _add_numbered(factory: FakeFactory, count: int) -> list[str]:
    names = [f"dev-{i:02d}" for i in range(count)]
    for name in reversed(names):  # insertion order must not leak into the listing
        factory.add_device(name)
    return names


# ----- listing ---------------------------------------------------------------------


def test_pagination_follows_next_until_null(
    factory: FakeFactory, server: FakeApiServer, client: httpx.Client
) -> None:
    names = _add_numbered(factory, 25)
    seen: list[str] = []
    pages = 0
    response = _devices(client, limit=10)
    while True:
        pages += 1
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        data = response.json()
        assert data["total"] == 25
        seen += [d["name"] for d in data["devices"]]
        if data["next"] is None:
            break
        nxt = urlsplit(data["next"])
        assert f"{nxt.scheme}://{nxt.netloc}" == server.url
        assert nxt.path == "/ota/devices/"
        assert parse_qs(nxt.query) == {
            "factory": [FACTORY],
            "limit": ["10"],
            "page": [str(pages + 1)],
        }
        response = client.get(data["next"])
    assert pages == 3
    assert seen == names


def test_limit_must_be_a_fioctl_choice_and_defaults_to_500(
    factory: FakeFactory, client: httpx.Client
) -> None:
    _add_numbered(factory, 25)
    for bad in ("15", "abc", "0", "2000"):
        response = _devices(client, limit=bad)
        assert response.status_code == 400
        assert "limit" in response.json()["errors"]
    default = _devices(client).json()
    assert len(default["devices"]) == 25 and default["next"] is None
    assert _devices(client, limit=10, page=4).status_code == 404
    assert _devices(client, limit=10, page=0).status_code == 404


def test_name_is_a_shell_glob(factory: FakeFactory, client: httpx.Client) -> None:
    for name in ("lab-01", "lab-02", "lab-10", "field-01"):
        factory.add_device(name)
    data = _devices(client, name="lab-*").json()
    assert [d["name"] for d in data["devices"]] == ["lab-01", "lab-02", "lab-10"]
    assert data["total"] == 3
    assert [d["name"] for d in _devices(client, name="*-0[1]").json()["devices"]] == [
        "field-01",
        "lab-01",
    ]
    assert _devices(client, name="LAB-*").json()["total"] == 0  # case-sensitive like a shell


def test_listing_reflects_changes_to_devices(factory: FakeFactory, client: httpx.Client) -> None:
    device = factory.add_device("a")
    assert _devices(client).json()["devices"][0]["tag"] == "main"
    device.tag = "devel"  # the cached JSON must not go stale
    factory.add_device("b")
    del factory.devices["a"]
    data = _devices(client).json()
    assert [d["name"] for d in data["devices"]] == ["b"]
    device.name = "a"
    factory.devices["a"] = device
    assert _devices(client).json()["devices"][0]["tag"] == "devel"


# ----- one device --------------------------------------------------------------------


def test_device_by_name_by_uuid_and_missing(factory: FakeFactory, client: httpx.Client) -> None:
    device = factory.add_device("odd name+1", group="lab", target="main-lmp-42")
    device.hostname, device.local_ipv4, device.mac = "odd", "192.168.1.5", "02:00:00:00:00:01"
    factory.add_device("plain", wg_pubkey="S0VZ" * 11)

    by_name = client.get("/ota/devices/odd%20name%2B1/", params={"factory": FACTORY})
    assert by_name.status_code == 200
    data = by_name.json()
    assert set(data) == LIST_FIELDS | {"network-info"}
    assert data["name"] == "odd name+1" and data["factory"] == FACTORY
    assert data["device-group"] == "lab" and data["target-name"] == "main-lmp-42"
    assert data["network-info"] == {
        "hostname": "odd",
        "local_ipv4": "192.168.1.5",
        "mac": "02:00:00:00:00:01",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", data["last-seen"])

    by_uuid = client.get(f"/ota/devices/{device.uuid}/", params={"factory": FACTORY, "by-uuid": 1})
    assert by_uuid.json() == data

    plain = client.get("/ota/devices/plain/", params={"factory": FACTORY}).json()
    assert set(plain) == LIST_FIELDS  # no network-info without a hostname
    assert plain["public-key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "S0VZ" * 11 not in plain["public-key"]  # the cert key, never the WireGuard key

    missing = client.get("/ota/devices/nope/", params={"factory": FACTORY})
    assert missing.status_code == 404 and missing.json() == {"msg": "Device not found"}
    assert client.get("/ota/devices/plain", params={"factory": FACTORY}).status_code == 404
    assert client.delete("/ota/devices/plain/", params={"factory": FACTORY}).status_code == 405


def test_never_seen_device_has_empty_last_seen(factory: FakeFactory) -> None:
    device = factory.add_device("new")
    device.last_seen = None
    assert device.to_json(FACTORY)["last-seen"] == ""


# ----- configs ------------------------------------------------------------------------


def _wg_patch(value: str, reason: str = "Set Wireguard configuration - enable") -> dict:
    return {
        "reason": reason,
        "files": [
            {
                "name": "wireguard-client",
                "value": value,
                "unencrypted": True,
                "on-changed": [VPN_HANDLER],
            }
        ],
    }


def test_device_config_patch_keeps_other_files_and_is_pending(
    factory: FakeFactory, client: httpx.Client
) -> None:
    factory.add_device(
        "d1",
        wg_pubkey="K1",
        extra_files=[ConfigFile("secret", "CIPHERTEXT", unencrypted=False), ConfigFile("app", "x")],
    )
    url = "/ota/devices/d1/config/"
    first = client.get(url, params={"factory": FACTORY}).json()
    assert first["total"] == 1 and first["config"][0]["applied-at"] != ""

    patch = client.patch(
        url, params={"factory": FACTORY}, json=_wg_patch("address=10.42.42.2\npubkey=K1")
    )
    assert patch.status_code == 201

    data = client.get(url, params={"factory": FACTORY}).json()
    assert data["total"] == 2 and data["next"] is None
    newest, oldest = data["config"]
    assert oldest == first["config"][0]
    assert newest["applied-at"] == ""
    assert newest["created-by"] == "fake-user"
    assert newest["reason"] == "Set Wireguard configuration - enable"
    assert [f["name"] for f in newest["files"]] == ["wireguard-client", "secret", "app"]
    files = {f["name"]: f for f in newest["files"]}
    assert files["secret"] == {
        "name": "secret",
        "value": "CIPHERTEXT",
        "unencrypted": False,
        "on-changed": [],
    }
    assert files["wireguard-client"]["on-changed"] == [VPN_HANDLER]
    assert factory.current_file("d1", "wireguard-client") == "address=10.42.42.2\npubkey=K1"

    factory.apply_pending("d1")
    applied = client.get(url, params={"factory": FACTORY}).json()["config"][0]["applied-at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", applied)


def test_auto_apply_after_is_evaluated_at_request_time(
    factory: FakeFactory, client: httpx.Client
) -> None:
    clock = FakeClock()
    factory.clock = clock
    factory.auto_apply_after = 10.0
    factory.add_device("d1", wg_pubkey="K1", applied=False)
    url = "/ota/devices/d1/config/"
    assert client.get(url, params={"factory": FACTORY}).json()["config"][0]["applied-at"] == ""
    clock.now += 9
    assert client.get(url, params={"factory": FACTORY}).json()["config"][0]["applied-at"] == ""
    clock.now += 2
    entry = client.get(url, params={"factory": FACTORY}).json()["config"][0]
    assert entry["applied-at"] == rfc3339(clock.now - 11 + 10)


def test_config_patch_is_validated(factory: FakeFactory, client: httpx.Client) -> None:
    factory.add_device("d1", wg_pubkey="K1")
    url = "/ota/devices/d1/config/"
    params = {"factory": FACTORY}
    bad = [
        b'{"reason": "x", "files": [',
        b"[]",
        json.dumps({"reason": 1, "files": []}).encode(),
        json.dumps({"reason": "x", "files": [{"name": "a"}]}).encode(),
        json.dumps({"reason": "x", "files": [{"name": "a", "value": 3}]}).encode(),
        json.dumps({"files": [{"name": "a", "value": "v"}]}).encode(),
    ]
    for body in bad:
        response = client.patch(url, params=params, content=body)
        assert response.status_code == 400, body
        assert isinstance(response.json()["errors"], list) and response.json()["errors"]
    assert len(factory.devices["d1"].configs) == 1


def test_factory_config_and_wireguard_server(factory: FakeFactory, client: httpx.Client) -> None:
    url = f"/ota/factories/{FACTORY}/config/"
    assert client.get(url).json() == {"config": [], "total": 0, "next": None}
    factory.set_wireguard_server(endpoint="vpn.acme.test:5555", pubkey="SRVKEY", enabled=False)
    value = factory.factory_configs[0].files[0].value
    assert (
        value == "endpoint=vpn.acme.test:5555\nserver_address=10.42.42.1\npubkey=SRVKEY\nenabled=0"
    )

    patch = {"reason": "other", "files": [{"name": "z", "value": "1"}]}
    assert client.patch(url, json=patch).status_code == 201
    data = client.get(url).json()
    assert data["total"] == 2
    assert [f["name"] for f in data["config"][0]["files"]] == ["wireguard-server", "z"]
    assert data["config"][0]["files"][0]["value"] == value

    factory.remove_wireguard_server()
    names = {f["name"] for e in client.get(url).json()["config"] for f in e["files"]}
    assert names == {"z"}

    wrong = client.get("/ota/factories/other/config/")
    assert wrong.status_code == 404 and wrong.json() == {"msg": "Factory not found"}


def test_wireguard_ips(factory: FakeFactory, client: httpx.Client) -> None:
    factory.add_device("a", wg_pubkey="KA", vpn_address="10.42.42.2")
    factory.add_device("b", wg_pubkey="KB", vpn_address="10.42.42.3", vpn_enabled=False)
    factory.add_device("c", wg_pubkey="KC")
    factory.add_device("d", wg_pubkey=None)
    assert factory.current_file("b", "wireguard-client") == (
        "address=10.42.42.3\npubkey=KB\nenabled=0"
    )
    assert factory.current_file("c", "wireguard-client") == "pubkey=KC"
    assert factory.devices["d"].configs == []
    expected = [
        {"name": "a", "ip": "10.42.42.2", "enabled": True, "pubkey": "KA"},
        {"name": "b", "ip": "10.42.42.3", "enabled": False, "pubkey": "KB"},
    ]
    assert client.get(f"/ota/factories/{FACTORY}/wireguard-ips/").json() == expected
    assert factory.wireguard_ips() == expected


# ----- auth --------------------------------------------------------------------------


def _token(server: FakeApiServer, **form: str) -> httpx.Response:
    return httpx.post(f"{server.oauth_url}/token/", data=form, timeout=5)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + base64.b64encode(token.encode()).decode()}


def test_api_token_and_missing_or_unknown_credentials(server: FakeApiServer) -> None:
    url = f"{server.url}/ota/devices/?factory={FACTORY}"
    assert httpx.get(url, headers={"OSF-TOKEN": TOKEN}).status_code == 200
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json() == {"msg": "Authentication credentials were not provided."}
    assert httpx.get(url, headers={"OSF-TOKEN": "nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_oauth_client_credentials_and_both_bearer_forms(
    factory: FakeFactory, server: FakeApiServer
) -> None:
    factory.add_oauth_client("cid", "csecret")
    response = _token(
        server, grant_type="client_credentials", client_id="cid", client_secret="csecret"
    )
    assert response.status_code == 200
    data = response.json()
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 3600.0 and isinstance(data["expires_in"], float)
    assert data["scope"] == f"{FACTORY}:devices:read-update"
    assert data["orgs"] == [{"name": FACTORY}]
    assert {data["access_token"], data["refresh_token"]} <= set(factory.issued_tokens)

    url = f"{server.url}/ota/devices/?factory={FACTORY}"
    assert httpx.get(url, headers=_bearer(data["access_token"])).status_code == 200
    raw = {"Authorization": f"Bearer {data['access_token']}"}
    assert httpx.get(url, headers=raw).status_code == 200

    factory.revoke(data["access_token"])
    assert httpx.get(url, headers=_bearer(data["access_token"])).status_code == 401

    bad = _token(server, grant_type="client_credentials", client_id="cid", client_secret="wrong")
    assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}
    basic = httpx.post(
        f"{server.oauth_url}/token/",
        data={"grant_type": "client_credentials"},
        auth=("cid", "csecret"),
    )
    assert basic.status_code == 200


def test_access_token_expires_after_token_ttl(factory: FakeFactory, server: FakeApiServer) -> None:
    clock = FakeClock()
    factory.clock = clock
    factory.token_ttl = 60.0
    factory.add_oauth_client("cid", "csecret")
    data = _token(
        server, grant_type="client_credentials", client_id="cid", client_secret="csecret"
    ).json()
    assert data["expires_in"] == 60.0
    url = f"{server.url}/ota/devices/?factory={FACTORY}"
    clock.now += 60
    assert httpx.get(url, headers=_bearer(data["access_token"])).status_code == 200
    clock.now += 1
    expired = httpx.get(url, headers=_bearer(data["access_token"]))
    assert expired.status_code == 401 and expired.json() == {"msg": "Token expired"}


def test_refresh_issues_a_new_pair_and_invalidates_the_old_refresh_token(
    factory: FakeFactory, server: FakeApiServer
) -> None:
    factory.add_oauth_client("cid", "csecret")
    first = _token(
        server, grant_type="client_credentials", client_id="cid", client_secret="csecret"
    ).json()
    form = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret"}
    second = _token(server, **form, refresh_token=first["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert new["access_token"] != first["access_token"]
    assert new["refresh_token"] != first["refresh_token"]
    url = f"{server.url}/ota/devices/?factory={FACTORY}"
    assert httpx.get(url, headers=_bearer(new["access_token"])).status_code == 200

    reused = _token(server, **form, refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"]
    assert _token(server, **form, refresh_token="garbage").status_code == 400
    wrong_client = {**form, "client_secret": "wrong", "refresh_token": new["refresh_token"]}
    assert _token(server, **wrong_client).status_code == 401
    assert len(factory.issued_tokens) == 4


def test_read_only_scope_cannot_patch(factory: FakeFactory, server: FakeApiServer) -> None:
    factory.add_api_token("ro", scopes=(f"{FACTORY}:devices:read",))
    factory.add_api_token("elsewhere", scopes=("other:devices:read-update",))
    factory.add_device("d1")
    url = f"{server.url}/ota/devices/d1/config/?factory={FACTORY}"
    headers = {"OSF-TOKEN": "ro"}
    assert httpx.get(url, headers=headers).status_code == 200
    patch = httpx.patch(url, headers=headers, json=_wg_patch("pubkey=K"))
    assert patch.status_code == 403 and "read-update" in patch.json()["msg"]
    assert len(factory.devices["d1"].configs) == 1
    assert httpx.get(url, headers={"OSF-TOKEN": "elsewhere"}).status_code == 403


def test_wrong_or_missing_factory(client: httpx.Client) -> None:
    wrong = client.get("/ota/devices/", params={"factory": "other"})
    assert wrong.status_code == 404 and wrong.json() == {"msg": "Factory not found"}
    assert client.get("/ota/devices/").status_code == 400
    assert client.get("/nothing/here/").status_code == 404


# ----- network behaviour -----------------------------------------------------------------


def test_rate_limit_every_nth_request(server: FakeApiServer, client: httpx.Client) -> None:
    server.rate_limit_every = 3
    statuses = [_devices(client).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 200, 200, 429]
    server.retry_after = 0.25  # fractions are kept so retry tests need not wait a second
    limited = [_devices(client) for _ in range(3)][-1]
    assert limited.status_code == 429
    assert limited.json() == {"message": "Too many requests"}
    assert limited.headers["retry-after"] == "0.25"
    server.retry_after = 1.0
    assert [_devices(client) for _ in range(3)][-1].headers["retry-after"] == "1"
    server.rate_limit_every = 0
    assert all(_devices(client).status_code == 200 for _ in range(4))


def test_error_rate_is_seeded_and_spares_oauth(factory: FakeFactory) -> None:
    factory.add_oauth_client("cid", "csecret")

    def run() -> list[int]:
        with (
            FakeApiServer(factory, error_rate=0.5, seed=42) as server,
            httpx.Client(base_url=server.url, headers={"OSF-TOKEN": TOKEN}) as client,
        ):
            statuses = [_devices(client).status_code for _ in range(40)]
            for _ in range(5):
                token = client.post(
                    "/oauth/token/",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "cid",
                        "client_secret": "csecret",
                    },
                )
                assert token.status_code == 200
            server.error_rate = 1.0
            failed = _devices(client)
            assert failed.status_code == 503
            assert failed.json() == {"msg": "Service temporarily unavailable"}
            return statuses

    first = run()
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 32
    assert run() == first


def test_inject_status_body_times_and_recording(
    server: FakeApiServer, client: httpx.Client
) -> None:
    server.inject("GET", r"^/ota/devices/$", status=502, body={"msg": "bad gateway"}, times=2)
    first, second, third = (_devices(client) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert first.json() == {"msg": "bad gateway"}
    assert [r.status for r in server.requests] == [502, 502, 200]

    server.inject("PATCH", r"/config/$", status=200, body='{"devices": [')
    assert _devices(client).status_code == 200  # method does not match: untouched
    server.inject("GET", r"/ota/devices/", status=200, body='{"devices": [{"na')
    broken = _devices(client)
    with pytest.raises(json.JSONDecodeError):
        broken.json()


def test_inject_drop_and_delay(server: FakeApiServer, client: httpx.Client) -> None:
    server.inject("GET", r"/ota/devices/", drop=True)
    with pytest.raises(httpx.TransportError):
        _devices(client)
    assert server.requests[-1].status == 0
    assert _devices(client).status_code == 200  # the pool recovers on a new connection

    server.inject("GET", r"/ota/devices/", delay=5.0)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/ota/devices/", params={"factory": FACTORY}, timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_requests_are_recorded_with_lower_case_headers(
    factory: FakeFactory, server: FakeApiServer, client: httpx.Client
) -> None:
    factory.add_device("d1")
    body = _wg_patch("pubkey=K")
    client.patch(
        "/ota/devices/d1/config/",
        params={"factory": FACTORY, "force": "1"},
        json=body,
        headers={"User-Agent": "fiotray-test"},
    )
    (recorded,) = server.requests
    assert recorded.method == "PATCH" and recorded.path == "/ota/devices/d1/config/"
    assert recorded.query == {"factory": FACTORY, "force": "1"}
    assert recorded.headers["user-agent"] == "fiotray-test"
    assert recorded.headers["osf-token"] == TOKEN
    assert json.loads(recorded.body) == body and recorded.status == 201
    server.clear_requests()
    assert server.requests == []


def test_next_base_overrides_next_urls(
    factory: FakeFactory, server: FakeApiServer, client: httpx.Client
) -> None:
    _add_numbered(factory, 11)
    server.next_base = "https://evil.example:9999"
    nxt = _devices(client, limit=10).json()["next"]
    assert nxt.startswith("https://evil.example:9999/ota/devices/?")
    assert "page=2" in nxt


def test_keep_alive_reuses_the_connection(server: FakeApiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        sockets = []
        for _ in range(3):
            conn.request("GET", f"/ota/devices/?factory={FACTORY}", headers={"OSF-TOKEN": TOKEN})
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            sockets.append(conn.sock)
        assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    finally:
        conn.close()


def test_concurrent_requests_sleep_in_parallel(factory: FakeFactory) -> None:
    with FakeApiServer(factory, latency=0.2) as server:
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def worker() -> None:
            with httpx.Client(base_url=server.url, headers={"OSF-TOKEN": TOKEN}) as c:
                barrier.wait()
                statuses.append(_devices(c).status_code)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    assert elapsed < 0.8  # serialized it would take 1.6 s


def test_stop_does_not_wait_for_idle_keep_alive_clients(factory: FakeFactory) -> None:
    server = FakeApiServer(factory).start()
    with httpx.Client(base_url=server.url, headers={"OSF-TOKEN": TOKEN}) as c:
        assert _devices(c).status_code == 200
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        with pytest.raises(httpx.TransportError):
            _devices(c)


# ----- TLS ------------------------------------------------------------------------------


def test_tls_files(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "tls", hostnames=("localhost", "127.0.0.1", "fake.test"))
    assert isinstance(files, TlsFiles)
    assert stat.S_IMODE(os.stat(files.server_key).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "fake.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_https_verifies_against_the_throwaway_ca_only(factory: FakeFactory, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    with FakeApiServer(factory, tls=files) as server:
        assert server.url.startswith("https://localhost:")
        assert server.oauth_url == server.url + "/oauth"
        context = ssl.create_default_context(cafile=str(files.ca_cert))
        with httpx.Client(verify=context, headers={"OSF-TOKEN": TOKEN}) as c:
            response = c.get(f"{server.api_url}/ota/devices/", params={"factory": FACTORY})
            assert response.status_code == 200
            nxt_base = urlsplit(server.url)
            assert nxt_base.hostname == "localhost"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{server.url}/ota/devices/?factory={FACTORY}")
        assert server.handler_errors == []


# ----- populate --------------------------------------------------------------------------


def test_populate_is_deterministic_and_varied() -> None:
    first, second = FakeFactory(FACTORY), FakeFactory(FACTORY)
    first.populate(2000, seed=3)
    second.populate(2000, seed=3)
    assert first.sorted_names() == second.sorted_names()
    assert first.wireguard_ips() == second.wireguard_ips()
    assert all(re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", n) for n in first.devices)

    devices = list(first.devices.values())
    now = time.time()
    online = sum(d.last_seen is not None and now - d.last_seen.timestamp() < 3600 for d in devices)
    without_key = sum(first.current_file(d.name, "wireguard-client") is None for d in devices)
    ips = first.wireguard_ips()
    enabled = [ip for ip in ips if ip["enabled"]]
    pending = sum(bool(d.configs) and d.configs[0].applied_at == "" for d in devices)
    assert 0.6 < online / 2000 < 0.8
    assert 0.05 < without_key / 2000 < 0.15
    assert 0.2 < len(enabled) / 2000 < 0.35
    assert 0 < len(ips) - len(enabled) < 200
    assert 0 < pending < 200
    addresses = [ipaddress.IPv4Address(ip["ip"]) for ip in ips]
    assert len(set(addresses)) == len(addresses)
    assert all(a.packed[-1] != 0 and a > ipaddress.IPv4Address("10.42.42.1") for a in addresses)
    assert {d.group for d in devices} == {"lab", "field", "qa", None}
    assert {d.tag for d in devices} == {"main", "devel"}
    assert all(d.target.startswith(f"{d.tag}-lmp-") for d in devices)


def test_ten_thousand_devices_page_quickly() -> None:
    factory = FakeFactory(FACTORY)
    factory.populate(10_000)
    factory.add_api_token(TOKEN)
    with (
        FakeApiServer(factory) as server,
        httpx.Client(base_url=server.url, headers={"OSF-TOKEN": TOKEN}) as client,
    ):
        _devices(client, limit=500)  # warms the per-device JSON cache for page 1 only
        timings = []
        for page in (1, 1, 1, 20, 20):
            started = time.perf_counter()
            data = _devices(client, limit=500, page=page).json()
            timings.append(time.perf_counter() - started)
            assert data["total"] == 10_000 and len(data["devices"]) == 500
        assert data["next"] is None
        assert min(timings) < 0.1  # round trip incl. client parsing; server side is a few ms


# ----- command line -----------------------------------------------------------------------


def test_module_entry_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "fiotray.demo.fakeapi", "--devices", "30", "--latency", "0",
        "--port", "0", "--tls", str(tmp_path), "--api-token", "T",
        "--client-id", "cid", "--client-secret", "cs", "--token-ttl", "120",
    ]  # fmt: skip
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            _check_entry_point(proc)
        finally:
            if proc.poll() is None:
                proc.kill()


def _check_entry_point(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    assert info["factory"] == "demo-factory"
    assert info["url"].startswith("https://localhost:")
    assert info["oauth_url"] == info["url"] + "/oauth"
    context = ssl.create_default_context(cafile=info["ca_cert"])
    with httpx.Client(verify=context) as c:
        data = c.get(
            f"{info['url']}/ota/devices/",
            params={"factory": "demo-factory"},
            headers={"OSF-TOKEN": "T"},
        ).json()
        assert data["total"] == 30
        token = c.post(
            f"{info['oauth_url']}/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": "cid",
                "client_secret": "cs",
            },
        ).json()
        assert token["expires_in"] == 120.0
        server_cfg = c.get(
            f"{info['url']}/ota/factories/demo-factory/config/",
            headers=_bearer(token["access_token"]),
        ).json()
        assert server_cfg["config"][0]["files"][0]["name"] == "wireguard-server"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == b""
    assert proc.stderr is not None and proc.stderr.read() == b""
