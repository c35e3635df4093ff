"""fiotray.wg.config: the wg-quick parser, validator and renderer (in-process, no tools)."""

from __future__ import annotations

import base64

import pytest

from fiotray.wg import config as c
from fiotray.wg.errors import EXIT_USAGE, sanitize
from tests.unit.wgsamples import CANONICAL_VALID, PRIV, PSK, PUB1, PUB2, VALID, cfg, key


def render(text: str) -> str:
    return c.render_config(c.parse_config(text))


def refusal(text: str | bytes) -> c.ConfigError:
    with pytest.raises(c.ConfigError) as info:
        if isinstance(text, bytes):
            c.parse_config_bytes(text)
        else:
            c.parse_config(text)
    return info.value


# --------------------------------------------------------------------------- accepted


def test_valid_config_renders_canonically() -> None:
    assert render(VALID) == CANONICAL_VALID


def test_wg_quick_reading_case_comments_blanks_crlf_and_lists() -> None:
    messy = (
        "# a comment line\r\n"
        "\r\n"
        "  [INTERFACE]  # trailing comment\r\n"
        f"privatekey={PRIV}\r\n"
        "ADDRESS = 10.0.0.2/24 , fd00::0002/64\r\n"
        "address = 10.0.1.2/24\r\n"
        "dns = 10.0.0.1\r\n"
        "Dns = example.com, 2001:DB8::53\r\n"
        "mtu = 1420\r\n"
        "ListenPort=51820\r\n"
        "\t\r\n"
        "[peer]\r\n"
        f"\tPUBLICKEY\t=\t{PUB1}   # comment after a key\r\n"
        f"presharedkey = {PSK}\r\n"
        "endpoint = [2001:DB8:0::1]:5555\r\n"
        "allowedips = 10.42.42.9/16\r\n"
        "AllowedIPs = fd00::/64, 192.0.2.1\r\n"
        "persistentkeepalive = off\r\n"
        "[Peer]\n"
        f"PublicKey = {PUB2}\n"
        "Endpoint = 192.0.2.7:1\n"
    )
    assert render(messy) == (
        "[Interface]\n"
        f"PrivateKey = {PRIV}\n"
        "Address = 10.0.0.2/24, fd00::2/64, 10.0.1.2/24\n"
        "ListenPort = 51820\n"
        "MTU = 1420\n"
        "DNS = 10.0.0.1, example.com, 2001:db8::53\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {PUB1}\n"
        f"PresharedKey = {PSK}\n"
        "Endpoint = [2001:db8::1]:5555\n"
        "AllowedIPs = 10.42.0.0/16, fd00::/64, 192.0.2.1/32\n"
        "PersistentKeepalive = 0\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {PUB2}\n"
        "Endpoint = 192.0.2.7:1\n"
    )


def test_model_fields_and_secrets_kept_out_of_repr() -> None:
    config = c.parse_config(VALID.replace("[Peer]", f"[Peer]\nPresharedKey = {PSK}"))
    assert config.interface.private_key == PRIV
    assert config.interface.addresses == ("10.42.42.7/32",)
    assert config.peers[0].endpoint == "vpn.example.test:5555"
    assert config.peers[0].persistent_keepalive == 25
    assert set(config.secrets()) == {PRIV, PSK}
    assert PRIV not in repr(config) and PSK not in repr(config)


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        VALID.replace("Address = 10.42.42.7/32", "Address = fd00::7/128, 10.1.2.3/8\nMTU = 576"),
        VALID + f"\n[Peer]\nPublicKey = {PUB2}\nAllowedIPs = 0.0.0.0/0, ::/0\n",
        VALID.replace("vpn.example.test:5555", "[::1]:65535"),
    ],
)
def test_rendering_is_stable(text: str) -> None:
    once = render(text)
    assert render(once) == once
    assert c.parse_config(once) == c.parse_config(text)


def test_limits_accepted_at_the_edge() -> None:
    many = VALID + "".join(
        f"[Peer]\nPublicKey = {base64.b64encode(i.to_bytes(32, 'big')).decode()}\n"
        for i in range(1, 256)
    )
    assert len(c.parse_config(many).peers) == 256
    padded = VALID.encode() + b"#" * (c.MAX_INPUT - len(VALID.encode()))
    assert len(padded) == c.MAX_INPUT
    assert c.parse_config_bytes(padded).interface.private_key == PRIV
    edges = (
        VALID.replace(
            "Address = 10.42.42.7/32", "Address = 10.0.0.1/32\nListenPort = 1\nMTU = 9000"
        )
        .replace("PersistentKeepalive = 25", "PersistentKeepalive = 65535")
        .replace("vpn.example.test:5555", "a.b:65535")
    )
    assert "ListenPort = 1\nMTU = 9000" in render(edges)


# --------------------------------------------------------------------------- refused


BAD_KEYS = ["abc", PRIV[:-1], PRIV[:-1] + "A", "!" * 43 + "=", PRIV[:-2] + "B=", key(1) + "A"]

REFUSALS: list[tuple[str, str | bytes, str, int | None]] = [
    # id, config, words in the reason, line number
    ("PreUp", cfg("PreUp = touch /x\n"), "PreUp is not allowed: it would run shell commands", 4),
    ("PostUp", cfg("PostUp = id\n"), "PostUp is not allowed: it would run shell commands", 4),
    ("PreDown", cfg("predown = id\n"), "PreDown is not allowed: it would run shell commands", 4),
    ("PostDown", cfg("POSTDOWN=id\n"), "PostDown is not allowed: it would run shell commands", 4),
    ("PostUp in peer", cfg(peer_extra="PostUp = id\n"), "PostUp is not allowed", 7),
    ("Table", cfg("Table = off\n"), "Table is not allowed", 4),
    ("SaveConfig", cfg("SaveConfig = true\n"), "SaveConfig is not allowed", 4),
    ("FwMark", cfg("FwMark = 0x1\n"), "FwMark is not allowed", 4),
    ("unknown key", cfg("Foo = bar\n"), "unknown key 'Foo' in [Interface]", 4),
    ("peer key in interface", cfg("Endpoint = a:1\n"), "unknown key 'Endpoint' in [Interface]", 4),
    ("interface key in peer", cfg(peer_extra="MTU = 1400\n"), "unknown key 'MTU' in [Peer]", 7),
    ("key outside a section", cfg(before="Address = 1.2.3.4/32\n"), "outside a section", 1),
    ("unknown section", cfg(before="[Foo]\n"), "unknown section [Foo]", 1),
    ("section garbage", cfg(before="[Interface\n"), "unknown section", 1),
    ("not key=value", cfg("just words\n"), "expected 'Key = Value'", 4),
    ("empty key", cfg(" = 5\n"), "missing key name", 4),
    ("empty value", cfg("MTU =\n"), "MTU has no value", 4),
    (
        "second interface",
        cfg(before=f"[Interface]\nPrivateKey = {PRIV}\n"),
        "second [Interface]",
        3,
    ),
    ("duplicate PrivateKey", cfg(f"PrivateKey = {key(9)}\n"), "PrivateKey given twice", 4),
    ("duplicate ListenPort", cfg("ListenPort = 1\nlistenport = 2\n"), "ListenPort given twice", 5),
    ("duplicate MTU", cfg("MTU = 1400\nMTU = 1400\n"), "MTU given twice", 5),
    ("duplicate Endpoint", cfg(peer_extra="Endpoint = a:1\nEndpoint = b:2\n"), "twice", 8),
    ("duplicate peer", cfg(peer_extra=f"[Peer]\nPublicKey = {PUB1}\n"), "duplicate peer", 8),
    ("no interface", f"[Peer]\nPublicKey = {PUB1}\n", "no [Interface]", None),
    ("no peer", f"[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/24\n", "no [Peer]", None),
    ("no PrivateKey", cfg().replace(f"PrivateKey = {PRIV}\n", ""), "has no PrivateKey", 1),
    ("no Address", cfg().replace("Address = 10.0.0.2/24\n", ""), "has no Address", 1),
    ("no PublicKey", cfg(peer_extra="[Peer]\nEndpoint = a:1\n"), "[Peer] has no PublicKey", 7),
    ("empty", "", "no [Interface]", None),
    *[
        (f"bad PrivateKey {i}", cfg().replace(PRIV, bad), "PrivateKey is not a valid", 2)
        for i, bad in enumerate(BAD_KEYS)
    ],
    ("bad PublicKey", cfg().replace(PUB1, "x" * 44), "PublicKey is not a valid", 5),
    ("bad PresharedKey", cfg(peer_extra="PresharedKey = 1234\n"), "PresharedKey is not", 7),
    ("Address no prefix", cfg().replace("10.0.0.2/24", "10.0.0.2"), "prefix length", 3),
    ("Address bad ip", cfg().replace("10.0.0.2/24", "10.0.0.300/24"), "Address must", 3),
    ("Address bad prefix", cfg().replace("10.0.0.2/24", "10.0.0.2/33"), "Address must", 3),
    ("Address name", cfg().replace("10.0.0.2/24", "host/24"), "Address must", 3),
    ("Address scope", cfg().replace("10.0.0.2/24", "fe80::1%eth0/64"), "Address must", 3),
    ("Address space list", cfg().replace("10.0.0.2/24", "10.0.0.2/24 10.0.0.3/24"), "Address", 3),
    ("Address empty item", cfg().replace("10.0.0.2/24", "10.0.0.2/24,"), "empty item", 3),
    ("AllowedIPs bad", cfg().replace("10.0.0.0/24", "10.0.0.0/40"), "AllowedIPs must", 6),
    ("AllowedIPs name", cfg().replace("10.0.0.0/24", "example.com"), "AllowedIPs must", 6),
    ("DNS bad", cfg("DNS = -bad-.example\n"), "DNS must", 4),
    ("DNS shell", cfg("DNS = $(reboot)\n"), "DNS must", 4),
    ("DNS numeric tld", cfg("DNS = 10.0.1\n"), "DNS must", 4),
    ("DNS too long", cfg("DNS = " + ".".join(["a" * 60] * 5) + "\n"), "DNS must", 4),
    ("ListenPort 0", cfg("ListenPort = 0\n"), "ListenPort must be a number from 1 to 65535", 4),
    ("ListenPort big", cfg("ListenPort = 65536\n"), "ListenPort must", 4),
    ("ListenPort word", cfg("ListenPort = 1_000\n"), "ListenPort must", 4),
    ("MTU low", cfg("MTU = 575\n"), "MTU must be a number from 576 to 9000", 4),
    ("MTU high", cfg("MTU = 9001\n"), "MTU must", 4),
    ("MTU unicode digits", cfg("MTU = \u0661\u0664\u0662\u0660\n"), "MTU must", 4),
    ("keepalive big", cfg(peer_extra="PersistentKeepalive = 65536\n"), "PersistentKeepalive", 7),
    ("keepalive neg", cfg(peer_extra="PersistentKeepalive = -1\n"), "PersistentKeepalive", 7),
    ("Endpoint no port", cfg(peer_extra="Endpoint = vpn.example.test\n"), "Endpoint must", 7),
    ("Endpoint port 0", cfg(peer_extra="Endpoint = vpn.example.test:0\n"), "Endpoint must", 7),
    ("Endpoint port big", cfg(peer_extra="Endpoint = 1.2.3.4:65536\n"), "Endpoint must", 7),
    ("Endpoint bare v6", cfg(peer_extra="Endpoint = ::1:5555\n"), "Endpoint must", 7),
    ("Endpoint v4 in []", cfg(peer_extra="Endpoint = [1.2.3.4]:5\n"), "Endpoint must", 7),
    ("Endpoint bad name", cfg(peer_extra="Endpoint = a_b.test:5\n"), "Endpoint must", 7),
    ("Endpoint option", cfg(peer_extra="Endpoint = -oFoo:5\n"), "Endpoint must", 7),
    ("Endpoint long", cfg(peer_extra=f"Endpoint = {'a.' * 127}ab:5\n"), "Endpoint must", 7),
    ("Endpoint space", cfg(peer_extra="Endpoint = a b:5\n"), "Endpoint must", 7),
    ("control char", cfg("MTU = 1400\x1b[2J\n"), "control character U+001B", 4),
    ("lone CR", cfg("MTU = 14\r00\n"), "control character U+000D", 4),
    ("bidi control", cfg("# \u202e comment\n"), "control character U+202E", 4),
    ("line separator", cfg("MTU = 1400\u2028\n"), "control character U+2028", 4),
    ("vertical tab", cfg("MTU = 1400\x0b\n"), "control character U+000B", 4),
    ("BOM", "\ufeff" + cfg(), "control character U+FEFF", 1),
    ("NUL byte", cfg("MTU = 1400\0\n").encode(), "NUL byte", 4),
    ("invalid UTF-8", cfg("# caf\xe9\n").encode("latin-1"), "not valid UTF-8", 4),
    ("too large", VALID.encode() + b"#" * (c.MAX_INPUT + 1 - len(VALID.encode())), "larger", None),
]


@pytest.mark.parametrize(
    ("text", "words", "line"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(text: str | bytes, words: str, line: int | None) -> None:
    err = refusal(text)
    assert words in err.reason
    assert err.line == line
    assert err.code == EXIT_USAGE
    message = str(err)
    assert "\n" not in message
    assert message.startswith(f"line {line}: ") if line else True
    assert PRIV not in message and PSK not in message


def test_too_many_peers() -> None:
    many = VALID + "".join(
        f"[Peer]\nPublicKey = {base64.b64encode(i.to_bytes(32, 'big')).decode()}\n"
        for i in range(1, 257)
    )
    err = refusal(many)
    assert "more than 256 [Peer] sections" in err.reason


# --------------------------------------------------------------------------- no secrets shown

SECRET_PLACEMENTS = [
    f"PrivateKey = {PRIV}\nPrivateKey = {PRIV}",  # duplicate
    f"PrivateKey {PRIV}",  # no "=" separator: the key's own '=' splits it
    f"PrivateKey: {PRIV}",
    f"{PRIV}",
    f"{PRIV} = x",
    f"PrivateKey = {PRIV}x",
    f"PrivateKey = {PRIV} {PRIV}",
    f"Address = {PRIV}",
    f"Address = 10.0.0.2/24, {PRIV}",
    f"DNS = {PRIV}",
    f"MTU = {PRIV}",
    f"PresharedKey = {PSK}",
    f"[{PRIV}]",
    f"[Peer {PSK}]",
    f"PostUp = echo {PRIV}",
    f"PrivateKey = {PRIV}\x07",
]


@pytest.mark.parametrize("line", SECRET_PLACEMENTS)
def test_no_secret_in_any_error(line: str) -> None:
    text = (
        f"[Interface]\n{line}\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/24\n"
        f"[Peer]\nPublicKey = {PUB1}\nPresharedKey = {PSK}\nEndpoint = {PSK}:1\n"
    )
    err = refusal(text)
    for secret in (PRIV, PSK, PRIV[:-1], PSK[:-1], PRIV[:20], PSK[:20]):
        assert secret not in str(err)
        assert secret not in sanitize(err.message, limit=400)


# --------------------------------------------------------------------------- interface names


@pytest.mark.parametrize("name", ["wg0", "a", "fio-acme_1", "A" * 15, "x-"])
def test_interface_names_accepted(name: str) -> None:
    assert c.validate_ifname(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "0wg", "-wg", "../etc", "a;b", "a b", "a/b", "A" * 16, "wg0\n", "wg.0", "wg\u00e9", "a\0"],
)
def test_interface_names_refused(name: str) -> None:
    with pytest.raises(c.ConfigError) as info:
        c.validate_ifname(name)
    assert info.value.code == EXIT_USAGE
