"""The privileged helper's parser, validator and renderer, in-process (no root, no tools)."""

from __future__ import annotations

import ast
import base64
import io
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fiotray.helper import fiotray_helper as h
from fiotray.helper import install


def key(n: int) -> str:
    """A well-formed key (32 bytes of base64); the parser does not need a real curve point."""
    return base64.b64encode(bytes([n]) * 31 + bytes([n ^ 0x5A])).decode()


PRIV = key(1)
PUB1 = key(2)
PUB2 = key(3)
PSK = key(4)

VALID = f"""\
[Interface]
PrivateKey = {PRIV}
Address = 10.42.42.7/32
[Peer]
PublicKey = {PUB1}
Endpoint = vpn.example.test:5555
AllowedIPs = 10.42.0.0/16
PersistentKeepalive = 25
"""

CANONICAL_VALID = f"""\
[Interface]
PrivateKey = {PRIV}
Address = 10.42.42.7/32

[Peer]
PublicKey = {PUB1}
Endpoint = vpn.example.test:5555
AllowedIPs = 10.42.0.0/16
PersistentKeepalive = 25
"""


def render(text: str) -> str:
    return h.render_config(h.parse_config(text))


def refusal(text: str | bytes) -> h.ConfigError:
    with pytest.raises(h.ConfigError) as info:
        if isinstance(text, bytes):
            h.parse_config_bytes(text)
        else:
            h.parse_config(text)
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
    config = h.parse_config(VALID.replace("[Peer]", f"[Peer]\nPresharedKey = {PSK}"))
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
    assert h.parse_config(once) == h.parse_config(text)


def test_limits_accepted_at_the_edge() -> None:
    many = VALID + "".join(
        f"[Peer]\nPublicKey = {base64.b64encode(i.to_bytes(32, 'big')).decode()}\n"
        for i in range(1, 256)
    )
    assert len(h.parse_config(many).peers) == 256
    padded = VALID.encode() + b"#" * (h.MAX_INPUT - len(VALID.encode()))
    assert len(padded) == h.MAX_INPUT
    assert h.parse_config_bytes(padded).interface.private_key == PRIV
    edges = (
        VALID.replace(
            "Address = 10.42.42.7/32", "Address = 10.0.0.1/32\nListenPort = 1\nMTU = 9000"
        )
        .replace("PersistentKeepalive = 25", "PersistentKeepalive = 65535")
        .replace("vpn.example.test:5555", "a.b:65535")
    )
    assert "ListenPort = 1\nMTU = 9000" in render(edges)


# --------------------------------------------------------------------------- refused


def cfg(interface_extra: str = "", peer_extra: str = "", *, before: str = "") -> str:
    return (
        f"{before}[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/24\n{interface_extra}"
        f"[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 10.0.0.0/24\n{peer_extra}"
    )


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
    ("too large", VALID.encode() + b"#" * (h.MAX_INPUT + 1 - len(VALID.encode())), "larger", None),
]


@pytest.mark.parametrize(
    ("text", "words", "line"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(text: str | bytes, words: str, line: int | None) -> None:
    err = refusal(text)
    assert words in err.reason
    assert err.line == line
    assert err.code == h.EXIT_USAGE
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
        assert secret not in h.error_line(err.message)


def test_error_line_scrubs_key_like_text_and_control_chars() -> None:
    line = h.error_line(f"boom {PRIV} \x1b[31m\u00e9")
    assert line.startswith("fiotray-helper: boom <redacted> ?[31m?")
    assert line.endswith("\n") and line.count("\n") == 1


def test_wg_quick_stderr_reduced_to_one_clean_line() -> None:
    stderr = (
        b"[#] ip link add wgx type wireguard\n"
        b"Error: Unknown device type.\n"
        b"Key is not the correct length or format: `" + PRIV.encode() + b"'\n"
        b"[#] ip link delete dev wgx\n\n"
    )
    line = h.last_error_line(stderr, [PRIV])
    assert line == "Key is not the correct length or format: `<redacted>'"
    assert h.last_error_line(b"[#] only commands\n", []) == "no error output"
    assert len(h.last_error_line(b"word " * 300 + b"\n", [])) == 200
    assert h.last_error_line("bad \x1b \u00e9\n".encode(), []) == "bad ? ?"


# --------------------------------------------------------------------------- interface names


@pytest.mark.parametrize("name", ["wg0", "a", "fio-acme_1", "A" * 15, "x-"])
def test_interface_names_accepted(name: str) -> None:
    assert h.validate_ifname(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "0wg", "-wg", "../etc", "a;b", "a b", "a/b", "A" * 16, "wg0\n", "wg.0", "wg\u00e9", "a\0"],
)
def test_interface_names_refused(name: str) -> None:
    with pytest.raises(h.ConfigError) as info:
        h.validate_ifname(name)
    assert info.value.code == h.EXIT_USAGE


# --------------------------------------------------------------------------- command line


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize(
    "argv",
    [[], ["up"], ["up", "a", "b"], ["down"], ["status", "x"], ["UP", "wg0"], ["--help"], ["rm"]],
)
def test_usage_errors(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(VALID.encode()))
    assert h.main(argv) == h.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "fiotray-helper: " + h.USAGE + "\n"


@pytest.mark.parametrize(
    ("argv", "data", "words"),
    [
        (["up", "../etc"], VALID.encode(), "invalid interface name"),
        (["up", "A" * 16], VALID.encode(), "invalid interface name"),
        (["down", "a;b"], b"", "invalid interface name"),
        (["up", "wg0"], cfg("PostUp = id\n").encode(), "line 4: PostUp is not allowed"),
        (["up", "wg0"], b"\0", "NUL byte"),
        (["up", "wg0"], b"#" * (h.MAX_INPUT + 10), "larger than 64 KiB"),
    ],
)
def test_refused_before_anything_runs(
    argv: list[str],
    data: bytes,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Even as root, nothing may be touched: point the writable places at a temp dir.
    monkeypatch.setattr(h, "RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert h.main(argv) == h.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("fiotray-helper: ") and err.count("\n") == 1
    assert words in err
    assert not (tmp_path / "run").exists()


def test_caller_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("PKEXEC_UID", raising=False)
    assert h.caller_uid() == os.getuid()
    monkeypatch.setenv("PKEXEC_UID", "1000")
    assert h.caller_uid() == 1000
    for bad in ("", "-1", "1e3", " 1000", "4294967295", "99999999999"):
        monkeypatch.setenv("PKEXEC_UID", bad)
        with pytest.raises(h.HelperError) as info:
            h.caller_uid()
        assert info.value.code == h.EXIT_USAGE


# --------------------------------------------------------------------------- runtime dir, status


def test_runtime_dir_symlink_or_file_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setattr(h, "RUNTIME_DIR", str(link))
    for create in (True, False):
        with pytest.raises(h.HelperError) as info:
            h.open_runtime_dir(create=create)
        assert info.value.code == h.EXIT_CONFLICT
        assert "not a real directory" in info.value.message
    plain = tmp_path / "file"
    plain.write_text("")
    monkeypatch.setattr(h, "RUNTIME_DIR", str(plain))
    with pytest.raises(h.HelperError):
        h.open_runtime_dir(create=True)


def test_status_without_runtime_dir_is_empty_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(h, "RUNTIME_DIR", str(tmp_path / "run"))
    assert h.status() == {"version": 1, "interfaces": []}
    assert list(tmp_path.iterdir()) == []


def test_wg_dump_drops_private_and_preshared_keys() -> None:
    dump = (
        f"{PRIV}\t{PUB2}\t51820\toff\n"
        f"{PUB1}\t{PSK}\t192.0.2.1:5555\t10.42.0.0/16,fd00::/64\t1700000000\t10\t20\t25\n"
        f"{key(7)}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
    )
    parsed = h.parse_wg_dump(dump)
    assert parsed == {
        "public_key": PUB2,
        "listen_port": 51820,
        "peers": [
            {
                "public_key": PUB1,
                "endpoint": "192.0.2.1:5555",
                "allowed_ips": ["10.42.0.0/16", "fd00::/64"],
                "latest_handshake": 1700000000,
                "rx_bytes": 10,
                "tx_bytes": 20,
                "persistent_keepalive": 25,
            },
            {
                "public_key": key(7),
                "endpoint": None,
                "allowed_ips": [],
                "latest_handshake": 0,
                "rx_bytes": 0,
                "tx_bytes": 0,
                "persistent_keepalive": 0,
            },
        ],
    }
    assert PRIV not in repr(parsed) and PSK not in repr(parsed)
    for bad in ("", f"{PRIV}\t{PUB2}\n", f"{PRIV}\t{PUB2}\t1\toff\n{PUB1}\tx\n"):
        with pytest.raises(ValueError) as info:
            h.parse_wg_dump(bad)
        assert PRIV not in str(info.value)


# --------------------------------------------------------------------------- the file itself


HELPER_FILE = Path(h.__file__)


def test_helper_is_stdlib_only_and_isolated() -> None:
    source = HELPER_FILE.read_text()
    assert source.splitlines()[0] == "#!/usr/bin/python3 -I"
    tree = ast.parse(source)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the helper is installed as one file"
            modules.add((node.module or "").split(".")[0])
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}
    # No environment knobs: the only variable read is pkexec's PKEXEC_UID.
    env_reads = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "getenv")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.isupper()
    }
    assert env_reads == {"PKEXEC_UID"}


POLICY = install.RESOURCES / install.POLICY_NAME


def test_policy_actions_and_defaults() -> None:
    root = ET.parse(POLICY).getroot()  # noqa: S314 - our own file
    actions = {a.get("id"): a for a in root.findall("action")}
    assert set(actions) == {
        "io.foundries.fiotray.connect",
        "io.foundries.fiotray.disconnect",
        "io.foundries.fiotray.status",
    }
    expected = {
        "io.foundries.fiotray.connect": ("up", ("auth_admin", "auth_admin", "auth_admin_keep")),
        "io.foundries.fiotray.disconnect": (
            "down",
            ("auth_admin", "auth_admin", "auth_admin_keep"),
        ),
        "io.foundries.fiotray.status": ("status", ("no", "no", "yes")),
    }
    for action_id, (argv1, defaults) in expected.items():
        action = actions[action_id]
        notes = {n.get("key"): n.text for n in action.findall("annotate")}
        assert notes == {
            "org.freedesktop.policykit.exec.path": "/" + str(install.HELPER_REL),
            "org.freedesktop.policykit.exec.argv1": argv1,
        }
        got = tuple(
            action.findtext(f"defaults/{k}")
            for k in ("allow_any", "allow_inactive", "allow_active")
        )
        assert got == defaults
        assert action.findtext("description") and action.findtext("message")


def test_group_rule_names_the_three_actions() -> None:
    text = (install.RESOURCES / install.GROUP_RULE_NAME).read_text()
    assert 'subject.isInGroup("fiotray")' in text
    for action in ("connect", "disconnect", "status"):
        assert f'"io.foundries.fiotray.{action}"' in text


def test_missing_tool_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(h, "TOOL_DIRS", (str(tmp_path),))
    with pytest.raises(h.HelperError) as info:
        h.require_tool("wg-quick")
    assert info.value.code == h.EXIT_MISSING_TOOL
    assert "install the Debian package wireguard-tools" in info.value.message
    assert "WG_QUICK_USERSPACE_IMPLEMENTATION" not in h.tool_env()
    fake = tmp_path / "wireguard-go"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert h.tool_env() == {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C",
        "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
        "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
    }
    detail = "exit 127: /usr/bin/wg-quick: line 32: resolvconf: command not found"
    assert "openresolv" in h._hint(detail)
