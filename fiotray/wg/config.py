"""The wg-quick config fiotray accepts: its model, a strict parser and a canonical renderer.

The parser reads a config as wg-quick does (case-insensitive sections and keys, `#` starts a
comment anywhere, `Key = Value` split on the first `=`, blanks trimmed), then accepts only a
small allow-list of keys with validated values. Anything wg-quick would run as a shell
command (PreUp, PostUp, PreDown, PostDown) or that changes routing or writes files (Table,
SaveConfig, FwMark) is refused with a reason. Error messages never repeat a value: it may be
a private or preshared key.

The helper hands wg-quick only what render_config() gives back, never the text it was sent.
Standard library only; ipaddress is imported where it is used (`down` does without it).
"""

from __future__ import annotations

import binascii
import unicodedata

from fiotray.wg.errors import EXIT_USAGE, WgError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress

MAX_INPUT = 64 * 1024
MAX_PEERS = 256

# ASCII only, spelled out: str.isalnum() and friends would take any Unicode letter or digit.
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_NAME_CHARS = _LETTERS | _DIGITS | frozenset("_-")  # [A-Za-z0-9_-]
_LABEL_CHARS = _LETTERS | _DIGITS | frozenset("-")  # [A-Za-z0-9-]
_BASE64_CHARS = _LETTERS | _DIGITS | frozenset("+/")  # [A-Za-z0-9+/]


class ConfigError(WgError):
    """The config (or the interface name) is refused; `line` is 1-based when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(EXIT_USAGE, f"line {line}: {reason}" if line else reason)


# --------------------------------------------------------------------------- model


class _Record:
    """A small immutable record (dataclasses imports inspect: ~7 ms more per helper run)."""

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


def is_digits(value: str, longest: int) -> bool:
    """[0-9]{1,longest} (int() alone would take "1_000", "+5", " 5" or non-ASCII digits)."""
    return 0 < len(value) <= longest and _DIGITS.issuperset(value)


def is_key_shape(value: str) -> bool:
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
    if not is_key_shape(value):
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
    if not is_digits(value, 5) or not low <= int(value) <= high:
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


def check_network(value: str, line: int) -> str:
    """An AllowedIPs entry in its normal form (host bits cleared), or ConfigError."""
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


def check_endpoint(value: str, line: int) -> str:
    """HOST:PORT in its normal form, or ConfigError (never quoting the value)."""
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
    if not is_digits(port, 5) or not 1 <= int(port) <= 65535:
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
    return [check_network(item, line) for item in items]


def _validate_single(key: str, value: str, line: int) -> object:
    if key in ("PrivateKey", "PublicKey", "PresharedKey"):
        return _key(value, key, line)
    if key == "ListenPort":
        return _number(value, "ListenPort", 1, 65535, line)
    if key == "MTU":
        return _number(value, "MTU", 576, 9000, line)
    if key == "Endpoint":
        return check_endpoint(value, line)
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
