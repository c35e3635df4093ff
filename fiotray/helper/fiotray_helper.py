#!/usr/bin/python3 -I
"""fiotray-helper: the only part of fiotray that runs as root.

Started through pkexec, one polkit action per command (told apart by argv[1]):

    fiotray-helper up IFNAME   < wg-quick config    (io.foundries.fiotray.connect)
    fiotray-helper down IFNAME                      (io.foundries.fiotray.disconnect)
    fiotray-helper status                           (io.foundries.fiotray.status)

It trusts nothing it is given: the config is parsed, every value validated,
anything wg-quick would run as a shell command refused, and only a config
re-rendered here is handed to wg-quick. Runtime state lives in a root-only
directory (RUNTIME_DIR): IFNAME.conf (the rendered config) and IFNAME.json
(who brought it up), so `down` only touches tunnels fiotray made, and only
for the user who made them (or root).

`status` prints one JSON line, never a private or preshared key:

    {"version": 1, "interfaces": [{"name", "owner_uid", "created", "exists", "public_key",
     "listen_port", "peers": [{"public_key", "endpoint", "allowed_ips",
     "latest_handshake", "rx_bytes", "tx_bytes", "persistent_keepalive"}]}]}

(latest_handshake in unix seconds, 0 = never; persistent_keepalive 0 = off;
public_key and listen_port null and peers empty while the interface does not
exist.) `up` prints nothing; `down` prints a note when the interface was
already gone.

Exit codes: 0 ok; 1 internal error; 2 usage or refused input (nothing run,
nothing written), or not root; 3 state conflict; 4 a required tool is
missing; 5 wg-quick failed. Every error is one line on stderr starting with
"fiotray-helper: ".

Stdlib only, Python >= 3.11. Also imported as `fiotray.helper.fiotray_helper`
by the unprivileged core, which reuses the parser and renderer: importing it
has no side effects.
"""

from __future__ import annotations

# Every millisecond of start-up is connect latency, so only cheap modules are imported here:
# no typing or dataclasses at run time, no subprocess (threading, selectors, locale: ~8 ms; see
# run_tool), no re (and enum with it: ~4 ms; the validators below spell out their character
# classes), no signal (its enums; _signal has the same numbers) and no contextlib. ipaddress
# (only needed to parse configs and `wg show` output) and json (status output, odd records)
# are imported where they are used.
import _signal
import binascii
import errno
import fcntl
import os
import select
import stat
import sys
import time
import unicodedata

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from typing import BinaryIO, TextIO

# Unit tests monkeypatch these two in-process; there is deliberately no
# environment variable or option for them: the caller must not choose where
# root writes or what it believes about interfaces.
RUNTIME_DIR = "/run/fiotray"
SYS_CLASS_NET = "/sys/class/net"

# Tools are only taken from system directories: PATH belongs to the caller.
TOOL_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TOOL_PACKAGES = {
    "wg-quick": "wireguard-tools",
    "wg": "wireguard-tools",
    "ip": "iproute2",
    "wireguard-go": "wireguard-go",
}

MAX_INPUT = 64 * 1024
MAX_PEERS = 256
WG_QUICK_TIMEOUT = 30.0
WG_SHOW_TIMEOUT = 10.0
LOCK_TIMEOUT = 45.0  # longer than one wg-quick run of another helper holding the lock
STATUS_VERSION = 1
MAX_ERROR_DETAIL = 200

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_MISSING_TOOL = 4
EXIT_WG_QUICK = 5

PROG = "fiotray-helper"
USAGE = "usage: fiotray-helper up IFNAME < CONFIG | down IFNAME | status"

# ASCII only, spelled out: str.isalnum() and friends would take any Unicode letter or digit.
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_NAME_CHARS = _LETTERS | _DIGITS | frozenset("_-")  # [A-Za-z0-9_-]
_LABEL_CHARS = _LETTERS | _DIGITS | frozenset("-")  # [A-Za-z0-9-]
_BASE64_CHARS = _LETTERS | _DIGITS | frozenset("+/")  # [A-Za-z0-9+/]


class _suppress:
    """contextlib.suppress, without contextlib's imports (collections, functools...)."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


class HelperError(Exception):
    """A failure with an exit code and a one-line, secret-free message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(HelperError):
    """The config (or the interface name) is refused; `line` is 1-based when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(EXIT_USAGE, f"line {line}: {reason}" if line else reason)


# --------------------------------------------------------------------------- model


class _Record:
    """A small immutable record (dataclasses cost start-up time, see above)."""

    __slots__ = ()
    _hidden: tuple[str, ...] = ()  # fields repr() must not show: keys

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            value = values.pop(name) if name in values else getattr(type(self), "_d_" + name)
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"unexpected fields {sorted(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields() == self._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n not in self._hidden
        )
        return f"{type(self).__name__}({shown})"


class Interface(_Record):
    __slots__ = ("addresses", "dns", "listen_port", "mtu", "private_key")
    _hidden = ("private_key",)
    private_key: str
    addresses: tuple[str, ...]
    listen_port: int | None
    mtu: int | None
    dns: tuple[str, ...]
    _d_listen_port = None
    _d_mtu = None
    _d_dns = ()


class Peer(_Record):
    __slots__ = ("allowed_ips", "endpoint", "persistent_keepalive", "preshared_key", "public_key")
    _hidden = ("preshared_key",)
    public_key: str
    preshared_key: str | None
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    persistent_keepalive: int | None  # 0 means off
    _d_preshared_key = None
    _d_endpoint = None
    _d_allowed_ips = ()
    _d_persistent_keepalive = None


class WgConfig(_Record):
    __slots__ = ("interface", "peers")
    interface: Interface
    peers: tuple[Peer, ...]

    def secrets(self) -> list[str]:
        """Values that must never be shown anywhere."""
        out = [self.interface.private_key]
        out += [p.preshared_key for p in self.peers if p.preshared_key]
        return out


# --------------------------------------------------------------------------- validation


def _is_name(value: str, longest: int) -> bool:
    """[A-Za-z][A-Za-z0-9_-]* of 1 to `longest` characters."""
    return 0 < len(value) <= longest and value[0] in _LETTERS and _NAME_CHARS.issuperset(value)


def is_ifname(value: str) -> bool:
    """[A-Za-z][A-Za-z0-9_-]{0,14}: what Linux takes as an interface name, and a safe file name."""
    return _is_name(value, 15)


def _is_echo_name(value: str) -> bool:
    """Safe to repeat back in an error message: [A-Za-z][A-Za-z0-9_-]{0,31}.

    Anything else (a key name that might be a pasted secret, odd characters) is described,
    not echoed.
    """
    return _is_name(value, 32)


def _is_digits(value: str, longest: int) -> bool:
    """[0-9]{1,longest} (int() alone would take "1_000", "+5", " 5" or non-ASCII digits)."""
    return 0 < len(value) <= longest and _DIGITS.issuperset(value)


def _is_key_shape(value: str) -> bool:
    """[A-Za-z0-9+/]{43}= : base64 of 32 bytes."""
    return len(value) == 44 and value[43] == "=" and _BASE64_CHARS.issuperset(value[:43])


def _is_dns_label(label: str) -> bool:
    """[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])? : no hyphen first or last."""
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and _LABEL_CHARS.issuperset(label)
    )


def _scrub_keylike(text: str) -> str:
    """Every run that looks like a WireGuard key, [A-Za-z0-9+/]{40,}={0,2}, as <redacted>."""
    out: list[str] = []
    copied = i = 0
    n = len(text)
    while i < n:
        if text[i] not in _BASE64_CHARS:
            i += 1
            continue
        end = i
        while end < n and text[end] in _BASE64_CHARS:
            end += 1
        if end - i >= 40:
            run_end = end
            while end < n and end - run_end < 2 and text[end] == "=":
                end += 1
            out += (text[copied:i], "<redacted>")
            copied = end
        i = end
    out.append(text[copied:])
    return "".join(out)


def validate_ifname(name: str) -> str:
    if not is_ifname(name):
        raise ConfigError(
            "invalid interface name: 1 to 15 characters of A-Z a-z 0-9 _ -, starting with a letter"
        )
    return name


def _key(value: str, what: str, line: int) -> str:
    # Never echo the value: it may be a private or preshared key.
    bad = ConfigError(
        f"{what} is not a valid WireGuard key (base64 of 32 bytes: 44 characters ending in '=')",
        line,
    )
    if not _is_key_shape(value):
        raise bad
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)  # = base64.b64decode(validate=True)
    except (binascii.Error, ValueError):
        raise bad from None
    # wg rejects non-canonical encodings (stray low bits), so must we.
    if len(raw) != 32 or binascii.b2a_base64(raw, newline=False).decode("ascii") != value:
        raise bad
    return value


def _number(value: str, what: str, low: int, high: int, line: int) -> int:
    if not _is_digits(value, 5) or not low <= int(value) <= high:
        raise ConfigError(f"{what} must be a number from {low} to {high}", line)
    return int(value)


def _items(value: str, what: str, line: int) -> list[str]:
    items = [item.strip(" \t") for item in value.split(",")]
    if any(not item for item in items):
        raise ConfigError(f"{what} has an empty item in its comma-separated list", line)
    return items


def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress  # not at the top: `down` does without it

    if "%" in value:  # IPv6 scope ids are not for tunnel configs
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _address(value: str, line: int) -> str:
    import ipaddress

    try:
        if value.count("/") != 1 or "%" in value:
            raise ValueError
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ConfigError(
            "Address must be an IP address with a prefix length, like 10.0.0.2/24 or fd00::2/64",
            line,
        ) from None
    return str(iface)


def _network(value: str, line: int) -> str:
    import ipaddress

    try:
        if "%" in value or value.count("/") > 1:
            raise ValueError
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(
            "AllowedIPs must be IP networks, like 10.0.0.0/24 or fd00::/64", line
        ) from None
    return str(net)


def is_dns_name(value: str) -> bool:
    """A DNS name of letter-digit-hyphen labels; the last label is not all digits."""
    if not value or len(value) > 253 or not value.isascii():
        return False
    labels = value.split(".")
    if not all(_is_dns_label(label) for label in labels):
        return False
    # "10.1.2" would be read as an IPv4 address by the resolver.
    return not labels[-1].isdigit()


def _dns(value: str, line: int) -> str:
    addr = _ip_address(value)
    if addr is not None:
        return str(addr)
    if is_dns_name(value):
        return value
    raise ConfigError("DNS must be IP addresses or search domains like example.com", line)


def _endpoint(value: str, line: int) -> str:
    import ipaddress

    bad = ConfigError(
        "Endpoint must be HOST:PORT with HOST an IPv4 address, [IPv6 address] or DNS name "
        "and PORT from 1 to 65535",
        line,
    )
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        addr = _ip_address(host) if sep else None
        if not isinstance(addr, ipaddress.IPv6Address):
            raise bad
        host_out = f"[{addr}]"
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise bad
        addr = _ip_address(host)
        if isinstance(addr, ipaddress.IPv4Address):
            host_out = str(addr)
        elif addr is None and is_dns_name(host):
            host_out = host
        else:
            raise bad
    if not _is_digits(port, 5) or not 1 <= int(port) <= 65535:
        raise bad
    return f"{host_out}:{int(port)}"


def _keepalive(value: str, line: int) -> int:
    if value.lower() == "off":
        return 0
    return _number(value, "PersistentKeepalive", 0, 65535, line)


# --------------------------------------------------------------------------- parsing

_INTERFACE_KEYS = {
    "privatekey": "PrivateKey",
    "address": "Address",
    "listenport": "ListenPort",
    "mtu": "MTU",
    "dns": "DNS",
}
_PEER_KEYS = {
    "publickey": "PublicKey",
    "presharedkey": "PresharedKey",
    "endpoint": "Endpoint",
    "allowedips": "AllowedIPs",
    "persistentkeepalive": "PersistentKeepalive",
}
_LIST_KEYS = {"Address", "DNS", "AllowedIPs"}
_HOOK_REASON = "it would run shell commands as root"
_FORBIDDEN = {
    "preup": ("PreUp", _HOOK_REASON),
    "postup": ("PostUp", _HOOK_REASON),
    "predown": ("PreDown", _HOOK_REASON),
    "postdown": ("PostDown", _HOOK_REASON),
    "table": ("Table", "it changes which routing table wg-quick uses, or turns routes off"),
    "saveconfig": ("SaveConfig", "it would make wg-quick write the running config to a file"),
    "fwmark": ("FwMark", "it changes the packet mark that policy routing relies on"),
}


def _check_characters(text: str) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        body = line[:-1] if line.endswith("\r") else line  # CRLF files are fine
        for char in body:
            if char == "\t":
                continue
            if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
                raise ConfigError(f"control character U+{ord(char):04X} is not allowed", number)


def decode_config(data: bytes) -> str:
    """The size, NUL and UTF-8 checks on raw input, before any parsing."""
    if len(data) > MAX_INPUT:
        raise ConfigError(f"config is larger than {MAX_INPUT // 1024} KiB")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError("NUL byte in config", data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("config is not valid UTF-8", line) from None
    _check_characters(text)
    return text


def _describe_key(key: str) -> str:
    return f"'{key}'" if _is_echo_name(key) else "(name not shown)"


class _Section:
    __slots__ = ("kind", "line", "lines", "values")

    def __init__(self, kind: str, line: int) -> None:
        self.kind = kind  # "Interface" or "Peer"
        self.line = line
        self.values: dict[str, object] = {}
        self.lines: dict[str, int] = {}  # key -> line it was given on

    def single(self, key: str) -> object:
        return self.values.get(key)

    def many(self, key: str) -> tuple[str, ...]:
        items = self.values.get(key, [])
        assert isinstance(items, list)
        return tuple(items)


def parse_config(text: str) -> WgConfig:
    """Parse and validate a wg-quick config, accepting only what fiotray needs.

    Follows wg-quick's reading (case-insensitive sections and keys, `#` starts a
    comment anywhere, `Key = Value` split on the first `=`, blanks trimmed), then
    refuses anything outside a small allow-list. Raises ConfigError.
    """
    _check_characters(text)
    current: _Section | None = None
    iface: _Section | None = None
    peers: list[_Section] = []

    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.partition("#")[0].strip(" \t\r")
        if not line:
            continue
        if line.startswith("["):
            name = line.lower()
            if name == "[interface]":
                if iface is not None:
                    raise ConfigError(
                        f"second [Interface] section (the first is on line {iface.line})", number
                    )
                iface = current = _Section("Interface", number)
            elif name == "[peer]":
                if len(peers) >= MAX_PEERS:
                    raise ConfigError(f"more than {MAX_PEERS} [Peer] sections", number)
                current = _Section("Peer", number)
                peers.append(current)
            else:
                inner = line[1:-1].strip(" \t") if line.endswith("]") else ""
                shown = f"[{inner}]" if _is_echo_name(inner) else "(name not shown)"
                raise ConfigError(
                    f"unknown section {shown}: only [Interface] and [Peer] are allowed", number
                )
            continue

        key, sep, value = line.partition("=")
        key = key.strip(" \t")
        value = value.strip(" \t")
        if not sep:
            raise ConfigError("expected 'Key = Value' or a [Section] header", number)
        if not key:
            raise ConfigError("missing key name before '='", number)
        lowered = key.lower()
        if lowered in _FORBIDDEN:
            canonical, why = _FORBIDDEN[lowered]
            raise ConfigError(f"{canonical} is not allowed: {why}", number)
        if current is None:
            raise ConfigError(f"key {_describe_key(key)} outside a section", number)
        allowed = _INTERFACE_KEYS if current.kind == "Interface" else _PEER_KEYS
        if lowered not in allowed:
            raise ConfigError(f"unknown key {_describe_key(key)} in [{current.kind}]", number)
        canonical = allowed[lowered]
        if not value:
            raise ConfigError(f"{canonical} has no value", number)
        if canonical in _LIST_KEYS:
            items = current.values.setdefault(canonical, [])
            assert isinstance(items, list)
            items.extend(_validate_list(canonical, value, number))
            current.lines.setdefault(canonical, number)
            continue
        if canonical in current.lines:
            raise ConfigError(
                f"{canonical} given twice in [{current.kind}] "
                f"(first on line {current.lines[canonical]})",
                number,
            )
        current.lines[canonical] = number
        current.values[canonical] = _validate_single(canonical, value, number)

    if iface is None:
        raise ConfigError("no [Interface] section")
    if "PrivateKey" not in iface.values:
        raise ConfigError("[Interface] has no PrivateKey", iface.line)
    if not iface.many("Address"):
        raise ConfigError("[Interface] has no Address", iface.line)
    if not peers:
        raise ConfigError("no [Peer] section: at least one is needed")

    interface = Interface(
        private_key=str(iface.single("PrivateKey")),
        addresses=iface.many("Address"),
        listen_port=_opt_int(iface.single("ListenPort")),
        mtu=_opt_int(iface.single("MTU")),
        dns=iface.many("DNS"),
    )
    out: list[Peer] = []
    first_seen: dict[str, int] = {}
    for p in peers:
        if "PublicKey" not in p.values:
            raise ConfigError("[Peer] has no PublicKey", p.line)
        public_key = str(p.single("PublicKey"))
        if public_key in first_seen:
            raise ConfigError(
                f"duplicate peer PublicKey (same as the peer on line {first_seen[public_key]})",
                p.lines["PublicKey"],
            )
        first_seen[public_key] = p.line
        out.append(
            Peer(
                public_key=public_key,
                preshared_key=_opt_str(p.single("PresharedKey")),
                endpoint=_opt_str(p.single("Endpoint")),
                allowed_ips=p.many("AllowedIPs"),
                persistent_keepalive=_opt_int(p.single("PersistentKeepalive")),
            )
        )
    return WgConfig(interface=interface, peers=tuple(out))


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _validate_list(key: str, value: str, line: int) -> list[str]:
    items = _items(value, key, line)
    if key == "Address":
        return [_address(item, line) for item in items]
    if key == "DNS":
        return [_dns(item, line) for item in items]
    return [_network(item, line) for item in items]


def _validate_single(key: str, value: str, line: int) -> object:
    if key in ("PrivateKey", "PublicKey", "PresharedKey"):
        return _key(value, key, line)
    if key == "ListenPort":
        return _number(value, "ListenPort", 1, 65535, line)
    if key == "MTU":
        return _number(value, "MTU", 576, 9000, line)
    if key == "Endpoint":
        return _endpoint(value, line)
    if key == "PersistentKeepalive":
        return _keepalive(value, line)
    raise AssertionError(key)  # pragma: no cover - the key tables and this list agree


def parse_config_bytes(data: bytes) -> WgConfig:
    return parse_config(decode_config(data))


def render_config(config: WgConfig) -> str:
    """The canonical text: fixed key order, one `Key = value` a line, lists joined by ', '."""
    i = config.interface
    lines = ["[Interface]", f"PrivateKey = {i.private_key}", f"Address = {', '.join(i.addresses)}"]
    if i.listen_port is not None:
        lines.append(f"ListenPort = {i.listen_port}")
    if i.mtu is not None:
        lines.append(f"MTU = {i.mtu}")
    if i.dns:
        lines.append(f"DNS = {', '.join(i.dns)}")
    for p in config.peers:
        lines += ["", "[Peer]", f"PublicKey = {p.public_key}"]
        if p.preshared_key is not None:
            lines.append(f"PresharedKey = {p.preshared_key}")
        if p.endpoint is not None:
            lines.append(f"Endpoint = {p.endpoint}")
        if p.allowed_ips:
            lines.append(f"AllowedIPs = {', '.join(p.allowed_ips)}")
        if p.persistent_keepalive is not None:
            lines.append(f"PersistentKeepalive = {p.persistent_keepalive}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- wg show dump


def _dump_key(value: str) -> str | None:
    return value if _is_key_shape(value) else None


def _dump_int(value: str) -> int:
    if not _is_digits(value, 20):
        raise ValueError("not a number")
    return int(value)


def parse_wg_dump(text: str) -> dict[str, object]:
    """`wg show IFNAME dump` without its secrets: the private and preshared keys are dropped.

    Raises ValueError (whose message never contains input) on anything unexpected.
    """
    lines = [line for line in text.split("\n") if line]
    if not lines:
        raise ValueError("empty dump")
    head = lines[0].split("\t")
    if len(head) != 4:
        raise ValueError("unexpected interface line")
    port = 0 if head[2] == "off" else _dump_int(head[2])
    peers: list[dict[str, object]] = []
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) != 8:
            raise ValueError("unexpected peer line")
        endpoint: str | None = None
        if f[2] != "(none)":
            try:
                endpoint = _endpoint(f[2], 0)
            except ConfigError:
                endpoint = None
        try:
            allowed = [] if f[3] == "(none)" else [_network(a, 0) for a in f[3].split(",")]
        except ConfigError:
            raise ValueError("unexpected allowed-ips") from None
        peers.append(
            {
                "public_key": _dump_key(f[0]),
                "endpoint": endpoint,
                "allowed_ips": allowed,
                "latest_handshake": _dump_int(f[4]),
                "rx_bytes": _dump_int(f[5]),
                "tx_bytes": _dump_int(f[6]),
                "persistent_keepalive": 0 if f[7] == "off" else _dump_int(f[7]),
            }
        )
    return {"public_key": _dump_key(head[1]), "listen_port": port, "peers": peers}


# --------------------------------------------------------------------------- system side


def sanitize(text: str, limit: int = MAX_ERROR_DETAIL, secrets: list[str] | None = None) -> str:
    """One printable-ASCII line, key-like runs and known secrets scrubbed, cut to `limit`."""
    for secret in secrets or ():
        text = text.replace(secret, "<redacted>")
    text = _scrub_keylike(text)
    text = "".join(c if " " <= c <= "~" else "?" for c in text).strip()
    return text[:limit]


def find_tool(name: str) -> str | None:
    for directory in TOOL_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise HelperError(
            EXIT_MISSING_TOOL,
            f"{name} not found in {', '.join(TOOL_DIRS)}: "
            f"install the Debian package {TOOL_PACKAGES.get(name, name)}",
        )
    return path


def tool_env() -> dict[str, str]:
    env = {"PATH": TOOL_PATH, "LANG": "C"}
    if find_tool("wireguard-go"):
        # wg-quick still prefers the kernel module where there is one.
        env["WG_QUICK_USERSPACE_IMPLEMENTATION"] = "wireguard-go"
        env["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1"
    return env


# A timed-out tool gets SIGTERM first, so that wg-quick's trap removes a half-made interface,
# then SIGKILL; each is followed by this many seconds' grace.
_STOP_SIGNALS = ((_signal.SIGTERM, 5.0), (_signal.SIGKILL, 5.0))


def run_tool(argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run argv (absolute path, no shell) with the fixed environment; (-1, ...) on timeout.

    The tool gets stdin from /dev/null, stdout and stderr on pipes read here, cwd /, a new
    session (so a process group of its own), SIGPIPE and SIGXFSZ at their defaults (Python
    ignores both) and no other file descriptor: what subprocess.Popen(close_fds=True,
    start_new_session=True, cwd="/") gives, without subprocess's ~8 ms of imports. The exit
    code is Popen's returncode (-N: killed by signal N).

    Reading stops when the tool exits, not at end-of-file, so a daemon it left behind with a
    copy of the pipes cannot hold us up. On timeout the process group gets SIGTERM, then
    SIGKILL, each with a grace period; the result is then (-1, out, err), or (-1, b"", b"")
    if even SIGKILL did not end the tool.
    """
    if not os.path.isabs(argv[0]):  # posix_spawn does no PATH search, and cwd is /
        raise ValueError("run_tool needs an absolute path")
    env = tool_env()
    fds: list[int] = []  # all close-on-exec; all closed by the end
    try:
        fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        fds.extend(os.pipe2(os.O_CLOEXEC))
        fds.extend(os.pipe2(os.O_CLOEXEC))
        for i, fd in enumerate(fds):
            if fd < 3:  # 0-2 were closed in this process: out of the way of the child's 0-2
                fds[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                os.close(fd)
        null, out_r, out_w, err_r, err_w = fds
        pid = _spawn(argv, env, null, out_w, err_w)
        for fd in (null, out_w, err_w):  # the child has its own copies now
            fds.remove(fd)
            os.close(fd)
        return _collect(pid, out_r, err_r, timeout)
    finally:
        for fd in fds:
            os.close(fd)


def _spawn(argv: list[str], env: dict[str, str], stdin: int, stdout: int, stderr: int) -> int:
    """posix_spawn argv in / with stdin, stdout and stderr as its 0, 1, 2 and nothing else."""
    actions: list[tuple[int, ...]] = [
        (os.POSIX_SPAWN_DUP2, stdin, 0),  # dup2 clears close-on-exec on the copy
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    # An exec closes only close-on-exec descriptors (all of ours are): close inherited ones.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    # One difference from subprocess's fork_exec: glibc's posix_spawn leaves its two internal
    # signals (32, 33: below SIGRTMIN, used by no program) ignored in the child.
    # os.posix_spawn has no chdir action: step into / around the call (the helper runs one
    # thread; the unprivileged app, which imports this module, never runs tools).
    try:
        back = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        back = -1  # our cwd is gone: staying in / loses nothing
    os.chdir("/")
    try:
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=actions,
            setsid=True,
            setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
        )
    finally:
        if back >= 0:
            with _suppress(OSError):  # then stay in /: nothing here depends on the cwd
                os.fchdir(back)
            os.close(back)


def _inheritable_fds() -> list[int]:
    """Our descriptors above 2 that an exec would pass on (left to us by whoever started us)."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: look at every possible one
        listed = list(range(3, os.sysconf("SC_OPEN_MAX")))
    found = []
    for fd in listed:
        if fd > 2:
            with _suppress(OSError):  # not open: the listing's own descriptor, closed by now
                if os.get_inheritable(fd):
                    found.append(fd)
    return found


def _collect(pid: int, out_r: int, err_r: int, timeout: float) -> tuple[int, bytes, bytes]:
    """The tool's exit code and output, or -1 after stopping it (see run_tool)."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()  # not select.select: no limit on descriptor numbers
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    try:
        pidfd = os.pidfd_open(pid)  # readable once the child has exited (Linux >= 5.3)
        poller.register(pidfd, select.POLLIN)
    except OSError:
        pidfd = -1  # poll for the exit instead
    try:
        code = _read_until_exit(pid, pidfd, poller, chunks, time.monotonic() + timeout)
        if code is not None:
            return code, b"".join(chunks[out_r]), b"".join(chunks[err_r])
        for sig, grace in _STOP_SIGNALS:
            with _suppress(ProcessLookupError):
                os.killpg(pid, sig)  # not reaped yet, so pid is still its group's id
            if _read_until_exit(pid, pidfd, poller, chunks, time.monotonic() + grace) is not None:
                return -1, b"".join(chunks[out_r]), b"".join(chunks[err_r])
        return -1, b"", b""
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _read_until_exit(
    pid: int, pidfd: int, poller: select.poll, chunks: dict[int, list[bytes]], deadline: float
) -> int | None:
    """Read the pipes until the child exits (its exit code) or the deadline (None)."""
    while True:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            # What it wrote before exiting is in the pipes now: take that, but wait for
            # nothing more (a daemon it started may hold the write ends open).
            drain_until = time.monotonic() + 1.0  # only a daemon writing non-stop needs this
            while _read_ready(poller.poll(0), pidfd, poller, chunks):
                if time.monotonic() > drain_until:
                    break
            return os.waitstatus_to_exitcode(status)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        wait_ms = left * 1000 if pidfd >= 0 else min(left * 1000, 5.0)
        _read_ready(poller.poll(wait_ms + 1), pidfd, poller, chunks)


def _read_ready(
    events: list[tuple[int, int]], pidfd: int, poller: select.poll, chunks: dict[int, list[bytes]]
) -> bool:
    """Read the pipes `events` names as ready (end-of-file: unregister); whether any was."""
    read = False
    for fd, _event in events:
        if fd == pidfd:
            continue
        read = True
        data = os.read(fd, 65536)
        if data:
            chunks[fd].append(data)
        else:
            poller.unregister(fd)
    return read


def last_error_line(stderr: bytes, secrets: list[str]) -> str:
    """wg-quick's last line that is not an echo of a command it ran ("[#] ...")."""
    for raw in reversed(stderr.decode("utf-8", "replace").splitlines()):
        line = raw.strip()
        if line and not line.startswith("[#]"):
            return sanitize(line, secrets=secrets)
    return "no error output"


def _hint(detail: str) -> str:
    """What to install when wg-quick's failure is a known missing piece."""
    if "resolvconf" in detail and "not found" in detail:
        return "; DNS = needs resolvconf: install the Debian package openresolv"
    if find_tool("wireguard-go") is None and not os.path.exists("/sys/module/wireguard"):
        return "; no WireGuard kernel module: install the Debian package wireguard-go"
    return ""


def iface_exists(name: str) -> bool:
    return os.path.lexists(os.path.join(SYS_CLASS_NET, name))


def require_root() -> None:
    if os.geteuid() != 0:
        raise HelperError(
            EXIT_USAGE, "must run as root: start it through pkexec (fiotray does this itself)"
        )


def caller_uid() -> int:
    """The user on whose behalf we act: pkexec's caller, else our own real uid."""
    raw = os.environ.get("PKEXEC_UID")
    if raw is None:
        return os.getuid()
    if not _is_digits(raw, 10) or int(raw) >= 2**32 - 1:
        raise HelperError(EXIT_USAGE, "PKEXEC_UID is not a valid uid")
    return int(raw)


def open_runtime_dir(*, create: bool) -> int | None:
    """An fd of RUNTIME_DIR after checking it is a real, root-owned directory.

    With create=False a missing directory gives None (status never writes).
    """
    path = os.fspath(RUNTIME_DIR)
    if create:
        with _suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise HelperError(
                EXIT_CONFLICT, f"{path} is not a real directory (a symlink or a file): refusing"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
            raise HelperError(EXIT_CONFLICT, f"{path} is not a directory owned by root: refusing")
        if st.st_mode & 0o022:
            raise HelperError(EXIT_CONFLICT, f"{path} is writable by others: refusing")
        if create and st.st_mode & 0o777 != 0o700:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_dir(fd: int) -> None:
    """Serialize up/down of all helpers (a flock on the directory itself: nothing to write)."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise HelperError(EXIT_CONFLICT, "another fiotray-helper is still busy") from None
            time.sleep(0.05)


def _write_new(dirfd: int, name: str, data: bytes) -> None:
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dirfd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _remove_records(dirfd: int, name: str) -> None:
    for suffix in (".conf", ".json"):
        with _suppress(FileNotFoundError):
            os.unlink(name + suffix, dir_fd=dirfd)


def read_record(dirfd: int, name: str) -> int | None:
    """The owner uid of IFNAME's record; None if the record is unreadable.

    Raises FileNotFoundError when there is no record.
    """
    return _record(dirfd, name)[0]


def _record(dirfd: int, name: str) -> tuple[int | None, int]:
    """(owner uid or None, creation time or 0) of IFNAME's record."""
    fd = os.open(f"{name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, 0
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    fast = _parse_own_record(raw)
    if fast is not None:
        return fast
    import json  # a record not in the exact form cmd_up writes: read it as before

    try:
        data = json.loads(raw.decode("utf-8"))
        uid, created = data["uid"], data.get("created", 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, 0
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        created = 0
    valid = isinstance(uid, int) and not isinstance(uid, bool) and uid >= 0
    return (uid if valid else None), created


def _record_text(uid: int, created: int) -> str:
    """The record cmd_up writes: what json.dumps({"uid": uid, "created": created}) gives."""
    return f'{{"uid": {int(uid)}, "created": {int(created)}}}\n'


def _canonical_uint(digits: bytes) -> bool:
    # bytes.isdigit() is ASCII-only; JSON allows no leading zeros.
    return digits.isdigit() and (digits == b"0" or not digits.startswith(b"0"))


def _parse_own_record(raw: bytes) -> tuple[int, int] | None:
    """(uid, created) from exactly what _record_text writes, else None.

    `down` reads a record on every call: this spares it json (and re, which json imports).
    Where it answers, json.loads would give the same numbers.
    """
    head, tail = b'{"uid": ', b"}\n"
    if not (raw.startswith(head) and raw.endswith(tail)):
        return None
    uid, sep, created = raw[len(head) : -len(tail)].partition(b', "created": ')
    if not (sep and _canonical_uint(uid) and _canonical_uint(created)):
        return None
    return int(uid), int(created)


def _has_file(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------- commands


def cmd_up(name: str, config: WgConfig) -> int:
    require_root()
    wg_quick = require_tool("wg-quick")
    require_tool("wg")  # wg-quick calls both through PATH
    require_tool("ip")
    uid = caller_uid()
    if iface_exists(name):  # before creating anything
        raise HelperError(EXIT_CONFLICT, f"interface {name} already exists")
    dirfd = open_runtime_dir(create=True)
    assert dirfd is not None
    try:
        lock_dir(dirfd)
        if iface_exists(name):
            raise HelperError(EXIT_CONFLICT, f"interface {name} already exists")
        _remove_records(dirfd, name)  # left over from a tunnel that is gone
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        record = _record_text(uid, int(time.time()))
        try:
            _write_new(dirfd, f"{name}.conf", render_config(config).encode("utf-8"))
            _write_new(dirfd, f"{name}.json", record.encode("utf-8"))
            code, _out, err = run_tool([wg_quick, "up", conf_path], WG_QUICK_TIMEOUT)
        except BaseException:
            _remove_records(dirfd, name)
            raise
        if code != 0:
            _remove_records(dirfd, name)
            if code < 0:
                detail = f"timed out after {WG_QUICK_TIMEOUT:g} s"
            else:
                detail = f"exit {code}: {last_error_line(err, config.secrets())}"
            raise HelperError(EXIT_WG_QUICK, f"wg-quick up {name} failed ({detail}){_hint(detail)}")
    finally:
        os.close(dirfd)
    return EXIT_OK


def cmd_down(name: str, out: TextIO) -> int:
    require_root()
    uid = caller_uid()
    not_ours = HelperError(EXIT_CONFLICT, f"{name} was not brought up by fiotray")
    dirfd = open_runtime_dir(create=False)
    if dirfd is None:
        raise not_ours
    try:
        lock_dir(dirfd)
        try:
            owner = read_record(dirfd, name)
        except FileNotFoundError:
            raise not_ours from None
        if uid != 0 and owner != uid:
            whose = "an unreadable record" if owner is None else f"uid {owner}"
            raise HelperError(EXIT_CONFLICT, f"{name} belongs to {whose}, not to uid {uid}")
        if not iface_exists(name):
            _remove_records(dirfd, name)
            out.write(f"{name} was already gone; its record was removed\n")
            return EXIT_OK
        if not _has_file(dirfd, f"{name}.conf"):
            raise HelperError(
                EXIT_CONFLICT, f"the config of {name} is missing from {os.fspath(RUNTIME_DIR)}"
            )
        wg_quick = require_tool("wg-quick")
        require_tool("wg")
        require_tool("ip")
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        code, _out, err = run_tool([wg_quick, "down", conf_path], WG_QUICK_TIMEOUT)
        if code != 0:
            if not iface_exists(name):
                _remove_records(dirfd, name)
            detail = (
                f"timed out after {WG_QUICK_TIMEOUT:g} s"
                if code < 0
                else f"exit {code}: {last_error_line(err, [])}"
            )
            raise HelperError(EXIT_WG_QUICK, f"wg-quick down {name} failed ({detail})")
        _remove_records(dirfd, name)
    finally:
        os.close(dirfd)
    return EXIT_OK


def _wg_show(wg: str, name: str) -> dict[str, object] | None:
    code, out, _err = run_tool([wg, "show", name, "dump"], WG_SHOW_TIMEOUT)
    if code != 0:
        return None
    try:
        return parse_wg_dump(out.decode("utf-8", "replace"))
    except ValueError:
        return None


def status() -> dict[str, object]:
    """Every interface with a record; reads only."""
    interfaces: list[dict[str, object]] = []
    dirfd = open_runtime_dir(create=False)
    if dirfd is not None:
        try:
            names = sorted(
                entry[:-5]
                for entry in os.listdir(dirfd)
                if entry.endswith(".json") and is_ifname(entry[:-5])
            )
            for name in names:
                try:
                    owner, created = _record(dirfd, name)
                except FileNotFoundError:  # taken down meanwhile
                    continue
                entry: dict[str, object] = {
                    "name": name,
                    "owner_uid": owner,
                    # When it was brought up: lets the app tell "connecting" from "never answered".
                    "created": created,
                    "exists": iface_exists(name),
                    "public_key": None,
                    "listen_port": None,
                    "peers": [],
                }
                if entry["exists"]:
                    shown = _wg_show(require_tool("wg"), name)
                    if shown is not None:
                        entry.update(shown)
                interfaces.append(entry)
        finally:
            os.close(dirfd)
    return {"version": STATUS_VERSION, "interfaces": interfaces}


def cmd_status(out: TextIO) -> int:
    require_root()
    import json

    out.write(json.dumps(status(), sort_keys=False) + "\n")
    return EXIT_OK


def read_input(stream: BinaryIO | None) -> bytes:
    if stream is None:
        raise ConfigError("no config on standard input")
    # One byte more than allowed tells "too big" from "exactly the limit".
    return stream.read(MAX_INPUT + 1)


def run(argv: list[str], stdin: BinaryIO | None, stdout: TextIO) -> int:
    if argv[:1] == ["up"] and len(argv) == 2:
        name = validate_ifname(argv[1])
        config = parse_config_bytes(read_input(stdin))
        return cmd_up(name, config)
    if argv[:1] == ["down"] and len(argv) == 2:
        return cmd_down(validate_ifname(argv[1]), stdout)
    if argv == ["status"]:
        return cmd_status(stdout)
    raise HelperError(EXIT_USAGE, USAGE)


def error_line(message: str) -> str:
    return f"{PROG}: {sanitize(message, limit=400)}\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    try:
        code = run(args, stdin, sys.stdout)
        sys.stdout.flush()
        return code
    except HelperError as exc:
        sys.stderr.write(error_line(exc.message))
        return exc.code
    except BrokenPipeError:
        return EXIT_INTERNAL
    except Exception as exc:
        # The exception's text might quote input: name only its type.
        sys.stderr.write(error_line(f"internal error ({type(exc).__name__})"))
        return EXIT_INTERNAL


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
