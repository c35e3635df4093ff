"""ssh argv per route, hostile device names, and the generated ssh config.

Where it matters, the real OpenSSH client checks our output: ``ssh -G`` parses a
command line or config exactly as for a connection, prints the result and exits
without connecting.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fiotray.core.errors import FiotrayError
from fiotray.core.ssh import (
    SshSettings,
    SshTarget,
    default_ssh_config_path,
    host_key_alias,
    include_line,
    render_ssh_config,
    ssh_argv,
    ssh_command_line,
    validate_extra_option,
    write_ssh_config,
)

FACTORY = "acme"
SERVER = "10.42.42.1"
TARGET = SshTarget(FACTORY, "dev1", "10.42.42.7", SERVER)
SAFE_OPTS = [
    "-o",
    "HostKeyAlias=fiotray.acme.dev1",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    "CheckHostIP=no",
]
TIMEOUT = ["-o", "ConnectTimeout=10"]

# Device names a hostile or careless registration could choose.
HOSTILE_NAMES = [
    "-oProxyCommand=touch x",
    "-oProxyCommand=touch${IFS}x",
    "-x",
    "a;touch x",
    "a;touch${IFS}x",
    "$(touch x)",
    "$(touch${IFS}x)",
    "`touch${IFS}x`",
    "a|touch${IFS}x",
    "a&&touch${IFS}x",
    "a b",
    "a\nb",
    "a\tb",
    "a\rb",
    "dev\x00",
    "\uff0doProxyCommand=touch${IFS}x",  # fullwidth hyphen-minus
    "\u2010oProxyCommand=x",  # unicode hyphen
    "\u202eevil",  # right-to-left override
    "dev\u200b1",  # zero-width space
    "x'y",
    'x"y',
    "a,b",
    "*",
    "!dev1",
    "a#b",
    "%d",
    "a\\b",
    "a/b",
    "..",
    "Dev1",
]


def ssh_bin() -> str:
    path = shutil.which("ssh")
    if path is None:
        pytest.fail("these tests need the OpenSSH client (Debian: openssh-client)", pytrace=False)
    return path


def ssh_g(args: list[str]) -> dict[str, list[str]]:
    """Run ``ssh -G`` (parse and print, no connection) and return its settings."""
    result = subprocess.run(
        [ssh_bin(), "-G", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out


def argv_via_ssh_g(argv: list[str]) -> dict[str, list[str]]:
    """What OpenSSH makes of ``argv``, with no config file read."""
    assert argv[0] == "ssh"
    return ssh_g(["-F", "none", *argv[1:]])


# -- routes -------------------------------------------------------------------------


def test_jump_route_is_the_default() -> None:
    assert ssh_argv(TARGET, SshSettings()) == [
        "ssh",
        *SAFE_OPTS,
        *TIMEOUT,
        "-J",
        "fio@10.42.42.1",
        "--",
        "fio@10.42.42.7",
    ]


def test_jump_route_with_own_hop_and_users() -> None:
    settings = SshSettings(user="root", jump_user="admin", jump_host="10.42.42.254")
    assert ssh_argv(TARGET, settings, ssh="/usr/bin/ssh") == [
        "/usr/bin/ssh",
        *SAFE_OPTS,
        *TIMEOUT,
        "-J",
        "admin@10.42.42.254",
        "--",
        "root@10.42.42.7",
    ]


def test_direct_route() -> None:
    settings = SshSettings(route="direct", jump_host="ignored.example.com")
    assert ssh_argv(TARGET, settings) == ["ssh", *SAFE_OPTS, *TIMEOUT, "--", "fio@10.42.42.7"]


@pytest.mark.parametrize(
    ("jump_host", "spec"),
    [
        ("vpn.example.com", "fio@vpn.example.com"),
        ("VPN.Example.com.", "fio@vpn.example.com"),
        ("vpn.example.com:2222", "fio@vpn.example.com:2222"),
        ("203.0.113.5:22", "fio@203.0.113.5:22"),
        ("2001:db8::1", "fio@[2001:db8::1]"),
        ("[2001:db8::1]:2200", "fio@[2001:db8::1]:2200"),
    ],
)
def test_public_route(jump_host: str, spec: str) -> None:
    settings = SshSettings(route="public", jump_host=jump_host)
    assert ssh_argv(TARGET, settings) == [
        "ssh",
        *SAFE_OPTS,
        *TIMEOUT,
        "-J",
        spec,
        "--",
        "fio@10.42.42.7",
    ]


def test_known_hosts_identity_extras_and_command(tmp_path: Path) -> None:
    settings = SshSettings(
        identity_file="~/.ssh/id_fio",
        extra_options=("serveraliveinterval=30", "ConnectTimeout=3"),
    )
    argv = ssh_argv(
        TARGET, settings, known_hosts=tmp_path / "known_hosts", command=["uptime", "-p"]
    )
    assert argv == [
        "ssh",
        *SAFE_OPTS,
        "-o",
        f"UserKnownHostsFile={tmp_path}/known_hosts",
        "-o",
        "IdentityFile=~/.ssh/id_fio",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ServerAliveInterval=30",
        "-o",
        "ConnectTimeout=3",
        *TIMEOUT,
        "-J",
        "fio@10.42.42.1",
        "--",
        "fio@10.42.42.7",
        "uptime",
        "-p",
    ]
    # OpenSSH keeps the first value: the user's ConnectTimeout beats our default.
    parsed = argv_via_ssh_g(argv)
    assert parsed["connecttimeout"] == ["3"]
    assert parsed["serveraliveinterval"] == ["30"]
    assert parsed["identitiesonly"] == ["yes"]


def test_openssh_reads_the_argv_as_meant(tmp_path: Path) -> None:
    known = tmp_path / "dir with space" / "known%hosts#1"
    argv = ssh_argv(TARGET, SshSettings(user="root"), known_hosts=known, command=["-p", "1"])
    parsed = argv_via_ssh_g(argv)
    assert parsed["hostname"] == ["10.42.42.7"]
    assert parsed["user"] == ["root"]
    assert parsed["proxyjump"] == ["fio@[10.42.42.1]"]  # how -G prints a jump address
    assert parsed["hostkeyalias"] == ["fiotray.acme.dev1"]
    assert parsed["stricthostkeychecking"] == ["accept-new"]
    assert parsed["checkhostip"] == ["no"]
    assert parsed["userknownhostsfile"] == [str(known)]
    # "-p 1" after the destination is remote command text, not ssh's port option:
    # without the "--" OpenSSH would parse options after the destination.
    assert parsed["port"] == ["22"]


def test_identity_file_with_space_percent_and_quote() -> None:
    identity = '/keys/my "odd" key%1'
    argv = ssh_argv(TARGET, SshSettings(identity_file=identity))
    assert 'IdentityFile="/keys/my \\"odd\\" key%%1"' in argv
    # ssh -G prints IdentityFile before expanding %-tokens: %% is still doubled there.
    assert '/keys/my "odd" key%%1' in argv_via_ssh_g(argv)["identityfile"]


def test_copy_ssh_command_round_trips() -> None:
    argv = ssh_argv(
        TARGET,
        SshSettings(identity_file="/k/a b"),
        known_hosts=Path("/tmp/it's"),
        command=["echo", "$HOME; x"],
    )
    line = ssh_command_line(argv)
    assert shlex.split(line) == argv
    assert "\n" not in line


# -- hostile device names -----------------------------------------------------------


def _outcome(name: str) -> list[str] | None:
    target = SshTarget(FACTORY, name, "10.42.42.9", SERVER)
    try:
        return ssh_argv(target, SshSettings())
    except FiotrayError as exc:
        assert "\n" not in str(exc)
        return None


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_device_name_never_becomes_an_option(name: str) -> None:
    argv = _outcome(name)
    if argv is None:
        return  # refused outright: fine
    assert all(name not in arg for arg in argv)
    cut = argv.index("--")
    assert argv[cut + 1 :] == ["fio@10.42.42.9"]
    options = argv[1:cut]
    # Only -o KEY=VALUE pairs and -J, with values we chose.
    for flag, value in zip(options[::2], options[1::2], strict=True):
        assert flag in ("-o", "-J")
        if flag == "-o":
            key, _, v = value.partition("=")
            assert key in {"HostKeyAlias", "StrictHostKeyChecking", "CheckHostIP", "ConnectTimeout"}
            assert re.fullmatch(r"[A-Za-z0-9._-]+", v), value
    alias = dict(o.split("=", 1) for o in options[1::2] if "=" in o)["HostKeyAlias"]
    assert not alias.startswith("-")
    parsed = argv_via_ssh_g(argv)
    assert "proxycommand" not in parsed
    assert "localcommand" not in parsed
    assert parsed["hostkeyalias"] == [alias.lower()]


def test_names_that_must_be_refused() -> None:
    for name in ["-oProxyCommand=touch x", "-x", "a b", "a\nb", "\u202eevil", "dev\u200b1", "a/b"]:
        assert _outcome(name) is None, name


def test_fake_ssh_receives_exactly_our_argv_and_nothing_runs(tmp_path: Path) -> None:
    record = tmp_path / "argv.jsonl"
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['FAKE_SSH_RECORD'], 'a') as fh:\n"
        "    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "FAKE_SSH_RECORD": str(record)}
    ran = []
    for name in HOSTILE_NAMES:
        target = SshTarget(FACTORY, name, "10.42.42.9", SERVER)
        try:
            argv = ssh_argv(target, SshSettings(), ssh=str(fake), command=["true"])
        except FiotrayError:
            continue
        subprocess.run(argv, cwd=work, env=env, check=True, timeout=30)
        ran.append(argv[1:])
    assert len(ran) >= 10  # the mapped (not refused) names really went through
    assert [json.loads(line) for line in record.read_text().splitlines()] == ran
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argv.jsonl", "bin", "work"]


# -- host key alias -----------------------------------------------------------------


def test_host_key_alias_plain_and_mapped() -> None:
    assert host_key_alias("acme", "dev1") == "fiotray.acme.dev1"
    assert host_key_alias("acme", "a.b_c-d") == "fiotray.acme.a.b_c-d"
    mapped = host_key_alias("acme", "Dev1")
    assert mapped.startswith("fiotray-h.acme-dev1.")
    # known_hosts names match case-insensitively: "Dev1" must not share dev1's key.
    assert mapped.lower() != host_key_alias("acme", "dev1")
    assert host_key_alias("acme", "Dev1") == mapped  # stable across runs
    assert host_key_alias("acme", "a;b") != host_key_alias("acme", "a|b")
    assert host_key_alias("acme", "dev1") != host_key_alias("acme2", "dev1")


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if _outcome(n) is not None])
def test_host_key_alias_is_a_plain_token(name: str) -> None:
    alias = host_key_alias(FACTORY, name)
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", alias), alias
    assert alias.startswith("fiotray-h.")


# -- refusals -----------------------------------------------------------------------


def _refused(target: SshTarget = TARGET, settings: SshSettings | None = None) -> str:
    with pytest.raises(FiotrayError) as info:
        ssh_argv(target, settings or SshSettings())
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "address",
    [
        "",
        "10.0.0.1 -oProxyCommand=x",
        "-oProxyCommand=x",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.1/32",
        "::1",
        "dev1",
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",
        "255.255.255.255",
        " 10.0.0.1",
    ],
)
def test_invalid_addresses_refused(address: str) -> None:
    _refused(SshTarget(FACTORY, "dev1", address, SERVER))
    _refused(SshTarget(FACTORY, "dev1", "10.42.42.7", address))


@pytest.mark.parametrize(
    "user", ["", "Fio", "-l", "root;x", "a b", "a@b", "a:b", "x" * 33, "1abc", "fio\n"]
)
def test_invalid_users_refused(user: str) -> None:
    _refused(settings=SshSettings(user=user))
    _refused(settings=SshSettings(jump_user=user))


@pytest.mark.parametrize(
    "host",
    [
        "-oProxyCommand=x",
        "host;x",
        "a b",
        "$(x)",
        "user@host",
        "host/x",
        "host:0",
        "host:65536",
        "host:22:33",
        "host:",
        "host:-1",
        "[::1",
        "[::1]x",
        "[nothex]",
        "-host.example.com",
        "host-.example.com",
        "1.2.3",
        "a..b",
        "h\u0435st.example.com",  # Cyrillic "e"
        "x" * 64 + ".com",
    ],
)
def test_invalid_jump_hosts_refused(host: str) -> None:
    _refused(settings=SshSettings(route="public", jump_host=host))
    _refused(settings=SshSettings(route="jump", jump_host=host))


def test_public_route_needs_a_host_and_routes_are_known() -> None:
    assert "public SSH host" in _refused(settings=SshSettings(route="public"))
    _refused(settings=SshSettings(route="proxy"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "option",
    [
        "ProxyCommand=touch x",
        "LocalCommand=touch x",
        "PermitLocalCommand=yes",
        "KnownHostsCommand=x",
        "HostKeyAlias=other",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "Include=/tmp/x",
        "ServerAliveInterval",
        "ServerAliveInterval=abc",
        "ServerAliveInterval=30 -oProxyCommand=x",
        "ServerAliveInterval=30\nProxyCommand=x",
        "Port=0",
        "Port=70000",
        "Ciphers=aes128-ctr x",
        "LogLevel=debug4",
    ],
)
def test_extra_options_outside_the_allow_list_refused(option: str) -> None:
    _refused(settings=SshSettings(extra_options=(option,)))


def test_extra_options_normalised() -> None:
    assert validate_extra_option("serveraliveinterval = 30") == "ServerAliveInterval=30"
    assert validate_extra_option("HostKeyAlgorithms=+ssh-rsa") == "HostKeyAlgorithms=+ssh-rsa"
    _refused(settings=SshSettings(extra_options="ServerAliveInterval=30"))  # type: ignore[arg-type]
    _refused(settings=SshSettings(extra_options=None))  # type: ignore[arg-type]
    _refused(settings=SshSettings(identity_file=3))  # type: ignore[arg-type]
    _refused(settings=SshSettings(user=None))  # type: ignore[arg-type]
    _refused(settings=SshSettings(route="public", jump_host=22))  # type: ignore[arg-type]
    # As read back from a JSON settings file: a list works like a tuple.
    listed = SshSettings(extra_options=["ServerAliveInterval=30"])  # type: ignore[arg-type]
    assert "ServerAliveInterval=30" in ssh_argv(TARGET, listed)


@pytest.mark.parametrize("path", ["/k/a\nb", "${HOME}/.ssh/id", "/k/\x7f"])
def test_bad_paths_refused(path: str) -> None:
    _refused(settings=SshSettings(identity_file=path))
    with pytest.raises(FiotrayError):
        ssh_argv(TARGET, SshSettings(), known_hosts=Path(path))


def test_command_must_be_a_list() -> None:
    with pytest.raises(FiotrayError):
        ssh_argv(TARGET, SshSettings(), command="rm -rf /")  # type: ignore[arg-type]


# -- ssh config ---------------------------------------------------------------------

GOLDEN = """\
# Generated by fiotray: edits are lost when it rewrites this file.
# To use it, put this line at the top of ~/.ssh/config (before any Host or Match):
#   Include "/home/u/Library/Application Support/fiotray/ssh/acme.conf"
# Devices of factory acme with VPN enabled; connect with
#   ssh fiotray.acme.<device>

Host fiotray-jump.acme
  HostName 10.42.42.1
  User fio
  HostKeyAlias fiotray-jump.acme
  StrictHostKeyChecking accept-new
  CheckHostIP no
  UserKnownHostsFile "/tmp/fio tray/known_hosts"
  IdentityFile "~/.ssh/id 1%%"
  IdentitiesOnly yes
  ServerAliveInterval 30

Host fiotray-jump.acme.1
  HostName vpn.example.com
  User ops
  Port 2222
  HostKeyAlias fiotray-jump.acme.1
  StrictHostKeyChecking accept-new
  CheckHostIP no
  UserKnownHostsFile "/tmp/fio tray/known_hosts"

Host fiotray.acme.dev1
  HostName 10.42.42.7
  User fio
  HostKeyAlias fiotray.acme.dev1
  ProxyJump fiotray-jump.acme
  StrictHostKeyChecking accept-new
  CheckHostIP no
  UserKnownHostsFile "/tmp/fio tray/known_hosts"
  IdentityFile "~/.ssh/id 1%%"
  IdentitiesOnly yes
  ServerAliveInterval 30
  Port 2200

# Left out the device at 10.42.42.8: its name is not a plain host name.

Host fiotray.acme.Dev-A
  HostName 10.42.42.9
  User root
  HostKeyAlias {dev_a_alias}
  StrictHostKeyChecking accept-new
  CheckHostIP no
  UserKnownHostsFile "/tmp/fio tray/known_hosts"

Host fiotray.acme.pub.lab
  HostName 10.42.42.10
  User fio
  HostKeyAlias fiotray.acme.pub.lab
  ProxyJump fiotray-jump.acme.1
  StrictHostKeyChecking accept-new
  CheckHostIP no
  UserKnownHostsFile "/tmp/fio tray/known_hosts"

# Left out a device whose VPN addresses are not valid.
"""


def golden_entries() -> list[tuple[SshTarget, SshSettings]]:
    jump = SshSettings(
        identity_file="~/.ssh/id 1%", extra_options=("ServerAliveInterval=30", "Port=2200")
    )
    return [
        (TARGET, jump),
        (SshTarget(FACTORY, "a;touch${IFS}x", "10.42.42.8", SERVER), SshSettings()),
        (
            SshTarget(FACTORY, "Dev-A", "10.42.42.9", SERVER),
            SshSettings(route="direct", user="root"),
        ),
        (
            SshTarget(FACTORY, "pub.lab", "10.42.42.10", SERVER),
            SshSettings(route="public", jump_user="ops", jump_host="vpn.example.com:2222"),
        ),
        (SshTarget(FACTORY, "$(touch x)", "10.42.42.11 -oProxyCommand=x", SERVER), SshSettings()),
    ]


def render_golden() -> str:
    return render_ssh_config(
        FACTORY,
        golden_entries(),
        known_hosts=Path("/tmp/fio tray/known_hosts"),
        include_path=Path("/home/u/Library/Application Support/fiotray/ssh/acme.conf"),
    )


def test_render_golden() -> None:
    expected = GOLDEN.format(dev_a_alias=host_key_alias(FACTORY, "Dev-A"))
    assert render_golden() == expected


def test_openssh_parses_the_generated_config(tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "acme.conf"
    write_ssh_config(path, render_golden())
    f = ["-F", str(path)]

    dev1 = ssh_g([*f, "fiotray.acme.dev1"])
    assert dev1["hostname"] == ["10.42.42.7"]
    assert dev1["user"] == ["fio"]
    assert dev1["port"] == ["2200"]
    assert dev1["proxyjump"] == ["fiotray-jump.acme"]
    assert dev1["hostkeyalias"] == ["fiotray.acme.dev1"]
    assert dev1["stricthostkeychecking"] == ["accept-new"]
    assert dev1["checkhostip"] == ["no"]
    assert dev1["userknownhostsfile"] == ["/tmp/fio tray/known_hosts"]
    assert "~/.ssh/id 1%%" in dev1["identityfile"]  # -G shows it before %-expansion

    hop = ssh_g([*f, "fiotray-jump.acme"])
    assert (hop["hostname"], hop["user"], hop["port"]) == (["10.42.42.1"], ["fio"], ["22"])
    assert hop["hostkeyalias"] == ["fiotray-jump.acme"]
    assert "proxyjump" not in hop

    public_hop = ssh_g([*f, "fiotray-jump.acme.1"])
    assert public_hop["hostname"] == ["vpn.example.com"]
    assert (public_hop["user"], public_hop["port"]) == (["ops"], ["2222"])
    pub = ssh_g([*f, "fiotray.acme.pub.lab"])
    assert pub["proxyjump"] == ["fiotray-jump.acme.1"]
    assert pub["hostname"] == ["10.42.42.10"]

    dev_a = ssh_g([*f, "fiotray.acme.Dev-A"])
    assert (dev_a["hostname"], dev_a["user"]) == (["10.42.42.9"], ["root"])
    assert "proxyjump" not in dev_a
    assert dev_a["hostkeyalias"] == [host_key_alias(FACTORY, "Dev-A")]

    # The skipped hostile device left nothing ssh would act on.
    for parsed in (dev1, hop, public_hop, pub, dev_a):
        assert "proxycommand" not in parsed
        assert "localcommand" not in parsed


def test_bare_device_names_do_not_take_over_real_hosts(tmp_path: Path) -> None:
    path = tmp_path / "acme.conf"
    target = SshTarget(FACTORY, "github.com", "10.42.42.7", SERVER)
    write_ssh_config(path, render_ssh_config(FACTORY, [(target, SshSettings())]))
    assert ssh_g(["-F", str(path), "github.com"])["hostname"] == ["github.com"]
    assert ssh_g(["-F", str(path), "fiotray.acme.github.com"])["hostname"] == ["10.42.42.7"]


def test_hostile_names_never_reach_the_config() -> None:
    entries = [
        (SshTarget(FACTORY, name, f"10.42.43.{i + 1}", SERVER), SshSettings())
        for i, name in enumerate(HOSTILE_NAMES)
    ]
    text = render_ssh_config(FACTORY, entries, include_path=Path("/x.conf"))
    hosts = re.findall(r"^Host (.*)$", text, flags=re.M)
    assert hosts == ["fiotray-jump.acme", "fiotray.acme.Dev1"]
    body = text.split("\n\n", 1)[1]  # after the header, which shows the Include glob
    for name in HOSTILE_NAMES:
        if name != "Dev1":
            assert name not in body
    assert text.count("# Left out the device at ") == len(HOSTILE_NAMES) - 1
    assert all(c == "\n" or (0x20 <= ord(c) < 0x7F) for c in text)


def test_config_of_another_factory_refused() -> None:
    other = SshTarget("other", "dev1", "10.42.42.7", SERVER)
    with pytest.raises(FiotrayError, match="another factory"):
        render_ssh_config(FACTORY, [(other, SshSettings())])
    with pytest.raises(FiotrayError):
        render_ssh_config(FACTORY, [(TARGET, SshSettings(extra_options=("ProxyCommand=x",)))])


def test_write_ssh_config_permissions_and_replace(tmp_path: Path) -> None:
    directory = tmp_path / "cfg" / "ssh"
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    path = directory / "acme.conf"
    write_ssh_config(path, "# one\n")
    write_ssh_config(path, "# two\n")
    assert path.read_text() == "# two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == ["acme.conf"]  # no temp file left

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FiotrayError, match="Cannot write"):
        write_ssh_config(blocker / "acme.conf", "x\n")


def test_default_path_and_include_line_work_with_openssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_home = tmp_path / "my config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    path = default_ssh_config_path(FACTORY)
    assert path == config_home / "fiotray" / "ssh" / "acme.conf"
    assert default_ssh_config_path() == config_home / "fiotray" / "ssh_config"
    line = include_line()
    assert line == f'Include "{config_home}/fiotray/ssh/*.conf"'

    write_ssh_config(path, render_ssh_config(FACTORY, [(TARGET, SshSettings())]))
    main = tmp_path / "config"
    main.write_text(f"{line}\n\nHost *\n  User nobody\n")
    parsed = ssh_g(["-F", str(main), "fiotray.acme.dev1"])
    assert parsed["hostname"] == ["10.42.42.7"]
    assert parsed["user"] == ["fio"]  # the included block comes first and wins

    assert include_line(path) == f'Include "{path}"'
    for bad in ("glob*", "a%d", "${HOME}", "a\nb"):
        with pytest.raises(FiotrayError):
            include_line(tmp_path / bad)
    with pytest.raises(FiotrayError):
        default_ssh_config_path("../x")


def test_device_with_invalid_server_address_left_out() -> None:
    bad = SshTarget(FACTORY, "dev2", "10.42.42.7", "server.example.com")
    text = render_ssh_config(FACTORY, [(bad, SshSettings())], include_path=Path("/x.conf"))
    assert "Host fiotray.acme.dev2" not in text
    assert "# Left out a device whose VPN addresses are not valid." in text


def test_write_ssh_config_leaves_a_chosen_directory_alone(tmp_path: Path) -> None:
    chosen = tmp_path / "shared"
    chosen.mkdir(mode=0o755)
    chosen.chmod(0o1777)  # like /tmp: fiotray must never tighten it
    write_ssh_config(chosen / "acme.conf", "# x\n", own_dir=False)
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o1777
    assert stat.S_IMODE((chosen / "acme.conf").stat().st_mode) == 0o600
