"""The privileged helper through REAL pkexec and polkit, as the unprivileged user fiotray-t.

Tunnels are brought up with the real wg-quick and wireguard-go inside network
namespaces this file creates (``fiotray-h-<hex>``), so nothing changes on the
machine's own network. pkexec reaches the system bus by its socket path, which
works from inside a namespace.

Two facts the tests rely on and show:
- records in /run/fiotray are machine-wide while interfaces live in a
  namespace: `status` run outside the namespace lists the tunnel with
  ``exists: false``;
- ownership: a tunnel brought up by root directly (no PKEXEC_UID) belongs to
  uid 0 and the user cannot take it down (exit 3); root can take down anyone's.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import importlib.util
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from fiotray.core.tunnels import _interface
from fiotray.helper import fiotray_helper as h
from fiotray.helper import install
from fiotray.wg.config import parse_config, render_config
from fiotray.wg.tools import STOP_GRACE, find_tool
from tests.polkit_session import PolkitSession, require_binary
from tests.system_user import SystemUser, temporary_user

pytestmark = pytest.mark.real

RUN_DIR = Path(h.RUNTIME_DIR)
SYS_NET = Path(h.SYS_CLASS_NET)


def keypair() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    return private.decode(), public.decode()


def make_conf(private: str, peer: str, *, extra: str = "", net: int = 77) -> str:
    """A client config in 10.<net>.0.0/24 (two tunnels in one namespace need two nets)."""
    return (
        "# written by test_helper_real\n"
        f"[Interface]\nPrivateKey = {private}\nAddress = 10.{net}.0.2/24\n{extra}"
        f"[Peer]\nPublicKey = {peer}\nEndpoint = 127.0.0.1:51820\n"
        f"AllowedIPs = 10.{net}.0.0/24\nPersistentKeepalive = 25\n"
    )


def runtime_listing() -> set[str] | None:
    try:
        return set(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return None


def wireguard_go_pids(ifname: str) -> list[int]:
    """Live wireguard-go daemons serving ifname (zombies have an empty cmdline)."""
    wanted = f"wireguard-go\0{ifname}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    pids.append(int(entry))
    return pids


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@dataclass
class Sandbox:
    """A network namespace and the interface names used in it; all removed at the end."""

    netns: str
    ifnames: list[str] = field(default_factory=list)

    def new_ifname(self) -> str:
        # Unique on the machine: wireguard-go's socket path is not per namespace.
        name = f"fth{secrets.token_hex(4)}"
        self.ifnames.append(name)
        return name

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, "ip", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )

    def has_link(self, ifname: str) -> bool:
        return self.ip("link", "show", "dev", ifname).returncode == 0

    def cleanup(self) -> None:
        for ifname in self.ifnames:
            self.ip("link", "delete", "dev", ifname)  # wireguard-go exits when its tun goes
            if not wait_for(lambda n=ifname: not wireguard_go_pids(n), 3.0):
                for pid in wireguard_go_pids(ifname):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(FileNotFoundError):
                Path(f"/var/run/wireguard/{ifname}.sock").unlink()
            for suffix in (".conf", ".json", ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    (RUN_DIR / f"{ifname}{suffix}").unlink()
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def wireguard_tools() -> None:
    for binary, package in (("wg-quick", "wireguard-tools"), ("wg", "wireguard-tools")):
        if find_tool(binary) is None:
            pytest.fail(f"{binary} not found: install the Debian package {package}", pytrace=False)
    if find_tool("wireguard-go") is None and not Path("/sys/module/wireguard").exists():
        pytest.fail("no WireGuard: install the Debian package wireguard-go", pytrace=False)
    require_binary("ip")


@pytest.fixture
def pk(polkit: PolkitSession) -> PolkitSession:
    polkit.set_mode("allow")
    return polkit


@pytest.fixture
def sandbox(wireguard_tools: None) -> Iterator[Sandbox]:
    box = Sandbox(f"fiotray-h-{secrets.token_hex(4)}")
    subprocess.run(["ip", "netns", "add", box.netns], check=True, capture_output=True, timeout=10)
    try:
        yield box
    finally:
        box.cleanup()


def assert_refused(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("fiotray-helper: "), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert words in proc.stderr, proc.stderr
    assert proc.stdout == ""


def status_of(proc: subprocess.CompletedProcess[str], ifname: str) -> dict | None:
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1
    return next((i for i in doc["interfaces"] if i["name"] == ifname), None)


# --------------------------------------------------------------------------- refusals

PRIV, PUB = keypair()
_, PEER = keypair()
GOOD = make_conf(PRIV, PEER)

REFUSED: list[tuple[str, list[str], bytes, str]] = [
    ("PostUp", ["up", "fthref"], make_conf(PRIV, PEER, extra="PostUp = touch /x\n").encode(),
     "PostUp is not allowed: it would run shell commands as root"),
    ("PreDown", ["up", "fthref"], make_conf(PRIV, PEER, extra="PreDown = id\n").encode(),
     "PreDown is not allowed"),
    ("Table", ["up", "fthref"], make_conf(PRIV, PEER, extra="Table = off\n").encode(),
     "Table is not allowed"),
    ("SaveConfig", ["up", "fthref"], make_conf(PRIV, PEER, extra="SaveConfig = true\n").encode(),
     "SaveConfig is not allowed"),
    ("FwMark", ["up", "fthref"], make_conf(PRIV, PEER, extra="FwMark = 51820\n").encode(),
     "FwMark is not allowed"),
    ("unknown key", ["up", "fthref"], make_conf(PRIV, PEER, extra="Foo = 1\n").encode(),
     "unknown key 'Foo'"),
    ("name ../etc", ["up", "../etc"], GOOD.encode(), "invalid interface name"),
    ("name a;b", ["up", "a;b"], GOOD.encode(), "invalid interface name"),
    ("name 16 chars", ["up", "a" * 16], GOOD.encode(), "invalid interface name"),
    ("down ../etc", ["down", "../etc"], b"", "invalid interface name"),
    ("oversized", ["up", "fthref"], GOOD.encode() + b"#" * (64 * 1024), "larger than 64 KiB"),
    ("NUL byte", ["up", "fthref"], GOOD.replace("[Peer]", "[Peer]\0").encode(), "NUL byte"),
    ("invalid key", ["up", "fthref"], GOOD.replace(PEER, "abc=").encode(),
     "PublicKey is not a valid WireGuard key"),
    ("invalid address", ["up", "fthref"], GOOD.replace("10.77.0.2/24", "10.77.0.300/24").encode(),
     "Address must be"),
    ("no prefix", ["up", "fthref"], GOOD.replace("10.77.0.2/24", "10.77.0.2").encode(),
     "prefix length"),
    ("not UTF-8", ["up", "fthref"], GOOD.encode() + b"# \xff\n", "not valid UTF-8"),
    ("usage", ["status", "--all"], b"", "usage: fiotray-helper"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "data", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refusals_through_pkexec(
    pk: PolkitSession, args: list[str], data: bytes, words: str
) -> None:
    links_before = set(os.listdir(SYS_NET))
    files_before = runtime_listing()
    proc = pk.run_as_user(args, input=data)
    assert_refused(proc, 2, words)
    assert PRIV not in proc.stderr
    assert set(os.listdir(SYS_NET)) == links_before  # nothing ran
    assert runtime_listing() == files_before  # nothing written
    assert not wireguard_go_pids("fthref")


def test_unknown_command_stopped_by_polkit(pk: PolkitSession) -> None:
    # No action has argv1 "rm": pkexec falls back to its generic action (admin password).
    proc = pk.run_as_user(["rm", "-rf", "/"])
    assert proc.returncode == 127
    assert "No authentication agent found" in proc.stderr


def test_up_refused_when_not_root(pk: PolkitSession) -> None:
    proc = pk.user.run(
        [str(pk.helper_path), "up", "fthref"],
        input=GOOD.encode(),
        capture_output=True,
        env=pk.user.env(),
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "fiotray-helper: must run as root: start it through pkexec (fiotray does this itself)\n"
    )


# --------------------------------------------------------------------------- polkit answers


def test_status_answers_json_without_prompt(pk: PolkitSession) -> None:
    before = runtime_listing()
    proc = pk.run_as_user(["status"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and isinstance(doc["interfaces"], list)
    assert runtime_listing() == before  # read-only


def test_polkit_deny_and_no_agent_give_127(pk: PolkitSession) -> None:
    links_before = set(os.listdir(SYS_NET))
    files_before = runtime_listing()
    try:
        pk.set_mode("deny")
        for args, data in ((["status"], b""), (["up", "fthdeny"], GOOD.encode())):
            proc = pk.run_as_user(args, input=data)
            assert proc.returncode == 127, proc.stderr
            assert "Not authorized" in proc.stderr
        pk.set_mode("auth")
        proc = pk.run_as_user(["down", "fthdeny"])
        assert proc.returncode == 127
        assert "No authentication agent found" in proc.stderr
    finally:
        pk.set_mode("allow")
    assert set(os.listdir(SYS_NET)) == links_before
    assert runtime_listing() == files_before


def test_policy_as_polkit_sees_it(pk: PolkitSession) -> None:
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.fail("xmllint not found: install the Debian package libxml2-utils", pytrace=False)
    dtd = Path("/usr/share/polkit-1/policyconfig-1.dtd")
    lint = [xmllint, "--noout", *(["--dtdvalid", str(dtd)] if dtd.exists() else [])]
    proc = subprocess.run([*lint, str(pk.policy_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    expected = {
        "connect": ("up", "auth_admin", "auth_admin", "auth_admin_keep"),
        "disconnect": ("down", "auth_admin", "auth_admin", "auth_admin_keep"),
        "status": ("status", "no", "no", "yes"),
    }
    for action, (argv1, any_, inactive, active) in expected.items():
        proc = subprocess.run(
            ["pkaction", "--verbose", "--action-id", f"io.foundries.fiotray.{action}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert f"implicit any:      {any_}\n" in out
        assert f"implicit inactive: {inactive}\n" in out
        assert f"implicit active:   {active}\n" in out
        assert f"org.freedesktop.policykit.exec.path -> {pk.helper_path}\n" in out
        assert f"org.freedesktop.policykit.exec.argv1 -> {argv1}\n" in out


def test_group_rule_lets_group_members_in(pk: PolkitSession, device_user: SystemUser) -> None:
    """The optional 49-fiotray-group.rules, with a user the test rule does not cover."""
    rule = Path("/") / install.GROUP_RULE_REL
    # One installed on this machine is put back by the polkit fixture at the end.
    rule.unlink(missing_ok=True)
    made_group = False
    try:
        grp.getgrnam("fiotray")
    except KeyError:
        subprocess.run(["groupadd", "--system", "fiotray"], check=True, capture_output=True)
        made_group = True
    subject = subprocess.Popen(
        ["sleep", "infinity"], user=device_user.uid, group=device_user.gid, extra_groups=[]
    )

    def answers() -> list[int]:
        return [
            subprocess.run(
                [
                    "pkcheck",
                    "--action-id",
                    f"io.foundries.fiotray.{a}",
                    "--process",
                    str(subject.pid),
                ],
                capture_output=True,
                timeout=10,
            ).returncode
            for a in ("connect", "disconnect", "status")
        ]

    try:
        assert answers() == [2, 2, 1]  # the policy's allow_any: auth_admin, auth_admin, no
        subprocess.run(["usermod", "--append", "--groups", "fiotray", device_user.name], check=True)
        install.install(group_rule=True)
        assert rule.stat().st_mode & 0o777 == 0o644
        assert wait_for(lambda: answers() == [0, 0, 0], 15), answers()
        proc = subprocess.run(
            ["runuser", "-u", device_user.name, "--", "pkexec", "--disable-internal-agent",
             str(pk.helper_path), "status"],
            capture_output=True, text=True, timeout=30, start_new_session=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    finally:
        with contextlib.suppress(FileNotFoundError):
            rule.unlink()
        subprocess.run(["gpasswd", "--delete", device_user.name, "fiotray"], capture_output=True)
        if made_group:
            subprocess.run(["groupdel", "fiotray"], capture_output=True)
        back_to_policy = wait_for(lambda: answers() == [2, 2, 1], 15)
        subject.kill()
        subject.wait()
    assert back_to_policy, "polkitd still answers by the removed group rule"


# --------------------------------------------------------------------------- real tunnels


def test_up_status_down_in_a_namespace(pk: PolkitSession, sandbox: Sandbox) -> None:
    ifname = sandbox.new_ifname()
    private, public = keypair()
    _, peer = keypair()
    conf = make_conf(private, peer)
    proc = pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    assert sandbox.has_link(ifname)
    assert ifname not in os.listdir(SYS_NET)  # only inside the namespace
    assert wireguard_go_pids(ifname)

    conf_file, record_file = RUN_DIR / f"{ifname}.conf", RUN_DIR / f"{ifname}.json"
    st = RUN_DIR.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    assert stat.S_IMODE(conf_file.stat().st_mode) == 0o600
    assert conf_file.read_text() == render_config(parse_config(conf))
    record = json.loads(record_file.read_text())
    assert record["uid"] == pk.user.uid and abs(record["created"] - time.time()) < 60

    entry = status_of(pk.run_as_user(["status"], netns=sandbox.netns), ifname)
    assert entry is not None
    assert entry["exists"] is True and entry["owner_uid"] == pk.user.uid
    assert entry["public_key"] == public and entry["listen_port"] > 0
    assert entry["peers"] == [
        {
            "public_key": peer,
            "endpoint": "127.0.0.1:51820",
            "allowed_ips": ["10.77.0.0/24"],
            "latest_handshake": 0,
            "rx_bytes": entry["peers"][0]["rx_bytes"],
            "tx_bytes": entry["peers"][0]["tx_bytes"],
            "persistent_keepalive": 25,
        }
    ]
    outside = pk.run_as_user(["status"])
    assert private not in outside.stdout
    assert status_of(outside, ifname)["exists"] is False  # type: ignore[index]

    again = pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns)
    assert_refused(again, 3, f"interface {ifname} already exists")
    assert conf_file.exists() and record_file.exists()

    proc = pk.run_as_user(["down", ifname], netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    assert not sandbox.has_link(ifname)
    assert not conf_file.exists() and not record_file.exists()
    assert wait_for(lambda: not wireguard_go_pids(ifname)), "wireguard-go still running"
    assert status_of(pk.run_as_user(["status"], netns=sandbox.netns), ifname) is None


def test_interfaces_that_are_not_ours(pk: PolkitSession, sandbox: Sandbox) -> None:
    ifname = sandbox.new_ifname()
    assert (
        sandbox.ip("link", "add", ifname, "type", "veth", "peer", "name", ifname + "p").returncode
        == 0
    )
    files_before = runtime_listing()

    proc = pk.run_as_user(["down", ifname], netns=sandbox.netns)
    assert_refused(proc, 3, f"{ifname} was not brought up by fiotray")
    proc = pk.run_as_user(["up", ifname], input=GOOD, netns=sandbox.netns)
    assert_refused(proc, 3, f"interface {ifname} already exists")
    assert sandbox.has_link(ifname)
    assert runtime_listing() == files_before


def test_ownership_between_user_and_root(pk: PolkitSession, sandbox: Sandbox) -> None:
    mine, roots = sandbox.new_ifname(), sandbox.new_ifname()
    _, peer = keypair()
    proc = pk.run_as_user(["up", mine], input=make_conf(keypair()[0], peer), netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    conf = make_conf(keypair()[0], peer, net=78)
    proc = pk.run_as_root(["up", roots], input=conf, netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((RUN_DIR / f"{roots}.json").read_text())["uid"] == 0

    proc = pk.run_as_user(["down", roots], netns=sandbox.netns)
    assert_refused(proc, 3, f"{roots} belongs to uid 0, not to uid {pk.user.uid}")
    assert sandbox.has_link(roots)

    for name in (mine, roots):  # root may take down anybody's tunnel
        proc = pk.run_as_root(["down", name], netns=sandbox.netns)
        assert proc.returncode == 0, proc.stderr
        assert not sandbox.has_link(name)


def test_leftover_records_and_vanished_interfaces(pk: PolkitSession, sandbox: Sandbox) -> None:
    ifname = sandbox.new_ifname()
    _, peer = keypair()
    conf = make_conf(keypair()[0], peer)
    assert pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns).returncode == 0
    sandbox.ip("link", "delete", "dev", ifname)  # gone behind fiotray's back

    entry = status_of(pk.run_as_user(["status"], netns=sandbox.netns), ifname)
    assert entry is not None and entry["exists"] is False and entry["peers"] == []

    # up again: the stale record is replaced
    proc = pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    sandbox.ip("link", "delete", "dev", ifname)

    proc = pk.run_as_user(["down", ifname], netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{ifname} was already gone; its record was removed\n"
    assert not (RUN_DIR / f"{ifname}.json").exists()
    assert not (RUN_DIR / f"{ifname}.conf").exists()


def ifindex_in(sandbox: Sandbox, ifname: str) -> int:
    proc = subprocess.run(
        ["ip", "netns", "exec", sandbox.netns, "cat", f"/sys/class/net/{ifname}/ifindex"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return int(proc.stdout)


def root_in(sandbox: Sandbox, *argv: str, stdin: str | None = None) -> None:
    """Root acting by hand in the namespace, outside fiotray (as wg-quick itself would)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
        "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", sandbox.netns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        start_new_session=True,
    )
    assert proc.returncode == 0, (argv, proc.stderr)


def replace_outside_fiotray(sandbox: Sandbox, ifname: str, kind: str, conf: str, tmp: Path) -> None:
    """Delete fiotray's ifname as root and make another interface under the same name."""
    old_index = ifindex_in(sandbox, ifname)
    root_in(sandbox, "ip", "link", "delete", "dev", ifname)
    assert wait_for(lambda: not wireguard_go_pids(ifname)), "wireguard-go outlived its tun"
    if kind in ("another key", "older record"):
        root_in(sandbox, "wireguard-go", ifname)
        key_file = tmp / "root.key"
        key_file.write_text(keypair()[0] + "\n")
        root_in(sandbox, "wg", "set", ifname, "private-key", str(key_file))
        root_in(sandbox, "ip", "link", "set", ifname, "up")
    elif kind == "same ifindex":
        # Not WireGuard at all, and given fiotray's old ifindex on purpose: only the key
        # tells it apart.
        root_in(sandbox, "ip", "link", "add", ifname, "index", str(old_index), "type", "veth",
                "peer", "name", f"{ifname}p")  # fmt: skip
        assert ifindex_in(sandbox, ifname) == old_index
    elif kind == "same key":
        # Root brings up a copy of the very config by hand: same key, new ifindex.
        copy = tmp / f"{ifname}.conf"
        copy.write_text(render_config(parse_config(conf)))
        copy.chmod(0o600)
        root_in(sandbox, "wg-quick", "up", str(copy))
    else:
        raise AssertionError(kind)
    assert sandbox.has_link(ifname)


@pytest.mark.parametrize("kind", ["another key", "same ifindex", "same key", "older record"])
def test_a_record_is_tied_to_the_interface_it_describes(
    pk: PolkitSession, sandbox: Sandbox, kind: str, tmp_path: Path
) -> None:
    """The user's tunnel is deleted outside fiotray and root makes its own under that name."""
    ifname = sandbox.new_ifname()
    private, public = keypair()
    conf = make_conf(private, keypair()[1])
    assert pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns).returncode == 0
    record_file = RUN_DIR / f"{ifname}.json"
    if kind == "older record":
        # As a helper from before identities were recorded wrote it: the key comes from the
        # config beside it, so the tunnel is still the user's...
        record_file.write_text(json.dumps({"uid": pk.user.uid, "created": int(time.time())}))
        entry = status_of(pk.run_as_user(["status"], netns=sandbox.netns), ifname)
        assert entry is not None and entry["exists"] is True and entry["public_key"] == public

    replace_outside_fiotray(sandbox, ifname, kind, conf, tmp_path)

    entry = status_of(pk.run_as_user(["status"], netns=sandbox.netns), ifname)
    assert entry is None, f"status claims root's {ifname} as the user's: {entry}"
    proc = pk.run_as_user(["down", ifname], netns=sandbox.netns)
    assert_refused(proc, 3, f"{ifname} was not brought up by fiotray: the one fiotray made was")
    assert sandbox.has_link(ifname), "the user's down took root's interface down"
    assert not record_file.exists() and not (RUN_DIR / f"{ifname}.conf").exists()
    # With the stale record gone it is plainly somebody else's interface.
    proc = pk.run_as_user(["down", ifname], netns=sandbox.netns)
    assert_refused(proc, 3, f"{ifname} was not brought up by fiotray")
    assert sandbox.has_link(ifname)


def test_wg_quick_failure_removes_everything(pk: PolkitSession, sandbox: Sandbox) -> None:
    first, second = sandbox.new_ifname(), sandbox.new_ifname()
    _, peer = keypair()
    conf = make_conf(keypair()[0], peer)
    assert pk.run_as_user(["up", first], input=conf, netns=sandbox.netns).returncode == 0
    # The second routes the first's network: wg-quick's `ip route add` fails with EEXIST,
    # after the interface exists. (Not a clashing ListenPort: wireguard-go binds it only
    # once the link is up, asynchronously, so that failure may or may not reach wg-quick.)
    private = keypair()[0]
    conf2 = make_conf(private, peer, net=78).replace(
        "AllowedIPs = 10.78.0.0/24", "AllowedIPs = 10.77.0.0/24"
    )
    proc = pk.run_as_user(["up", second], input=conf2, netns=sandbox.netns)
    assert_refused(proc, 5, f"wg-quick up {second} failed (exit ")
    assert "File exists" in proc.stderr
    assert private not in proc.stderr
    assert not sandbox.has_link(second)
    assert not (RUN_DIR / f"{second}.conf").exists()
    assert not (RUN_DIR / f"{second}.json").exists()
    assert wait_for(lambda: not wireguard_go_pids(second))
    assert pk.run_as_user(["down", first], netns=sandbox.netns).returncode == 0


HANGING_HOST = "hangs.fiotray.test"
# How long a helper call that has nothing to wait for may take here (pkexec, wg-quick and
# wireguard-go on a loaded 2-core machine take ~1 s).
PROMPT = 10.0


@contextlib.contextmanager
def silent_dns(sandbox: Sandbox) -> Iterator[None]:
    """Name resolution in the namespace that never answers: a DNS server on the namespace's
    loopback that reads every query and replies to none (so each lookup waits out the
    resolver's timeout, and wg keeps retrying, well past the helper's WG_QUICK_TIMEOUT)."""
    etc = Path("/etc/netns") / sandbox.netns
    etc.mkdir(parents=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:3\n")
    sandbox.ip("link", "set", "lo", "up")
    server = subprocess.Popen(
        ["ip", "netns", "exec", sandbox.netns, sys.executable, "-c",
         "import socket, sys\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "s.bind(('127.0.0.1', 53))\n"
         "print('ready', flush=True)\n"
         "while True:\n"
         "    s.recv(4096)\n"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(etc)


def run_promptly(
    pk: PolkitSession, args: list[str], what: str, **kwargs
) -> subprocess.CompletedProcess[str]:
    try:
        return pk.run_as_user(args, timeout=PROMPT, **kwargs)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{what} did not finish in {PROMPT:g} s: it waited for the stuck up", pytrace=False
        )


def test_a_stuck_up_holds_up_only_its_own_interface(pk: PolkitSession, sandbox: Sandbox) -> None:
    stuck, other = sandbox.new_ifname(), sandbox.new_ifname()
    peer = keypair()[1]
    stuck_conf = make_conf(keypair()[0], peer).replace(
        "Endpoint = 127.0.0.1:51820", f"Endpoint = {HANGING_HOST}:51820"
    )
    with silent_dns(sandbox), ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            pk.run_as_user, ["up", stuck], input=stuck_conf, netns=sandbox.netns, timeout=120
        )
        # wg-quick has made the interface and now waits on the name, inside the helper's lock.
        assert wait_for(lambda: sandbox.has_link(stuck) or pending.done(), 20)
        assert not pending.done(), pending.result()

        proc = run_promptly(
            pk, ["up", other], "up of another interface",
            input=make_conf(keypair()[0], peer, net=78), netns=sandbox.netns,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        shown = run_promptly(pk, ["status"], "status", netns=sandbox.netns)
        entry = status_of(shown, other)
        assert entry is not None and entry["exists"] is True
        # The half-made one is reported as the user's, without detail, while it is made.
        half = status_of(shown, stuck)
        assert half is not None and half["exists"] is True and half["peers"] == []
        assert not pending.done(), "the stuck up finished early: the test proved nothing"

        stuck_proc = pending.result(timeout=h.WG_QUICK_TIMEOUT + 4 * STOP_GRACE + 30)
    assert_refused(
        stuck_proc, 5, f"wg-quick up {stuck} failed (timed out after {h.WG_QUICK_TIMEOUT:g} s)"
    )
    assert not sandbox.has_link(stuck), "the half-made interface was left behind"
    assert not (RUN_DIR / f"{stuck}.json").exists() and not (RUN_DIR / f"{stuck}.conf").exists()
    assert wait_for(lambda: not wireguard_go_pids(stuck))
    assert pk.run_as_user(["down", other], netns=sandbox.netns).returncode == 0


# --------------------------------------------------------------------------- between users


def test_privileged_listen_port_is_for_root_only(pk: PolkitSession, sandbox: Sandbox) -> None:
    ifname = sandbox.new_ifname()
    conf = make_conf(keypair()[0], PEER, extra="ListenPort = 1023\n")
    files_before = runtime_listing()
    proc = pk.run_as_user(["up", ifname], input=conf, netns=sandbox.netns)
    assert_refused(proc, 2, "ListenPort 1023 is a privileged port (below 1024): only root may")
    assert not sandbox.has_link(ifname) and runtime_listing() == files_before

    unprivileged = conf.replace("ListenPort = 1023", "ListenPort = 1024")
    proc = pk.run_as_user(["up", ifname], input=unprivileged, netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    assert pk.run_as_user(["down", ifname], netns=sandbox.netns).returncode == 0

    proc = pk.run_as_root(["up", ifname], input=conf, netns=sandbox.netns)
    assert proc.returncode == 0, proc.stderr
    entry = status_of(pk.run_as_root(["status"], netns=sandbox.netns), ifname)
    assert entry is not None and entry["listen_port"] == 1023
    assert pk.run_as_root(["down", ifname], netns=sandbox.netns).returncode == 0


@pytest.fixture(scope="module")
def other_user() -> Iterator[SystemUser]:
    """A second engineer on the same laptop."""
    with temporary_user("fiotray-o") as user:
        yield user


def test_status_shows_another_users_tunnel_by_name_only(
    pk: PolkitSession, sandbox: Sandbox, other_user: SystemUser
) -> None:
    mine, theirs = sandbox.new_ifname(), sandbox.new_ifname()
    my_peer, their_peer = keypair()[1], keypair()[1]
    my_private, my_public = keypair()
    their_private, their_public = keypair()
    with pk.allow_also(other_user):
        proc = pk.run_as_user(["up", mine], input=make_conf(my_private, my_peer),
                              netns=sandbox.netns)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        proc = pk.run_as(other_user, ["up", theirs], input=make_conf(their_private, their_peer,
                         net=78), netns=sandbox.netns)  # fmt: skip
        assert proc.returncode == 0, proc.stderr

        views = {
            "user": pk.run_as_user(["status"], netns=sandbox.netns),
            "other": pk.run_as(other_user, ["status"], netns=sandbox.netns),
            "root": pk.run_as_root(["status"], netns=sandbox.netns),
        }
        for who, own, own_public, own_peer, others, other_public, other_peer in (
            ("user", mine, my_public, my_peer, theirs, their_public, their_peer),
            ("other", theirs, their_public, their_peer, mine, my_public, my_peer),
        ):
            view = views[who]
            # Nothing of the other's tunnel but its name: not its key, nor its server's.
            assert other_public not in view.stdout and other_peer not in view.stdout, who
            entry = status_of(view, own)
            assert entry is not None and entry["mine"] is True and entry["exists"] is True
            assert entry["public_key"] == own_public
            assert [p["public_key"] for p in entry["peers"]] == [own_peer]
            # Of the other's tunnel: that it is up, and nothing else.
            assert status_of(view, others) == {"name": others, "exists": True, "mine": False}
        for name, peer in ((mine, my_peer), (theirs, their_peer)):
            entry = status_of(views["root"], name)
            assert entry is not None and entry["mine"] is False  # root sees all, in full
            assert [p["public_key"] for p in entry["peers"]] == [peer]
        assert status_of(views["root"], mine)["owner_uid"] == pk.user.uid  # type: ignore[index]
        # The app reads the other's entry as another user's tunnel, not as its own.
        infos = {i["name"]: _interface(i) for i in json.loads(views["user"].stdout)["interfaces"]}
        assert infos[mine].mine is True and infos[theirs].mine is False

        assert pk.run_as_user(["down", mine], netns=sandbox.netns).returncode == 0
        assert pk.run_as(other_user, ["down", theirs], netns=sandbox.netns).returncode == 0


# --------------------------------------------------------------------------- installer


def test_install_into_a_prefix_and_uninstall(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the installer test needs root (CI runs as root)", pytrace=False)
    paths = install.install(tmp_path, group_rule=True)
    helper = tmp_path / "usr/libexec/fiotray/fiotray-helper"
    policy = tmp_path / "usr/share/polkit-1/actions/io.foundries.fiotray.policy"
    rule = tmp_path / "etc/polkit-1/rules.d/49-fiotray-group.rules"
    module = helper.parent / "fiotray/helper/fiotray_helper.py"
    config = helper.parent / "fiotray/wg/config.py"
    modules = [tmp_path / rel for rel, _data in install.module_files()]
    assert module in modules and config in modules
    caches = [Path(importlib.util.cache_from_source(str(m))) for m in modules]
    pairs = [p for pair in zip(modules, caches, strict=True) for p in pair]
    assert paths == [helper, *pairs, policy, rule]
    dirs = {p.parent for p in modules + caches}
    assert helper.parent / "fiotray/wg/__pycache__" in dirs
    for path, mode in (
        (helper, 0o755),
        (helper.parent, 0o755),
        *((d, 0o755) for d in dirs),
        *((m, 0o644) for m in modules + caches),
        (policy, 0o644),
        (rule, 0o644),
    ):
        st = path.lstat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, 0, 0), path
    assert module.read_bytes() == Path(h.__file__).read_bytes()
    assert config.read_bytes() == (install.WG_SOURCE / "config.py").read_bytes()
    # The app's package __init__ stays out of root's path: the installed one is empty.
    assert (helper.parent / "fiotray/__init__.py").read_bytes() == b""
    # The launcher imports the module beside it, with its compiled cache (start-up time).
    assert helper.read_bytes().startswith(b"#!/usr/bin/python3 -IS\n")
    assert not list(helper.parent.glob(".*"))  # no temp files left
    # The installed helper runs as its own program (isolated, stdlib only).
    proc = subprocess.run([str(helper), "bogus"], capture_output=True, text=True, env={})
    assert (proc.returncode, proc.stderr) == (2, f"fiotray-helper: {h.USAGE}\n")

    proc = subprocess.run(
        [sys.executable, "-m", "fiotray.helper.install", "--uninstall", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert not helper.exists() and not helper.parent.exists(), sorted(tmp_path.rglob("*"))
    assert not policy.exists() and not rule.exists()
