"""ssh argv for a device over the factory VPN, and a generated ssh config file.

A device accepts tunnel traffic only from the VPN server's address, so the
default route is ``jump``: ProxyJump through the server over the tunnel
(``ssh -J fio@10.42.42.1 -- fio@10.42.42.7``). ``direct`` reaches the device's
VPN address straight (only works where the server's admin NATs out of its
WireGuard interface). ``public`` jumps through the server's public SSH
endpoint, no tunnel needed on this machine.

Device names and addresses come from a server. The argv built here never lets
one become an option or reach a shell:

- the destination is ``user@<IPv4>``, the address parsed by ``ipaddress``; it
  follows ``--`` because OpenSSH parses options again *after* the destination
  unless ``--`` came first (``ssh host -p 1`` sets the port);
- the device name appears only inside ``HostKeyAlias=``, as a token of
  ``[a-z0-9._-]`` (or a hash of it, see `host_key_alias`);
- users, jump hosts and extra options are checked against strict patterns.

Remote command text (``command``) is the caller's: ssh joins the elements with
spaces and the device's login shell interprets the result. Never build it from
device names or other server data.

Limits of ``-J`` (kept on purpose: no ProxyCommand is ever emitted): OpenSSH
starts the jump hop as ``ssh -l USER -p PORT -W ... HOST`` with none of our
``-o`` options, so that hop uses the user's own ssh config, agent and default
known_hosts. ``ConnectTimeout`` still bounds a dead hop: the outer ssh gives up
waiting for the device's banner. The generated config file (`render_ssh_config`)
does better: it gives the hop its own Host block with identity and host key alias.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import platformdirs

from fiotray.core.devices import validate_device_name
from fiotray.core.errors import FiotrayError
from fiotray.core.factories import validate_factory_name
from fiotray.core.files import write_private

Route = Literal["jump", "direct", "public"]
ROUTES: tuple[str, ...] = get_args(Route)

DEFAULT_CONNECT_TIMEOUT = 10
# POSIX-ish login names; '.' allowed (common in directory-backed accounts). No '@' or ':'.
_USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Names that are the same token everywhere: HostKeyAlias, Host patterns, known_hosts.
# Lower case only for HostKeyAlias: OpenSSH matches known_hosts names case-insensitively,
# so "Dev1" and "dev1" would share a host key.
_PLAIN_ALIAS_RE = re.compile(r"[a-z0-9_][a-z0-9._-]*")
# Host patterns in an ssh config are matched case-sensitively; *?!, are pattern syntax.
_CONFIG_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_MAX_PATH = 4096


# -- extra options ------------------------------------------------------------------

_YES_NO = r"yes|no"
_INT = r"[0-9]{1,6}"
_ALGOS = r"[+^-]?[A-Za-z0-9@._-]+(?:,[A-Za-z0-9@._-]+)*"
# Only options that change how a session behaves, never what runs locally or which
# host key is trusted: no ProxyCommand, LocalCommand, KnownHostsCommand, Include,
# Match, HostKeyAlias, StrictHostKeyChecking, UserKnownHostsFile, ControlPath, ...
_EXTRA_OPTIONS: dict[str, str] = {
    "AddressFamily": r"any|inet|inet6",
    "BatchMode": _YES_NO,
    "Ciphers": _ALGOS,
    "Compression": _YES_NO,
    "ConnectionAttempts": _INT,
    "ConnectTimeout": _INT,
    "ForwardAgent": _YES_NO,
    "ForwardX11": _YES_NO,
    "ForwardX11Trusted": _YES_NO,
    "HostKeyAlgorithms": _ALGOS,
    "KbdInteractiveAuthentication": _YES_NO,
    "KexAlgorithms": _ALGOS,
    "LogLevel": r"QUIET|FATAL|ERROR|INFO|VERBOSE|DEBUG|DEBUG1|DEBUG2|DEBUG3",
    "MACs": _ALGOS,
    "PasswordAuthentication": _YES_NO,
    "Port": _INT,
    "PreferredAuthentications": r"[a-z-]+(?:,[a-z-]+)*",
    "PubkeyAcceptedAlgorithms": _ALGOS,
    "PubkeyAuthentication": _YES_NO,
    "RequestTTY": r"yes|no|force|auto",
    "ServerAliveCountMax": _INT,
    "ServerAliveInterval": _INT,
    "TCPKeepAlive": _YES_NO,
    "UpdateHostKeys": r"yes|no|ask",
    "VisualHostKey": _YES_NO,
}
_EXTRA_BY_LOWER = {k.lower(): k for k in _EXTRA_OPTIONS}
_NUMERIC = {"ConnectionAttempts", "ConnectTimeout", "Port", "ServerAliveCountMax"}
# Meant for the device: the generated jump-hop block leaves them out (as -J does).
_DEVICE_ONLY = {"Port", "RequestTTY"}


def validate_extra_option(option: str) -> str:
    """``Key=Value`` with an allow-listed key and a value of that key's shape.

    Returns it with the key's canonical spelling; FiotrayError otherwise.
    """
    if not isinstance(option, str) or "=" not in option:
        raise FiotrayError(f"SSH option {str(option)[:60]!r} must be written as Key=Value.")
    key, value = option.split("=", 1)
    canonical = _EXTRA_BY_LOWER.get(key.strip().lower())
    if canonical is None:
        allowed = ", ".join(sorted(_EXTRA_OPTIONS))
        raise FiotrayError(
            f"SSH option {key[:40]!r} is not allowed in fiotray's settings (allowed: {allowed})."
        )
    value = value.strip()
    if not re.fullmatch(_EXTRA_OPTIONS[canonical], value):
        raise FiotrayError(f"SSH option {canonical} has an invalid value {value[:40]!r}.")
    if canonical in _NUMERIC and not 0 < int(value) < 65536:
        raise FiotrayError(f"SSH option {canonical} must be between 1 and 65535.")
    return f"{canonical}={value}"


# -- field validation ---------------------------------------------------------------


def validate_user(user: str, what: str = "SSH user") -> str:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        shown = repr(user[:40]) if isinstance(user, str) else "(not text)"
        raise FiotrayError(
            f"The {what} {shown} is invalid: use lower-case letters, digits, '_', '.', '-', "
            "starting with a letter or '_', at most 32 characters."
        )
    return user


def validate_ipv4(address: str, what: str) -> str:
    """The address in canonical dotted form; FiotrayError for anything else."""
    if not isinstance(address, str):
        raise FiotrayError(f"The {what} is not an IPv4 address.")
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise FiotrayError(f"The {what} {address[:60]!r} is not an IPv4 address.") from None
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise FiotrayError(f"The {what} {address} cannot be connected to.")
    return str(ip)


@dataclass(frozen=True)
class JumpHost:
    """A parsed ``host[:port]``: ``host`` is a DNS name, an IPv4 or a bracketed IPv6."""

    host: str
    port: int | None = None

    def spec(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def bare_host(self) -> str:
        return self.host.strip("[]")


def parse_jump_host(value: str) -> JumpHost:
    """``host``, ``host:port``, ``1.2.3.4[:port]``, ``[v6]``, ``[v6]:port`` or a bare v6."""
    what = f"SSH jump host {str(value)[:60]!r}"
    if not isinstance(value, str) or not value or len(value) > 260:
        raise FiotrayError(f"The {what} is empty or too long.")
    host, port_text = value, None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise FiotrayError(f"The {what} has an unclosed '['.")
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise FiotrayError(f"The {what} is not host or host:port.")
            port_text = rest[1:]
        try:
            host = f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise FiotrayError(f"The {what} has an invalid IPv6 address.") from None
    elif value.count(":") > 1:
        try:
            host = f"[{ipaddress.IPv6Address(value)}]"
        except ValueError:
            raise FiotrayError(f"The {what} is not a host name or address.") from None
    else:
        if ":" in value:
            host, port_text = value.split(":", 1)
        host = _validate_hostname(host, what)
    port = None
    if port_text is not None:
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
            raise FiotrayError(f"The {what} has an invalid port.")
        port = int(port_text)
    return JumpHost(host, port)


def _validate_hostname(host: str, what: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(host))
    labels = host.rstrip(".").split(".") if host else []
    if (
        not labels
        or len(host) > 253
        or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels)
        # An all-numeric name is a malformed IPv4 address, not a host name.
        or labels[-1].isdigit()
    ):
        raise FiotrayError(f"The {what} is not a valid host name or address.")
    return host.rstrip(".").lower()


def _check_path(path: str | os.PathLike[str], what: str) -> str:
    text = os.fspath(path)
    if not text or len(text) > _MAX_PATH:
        raise FiotrayError(f"The {what} path is empty or too long.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise FiotrayError(f"The {what} path contains control characters.")
    if "${" in text:
        # OpenSSH expands ${VAR} in these paths and has no escape for it.
        raise FiotrayError(f"The {what} path contains '${{', which ssh would expand.")
    return text


def _quote_config_value(text: str) -> str:
    if re.search(r"[\s\"'\\#]", text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def ssh_path_value(path: str | os.PathLike[str], what: str = "SSH file") -> str:
    """A path as an ssh config / ``-o`` value that OpenSSH reads back unchanged.

    OpenSSH expands ``%`` tokens in IdentityFile and UserKnownHostsFile (``%%`` is
    a literal ``%``) and splits values on whitespace unless quoted.
    """
    return _quote_config_value(_check_path(path, what).replace("%", "%%"))


# -- settings and targets -----------------------------------------------------------


@dataclass(frozen=True)
class SshSettings:
    """How to reach a factory's devices; stored (non-secret) with its tunnel in tunnels.json."""

    user: str = "fio"  # login on the device
    route: Route = "jump"
    jump_user: str = "fio"  # login on the VPN server
    # "jump": defaults to the server's VPN address. "public": required, the server's
    # public SSH endpoint as host or host:port.
    jump_host: str | None = None
    identity_file: str | None = None
    # Allow-listed Key=Value options only, e.g. ("ServerAliveInterval=30",).
    extra_options: tuple[str, ...] = ()

    def validated(self) -> SshSettings:
        """A copy with every field checked and normalised; FiotrayError otherwise."""
        if self.route not in ROUTES:
            raise FiotrayError(
                f"SSH route {str(self.route)[:20]!r} is unknown: use jump, direct or public."
            )
        jump_host = None
        if self.jump_host is not None and self.jump_host != "":
            jump_host = parse_jump_host(self.jump_host).spec()
        if self.route == "public" and jump_host is None:
            raise FiotrayError(
                "The public SSH route needs the VPN server's public SSH host (host or host:port)."
            )
        identity = None
        if self.identity_file:
            if not isinstance(self.identity_file, str):
                raise FiotrayError("The SSH identity file must be a path.")
            identity = _check_path(self.identity_file, "SSH identity file")
        # Settings read from JSON hold a list; a bare string would be split into letters.
        if not isinstance(self.extra_options, list | tuple):
            raise FiotrayError("SSH extra options must be a list of Key=Value texts.")
        return SshSettings(
            user=validate_user(self.user),
            route=self.route,
            jump_user=validate_user(self.jump_user, "SSH jump user"),
            jump_host=jump_host,
            identity_file=identity,
            extra_options=tuple(validate_extra_option(o) for o in self.extra_options),
        )

    def jump(self, server_address: str) -> JumpHost | None:
        """The hop for this route (settings already validated)."""
        if self.route == "direct":
            return None
        if self.route == "jump" and not self.jump_host:
            return JumpHost(server_address)
        if not self.jump_host:
            raise FiotrayError("The public SSH route needs the VPN server's public SSH host.")
        return parse_jump_host(self.jump_host)


@dataclass(frozen=True)
class SshTarget:
    factory: str
    device: str  # from the server: only ever used inside HostKeyAlias
    vpn_address: str  # the device's VPN IPv4, from wireguard-ips
    server_address: str  # the VPN server's VPN address, e.g. 10.42.42.1

    def validated(self) -> SshTarget:
        return SshTarget(
            factory=validate_factory_name(self.factory),
            device=validate_device_name(self.device),
            vpn_address=validate_ipv4(self.vpn_address, "device VPN address"),
            server_address=validate_ipv4(self.server_address, "VPN server address"),
        )


def host_key_alias(factory: str, device: str) -> str:
    """The name the device's host key is stored under in known_hosts.

    ``fiotray.<factory>.<device>`` when both are plain lower-case tokens, so VPN
    addresses reused by another device (or another factory) never share a key.
    Anything else (upper case, ';', '$', unicode, ...) becomes
    ``fiotray-h.<hint>.<hash>``: a different prefix, so no plain name can equal it,
    and a hash, so two names that only differ in a mapped character stay apart.
    """
    validate_factory_name(factory)
    validate_device_name(device)
    if _PLAIN_ALIAS_RE.fullmatch(factory) and _PLAIN_ALIAS_RE.fullmatch(device):
        return f"fiotray.{factory}.{device}"
    digest = hashlib.sha256(f"{factory}\0{device}".encode()).hexdigest()[:24]
    hint = re.sub(r"[^a-z0-9]+", "-", f"{factory}-{device}".lower()).strip("-")[:40]
    return f"fiotray-h.{hint or 'x'}.{digest}"


# -- argv ---------------------------------------------------------------------------


def _jump_spec(user: str, hop: JumpHost) -> str:
    return f"{user}@{hop.spec()}"


def ssh_argv(
    target: SshTarget,
    settings: SshSettings,
    *,
    ssh: str = "ssh",
    known_hosts: Path | None = None,
    command: Sequence[str] = (),
) -> list[str]:
    """The ssh argv that reaches ``target`` by ``settings.route``.

    Security options come first: OpenSSH keeps the first value it gets for an
    option, and the user's ~/.ssh/config is read after the command line.
    Extra options precede the ConnectTimeout default so a user's value wins.
    """
    target = target.validated()
    settings = settings.validated()
    if isinstance(command, str):
        raise FiotrayError("The remote command must be a list of arguments.")
    for arg in command:
        if not isinstance(arg, str) or "\0" in arg:
            raise FiotrayError("The remote command has an argument that is not text.")

    argv = [
        ssh,
        "-o",
        f"HostKeyAlias={host_key_alias(target.factory, target.device)}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "CheckHostIP=no",
    ]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={ssh_path_value(known_hosts, 'known_hosts')}"]
    if settings.identity_file:
        # -o IdentityFile, not -i: -i stats the path before %-expansion, so a path with
        # '%' cannot be given to -i at all.
        value = ssh_path_value(settings.identity_file, "SSH identity file")
        argv += ["-o", f"IdentityFile={value}", "-o", "IdentitiesOnly=yes"]
    for option in settings.extra_options:
        argv += ["-o", option]
    argv += ["-o", f"ConnectTimeout={DEFAULT_CONNECT_TIMEOUT}"]
    hop = settings.jump(target.server_address)
    if hop is not None:
        argv += ["-J", _jump_spec(settings.jump_user, hop)]
    argv += ["--", f"{settings.user}@{target.vpn_address}", *command]
    return argv


def ssh_command_line(argv: Sequence[str]) -> str:
    """The argv as one POSIX shell line, for "Copy SSH command"."""
    return shlex.join(argv)


# -- ssh config file ----------------------------------------------------------------


def ssh_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("fiotray")) / "ssh"


def default_ssh_config_path(factory: str | None = None) -> Path:
    """Where the generated config of ``factory`` goes: ``<config dir>/ssh/<factory>.conf``.

    One file per factory, so each is rewritten when that factory's list changes
    and `include_line` picks them all up. Without a factory: the single file
    ``<config dir>/ssh_config`` (one factory at a time; the user includes it by path).
    """
    if factory is None:
        return Path(platformdirs.user_config_dir("fiotray")) / "ssh_config"
    return ssh_config_dir() / f"{validate_factory_name(factory)}.conf"


def include_line(path: Path | None = None) -> str:
    """The line ~/.ssh/config needs, before its first Host or Match block.

    An Include inside a Host block only applies to that block. By default it
    names every factory's file (``<config dir>/ssh/*.conf``); or give one file.
    """
    text = _check_path(path if path is not None else ssh_config_dir(), "ssh config")
    # Include expands globs, and newer OpenSSH releases also %-tokens and ${VAR}:
    # such characters would mean different things to different versions.
    if re.search(r"[*?\[\]%$]", text):
        raise FiotrayError(
            "The ssh config path contains *, ?, [, ], % or $, which ssh's Include would expand."
        )
    if path is None:
        text = str(Path(text) / "*.conf")
    return f"Include {_quote_config_value(text)}"


def device_config_alias(factory: str, device: str) -> str | None:
    """``Host`` name of a device in the generated config, or None when it has none.

    Always qualified (``fiotray.<factory>.<device>``): a bare device name would let
    a device called "github.com" take over the user's ssh to that host, since our
    Include comes first and ssh uses the first value it finds.
    """
    if not _CONFIG_NAME_RE.fullmatch(device):
        return None
    return f"fiotray.{validate_factory_name(factory)}.{device}"


def jump_config_alias(factory: str, index: int) -> str:
    # "fiotray-jump." cannot collide with device aliases ("fiotray.") or key aliases.
    return f"fiotray-jump.{factory}" + (f".{index}" if index else "")


def render_ssh_config(
    factory: str,
    entries: Sequence[tuple[SshTarget, SshSettings]],
    *,
    known_hosts: Path | None = None,
    include_path: Path | None = None,
) -> str:
    """An ssh config with a Host block per device in ``entries`` (VPN-enabled devices).

    Device blocks are named ``fiotray.<factory>.<device>``. A device whose name is
    not a plain host-name token is left out, with a comment that gives only its
    (validated) VPN address. Each distinct jump hop gets its own
    ``fiotray-jump.<factory>[.N]`` block so that hop too has a per-factory host key
    alias and the identity file (every factory's server defaults to 10.42.42.1).
    Raises FiotrayError for invalid settings or an entry of another factory.
    """
    factory = validate_factory_name(factory)
    known_value = ssh_path_value(known_hosts, "known_hosts") if known_hosts else None
    lines = [
        "# Generated by fiotray: edits are lost when it rewrites this file.",
        "# To use it, put this line at the top of ~/.ssh/config (before any Host or Match):",
        f"#   {include_line(include_path)}",
        f"# Devices of factory {factory} with VPN enabled; connect with",
        f"#   ssh fiotray.{factory}.<device>",
        "",
    ]
    jumps: dict[tuple[str, JumpHost, str | None], str] = {}
    jump_blocks: list[str] = []
    device_blocks: list[str] = []

    def common(settings: SshSettings, *, hop: bool = False) -> list[str]:
        out = ["  StrictHostKeyChecking accept-new", "  CheckHostIP no"]
        if known_value:
            out.append(f"  UserKnownHostsFile {known_value}")
        if settings.identity_file:
            identity = ssh_path_value(settings.identity_file, "SSH identity file")
            out += [f"  IdentityFile {identity}", "  IdentitiesOnly yes"]
        for option in settings.extra_options:
            key, value = option.split("=", 1)
            if not (hop and key in _DEVICE_ONLY):
                out.append(f"  {key} {value}")
        return out

    for raw_target, raw_settings in entries:
        if raw_target.factory != factory:
            raise FiotrayError(
                f"An SSH config for factory {factory} cannot hold a device of another factory."
            )
        settings = raw_settings.validated()
        try:
            address = validate_ipv4(raw_target.vpn_address, "device VPN address")
            server = validate_ipv4(raw_target.server_address, "VPN server address")
        except FiotrayError:
            device_blocks += ["# Left out a device whose VPN addresses are not valid.", ""]
            continue
        alias = None
        with contextlib.suppress(FiotrayError):
            alias = device_config_alias(factory, validate_device_name(raw_target.device))
        if alias is None:
            device_blocks += [
                f"# Left out the device at {address}: its name is not a plain host name.",
                "",
            ]
            continue
        block = [
            f"Host {alias}",
            f"  HostName {address}",
            f"  User {settings.user}",
            f"  HostKeyAlias {host_key_alias(factory, raw_target.device)}",
        ]
        hop = settings.jump(server)
        if hop is not None:
            key = (settings.jump_user, hop, settings.identity_file)
            if key not in jumps:
                jump_alias = jumps[key] = jump_config_alias(factory, len(jumps))
                jump_blocks += [
                    f"Host {jump_alias}",
                    f"  HostName {hop.bare_host()}",
                    f"  User {settings.jump_user}",
                    *([f"  Port {hop.port}"] if hop.port else []),
                    f"  HostKeyAlias {jump_alias}",
                    *common(settings, hop=True),
                    "",
                ]
            block.append(f"  ProxyJump {jumps[key]}")
        device_blocks += [*block, *common(settings), ""]

    text = "\n".join(lines + jump_blocks + device_blocks).rstrip("\n") + "\n"
    # Belt and braces: every value above was validated, but nothing may slip through.
    if any((ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F for c in text):
        raise FiotrayError("The generated SSH config would contain control characters.")
    return text


def write_ssh_config(path: Path, text: str, *, own_dir: bool = True) -> None:
    """Replace ``path`` atomically with ``text``: file 0600; fiotray's own directory 0700
    (``own_dir=False`` for a place the user chose, whose mode is theirs)."""
    write_private(Path(path), text, own_dir=own_dir)


__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ROUTES",
    "JumpHost",
    "Route",
    "SshSettings",
    "SshTarget",
    "default_ssh_config_path",
    "device_config_alias",
    "host_key_alias",
    "include_line",
    "parse_jump_host",
    "render_ssh_config",
    "ssh_argv",
    "ssh_command_line",
    "ssh_config_dir",
    "ssh_path_value",
    "validate_extra_option",
    "validate_ipv4",
    "validate_user",
    "write_ssh_config",
]
