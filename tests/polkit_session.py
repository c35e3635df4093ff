"""pytest plugin: the real polkit, with fiotray's helper and policy installed.

Fixture
-------
``polkit`` (session scope, needs ``app_user``)
    Makes sure the system D-Bus answers on /run/dbus/system_bus_socket and
    that polkitd owns ``org.freedesktop.PolicyKit1`` (starting either only when
    missing, and remembering that), installs the helper and the policy into the
    real ``/`` with ``fiotray.helper.install.install()``, and writes a test rule
    ``/etc/polkit-1/rules.d/48-fiotray-test.rules`` that answers the three
    fiotray actions for the test user ``fiotray-t``. Yields a ``PolkitSession``:

    - ``helper_path``: the installed helper (/usr/libexec/fiotray/fiotray-helper)
    - ``user``: the ``SystemUser`` the rule is for
    - ``mode`` / ``set_mode("allow" | "deny" | "auth")``: rewrite the rule to
      YES / NO / AUTH_ADMIN and wait until polkitd answers accordingly (with
      ``--disable-internal-agent`` and no agent, "auth" makes pkexec exit 127
      "No authentication agent found"; "deny" exits 127 "Not authorized")
    - ``check(action_id) -> int``: pkcheck's answer for the user (0 yes,
      1 no, 2 authentication needed)
    - ``run_as_user(args, input=..., netns=None, timeout=...)``: runs
      ``pkexec --disable-internal-agent <helper> *args`` as the user (runuser),
      optionally inside ``ip netns exec NETNS``; a CompletedProcess with str
      stdout/stderr (input may be bytes or str)
    - ``run_as_root(args, input=..., netns=None)``: the helper called directly
      by root, with the reduced environment pkexec would give

    At the end the rule is removed, the helper and policy uninstalled (files
    that were there before the session are put back), and only the daemons
    this fixture started are stopped, by PID.

Needs the Debian packages dbus, polkitd and pkexec and root; without them the
fixture fails (a skip would hide a broken CI setup). pkexec only talks to the
real system bus, so sessions using this must not run in parallel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fiotray.helper import fiotray_helper
from fiotray.helper import install as helper_install
from tests.procs import stop, stop_pids
from tests.system_user import SystemUser

SYSTEM_BUS_SOCKET = Path("/run/dbus/system_bus_socket")
SYSTEM_BUS_ADDRESS = f"unix:path={SYSTEM_BUS_SOCKET}"
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKITD = "/usr/lib/polkit-1/polkitd"
TEST_RULE = Path("/etc/polkit-1/rules.d/48-fiotray-test.rules")
ACTIONS = (
    "io.foundries.fiotray.connect",
    "io.foundries.fiotray.disconnect",
    "io.foundries.fiotray.status",
)
# mode -> (what the rule returns, what pkcheck then answers)
MODES = {
    "allow": ("polkit.Result.YES", 0),
    "deny": ("polkit.Result.NO", 1),
    "auth": ("polkit.Result.AUTH_ADMIN", 2),
}
START_TIMEOUT = 15.0
RELOAD_TIMEOUT = 15.0  # polkitd reloads rules by itself, typically within ~1.5 s
STOP_TIMEOUT = 5.0
PKEXEC_ENV = {"HOME": "/root", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "USER": "root"}

_PACKAGES = {
    "dbus-daemon": "dbus",
    POLKITD: "polkitd",
    "pkcheck": "polkitd",
    "pkaction": "polkitd",
    "pkexec": "pkexec",
    "runuser": "util-linux",
    "ip": "iproute2",
}


def require_binary(name: str) -> str:
    path = name if os.path.isabs(name) else shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None or not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} not found: install the Debian package '{_PACKAGES.get(name, name)}' "
            "to run the polkit tests",
            pytrace=False,
        )
    return path


def _bus_call(method: str, arg: str) -> object:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress(
        "/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus"
    )
    with open_dbus_connection(SYSTEM_BUS_ADDRESS) as conn:
        reply = conn.send_and_get_reply(new_method_call(bus, method, "s", (arg,)), timeout=2)
    return reply.body[0]


def _bus_answers() -> bool:
    try:
        _bus_call("NameHasOwner", "org.freedesktop.DBus")
    except Exception:
        return False
    return True


def _name_owner_pid(name: str) -> int | None:
    try:
        if not _bus_call("NameHasOwner", name):
            return None
        pid = _bus_call("GetConnectionUnixProcessID", name)
    except Exception:
        return None
    return pid if isinstance(pid, int) else None


def _socket_is_stale(path: Path) -> bool:
    """A socket file nobody listens on (left by a killed bus)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError:
            return False
    return False


def _wait(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    detail: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (waited {timeout:g} s) {detail()}".strip(), pytrace=False)
        time.sleep(0.05)


@dataclass
class _Snapshot:
    path: Path
    data: bytes
    mode: int
    uid: int
    gid: int

    @classmethod
    def take(cls, path: Path) -> _Snapshot | None:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return cls(path, path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def restore(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(self.data)
        os.chown(self.path, self.uid, self.gid)
        self.path.chmod(self.mode)


@dataclass
class PolkitSession:
    helper_path: Path
    policy_path: Path
    user: SystemUser
    subject_pid: int  # a process of `user` that pkcheck asks about
    started_bus: bool
    started_polkitd: bool
    mode: str = ""
    rule_path: Path = TEST_RULE
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def check(self, action_id: str) -> int:
        """pkcheck for the user: 0 authorized, 1 not authorized, 2 authentication needed."""
        proc = subprocess.run(
            ["pkcheck", "--action-id", action_id, "--process", str(self.subject_pid)],
            capture_output=True,
            timeout=10,
        )
        return proc.returncode

    def set_mode(self, mode: str) -> None:
        """Rewrite the test rule and wait until polkitd answers by it."""
        result, expected = MODES[mode]
        if mode == self.mode:
            return
        _write_rule(self.rule_path, self.user.name, result)
        _wait(
            lambda: all(self.check(action) == expected for action in ACTIONS),
            RELOAD_TIMEOUT,
            f"polkitd did not apply the '{mode}' test rule",
            lambda: f"(pkcheck answers {[self.check(a) for a in ACTIONS]}, want {expected})",
        )
        self.mode = mode

    def pkexec_argv(self, args: Sequence[str]) -> list[str]:
        return ["pkexec", "--disable-internal-agent", str(self.helper_path), *args]

    def run_as_user(
        self,
        args: Sequence[str],
        *,
        input: bytes | str | None = None,
        netns: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["runuser", "-u", self.user.name, "--", *self.pkexec_argv(args)]
        return _run(argv, input, netns, self.user.env(), timeout)

    def run_as(
        self,
        user: SystemUser,
        args: Sequence[str],
        *,
        input: bytes | str | None = None,
        netns: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """As run_as_user, for another user (one `allow_also` lets in)."""
        argv = ["runuser", "-u", user.name, "--", *self.pkexec_argv(args)]
        return _run(argv, input, netns, user.env(), timeout)

    @contextlib.contextmanager
    def allow_also(self, user: SystemUser) -> Iterator[None]:
        """A second test rule that lets `user` in too, for tests with two users."""
        rule = self.rule_path.with_name(f"48-fiotray-test-{user.name}.rules")
        subject = _start_subject(user)

        def answers() -> list[int]:
            return [
                subprocess.run(
                    ["pkcheck", "--action-id", a, "--process", str(subject.pid)],
                    capture_output=True,
                    timeout=10,
                ).returncode
                for a in ACTIONS
            ]

        try:
            _write_rule(rule, user.name, "polkit.Result.YES")
            _wait(
                lambda: answers() == [0] * len(ACTIONS),
                RELOAD_TIMEOUT,
                f"polkitd did not apply the test rule for {user.name}",
            )
            yield
        finally:
            rule.unlink(missing_ok=True)
            subject.kill()
            subject.wait(STOP_TIMEOUT)

    def run_as_root(
        self,
        args: Sequence[str],
        *,
        input: bytes | str | None = None,
        netns: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return _run([str(self.helper_path), *args], input, netns, dict(PKEXEC_ENV), timeout)


def _run(
    argv: list[str],
    input: bytes | str | None,
    netns: str | None,
    env: dict[str, str],
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    data = input.encode("utf-8") if isinstance(input, str) else input
    # A new session: no controlling terminal, so nothing can ever prompt on one.
    proc = subprocess.run(
        argv,
        input=data if data is not None else b"",
        capture_output=True,
        env=env,
        timeout=timeout,
        start_new_session=True,
        cwd="/",
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def _write_rule(path: Path, user: str, result: str) -> None:
    text = (
        "// Written by fiotray's tests (tests/polkit_session.py) for the test user;\n"
        "// removed when the test session ends.\n"
        "polkit.addRule(function (action, subject) {\n"
        '    if (action.id.indexOf("io.foundries.fiotray.") == 0 &&\n'
        f'        subject.user == "{user}") {{\n'
        f"        return {result};\n"
        "    }\n"
        "});\n"
    )
    # polkitd reads only *.rules: write aside and rename, so it never sees half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _start_bus() -> int:
    dbus_daemon = require_binary("dbus-daemon")
    if SYSTEM_BUS_SOCKET.exists() or SYSTEM_BUS_SOCKET.is_symlink():
        if not _socket_is_stale(SYSTEM_BUS_SOCKET):
            pytest.fail(
                f"{SYSTEM_BUS_SOCKET} accepts connections but does not answer D-Bus calls",
                pytrace=False,
            )
        SYSTEM_BUS_SOCKET.unlink()
    SYSTEM_BUS_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [dbus_daemon, "--system", "--fork", "--nopidfile", "--print-pid=1"],
        capture_output=True,
        timeout=START_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        pytest.fail(
            f"dbus-daemon --system did not start (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}",
            pytrace=False,
        )
    pid = int(proc.stdout.strip())
    _wait(_bus_answers, START_TIMEOUT, "the system bus does not answer")
    return pid


def _start_polkitd(log: Path) -> subprocess.Popen[bytes]:
    polkitd = require_binary(POLKITD)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [polkitd, "--no-debug"],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def owned() -> bool:
        owner = _name_owner_pid(POLKIT_NAME)
        if owner is not None and owner != proc.pid:
            pytest.fail(f"{POLKIT_NAME} is owned by pid {owner}, not our polkitd", pytrace=False)
        if proc.poll() is not None:
            pytest.fail(f"polkitd exited: {log.read_text(errors='replace')[-1000:]}", pytrace=False)
        return owner == proc.pid

    _wait(owned, START_TIMEOUT, f"polkitd did not take {POLKIT_NAME}")
    return proc


def _start_subject(user: SystemUser) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sleep", "infinity"],
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd="/",
    )


def _action_known(action_id: str) -> bool:
    proc = subprocess.run(["pkaction", "--action-id", action_id], capture_output=True, timeout=10)
    return proc.returncode == 0


@pytest.fixture(scope="session")
def polkit(app_user: SystemUser) -> Iterator[PolkitSession]:
    """Real polkit + pkexec with fiotray's helper installed; see the module docstring."""
    with start_polkit(app_user) as session:
        yield session


@contextlib.contextmanager
def start_polkit(app_user: SystemUser) -> Iterator[PolkitSession]:
    """The `polkit` fixture's work, usable outside pytest (bench/)."""
    if os.geteuid() != 0:
        pytest.fail("the polkit tests need root (CI runs as root)", pytrace=False)
    for binary in ("pkexec", "pkcheck", "pkaction", "runuser", POLKITD, "dbus-daemon"):
        require_binary(binary)

    log_dir = Path(tempfile.mkdtemp(prefix="fiotray-polkit-"))
    bus_pid: int | None = None
    polkitd: subprocess.Popen[bytes] | None = None
    subject: subprocess.Popen[bytes] | None = None
    modules = [Path("/") / rel for rel, _data in helper_install.module_files()]
    modules.append(Path("/") / helper_install.OLD_MODULE_REL)
    touched = [
        helper_install.helper_path(),
        *modules,
        *(Path(importlib.util.cache_from_source(str(m))) for m in modules),
        Path("/") / helper_install.POLICY_REL,
        Path("/") / helper_install.GROUP_RULE_REL,
    ]
    snapshots = [s for s in (_Snapshot.take(p) for p in touched) if s is not None]
    rule_before = _Snapshot.take(TEST_RULE)
    runtime_dir = Path(fiotray_helper.RUNTIME_DIR)
    runtime_dir_before = runtime_dir.exists()
    locks_before = set(runtime_dir.glob("*.lock"))
    installed = False
    try:
        if not _bus_answers():
            bus_pid = _start_bus()
        if _name_owner_pid(POLKIT_NAME) is None:
            polkitd = _start_polkitd(log_dir / "polkitd.log")
        try:
            helper_install.install()
        except helper_install.InstallError as exc:
            pytest.fail(f"installing the helper failed: {exc}", pytrace=False)
        installed = True
        _wait(
            lambda: all(_action_known(a) for a in ACTIONS),
            RELOAD_TIMEOUT,
            "polkitd did not load io.foundries.fiotray.policy",
        )
        subject = _start_subject(app_user)
        session = PolkitSession(
            helper_path=helper_install.helper_path(),
            policy_path=Path("/") / helper_install.POLICY_REL,
            user=app_user,
            subject_pid=subject.pid,
            started_bus=bus_pid is not None,
            started_polkitd=polkitd is not None,
            log_dir=log_dir,
        )
        session.set_mode("allow")
        yield session
    finally:
        with contextlib.suppress(FileNotFoundError):
            TEST_RULE.unlink()
        with contextlib.suppress(FileNotFoundError):
            TEST_RULE.with_name(TEST_RULE.name + ".tmp").unlink()
        if rule_before is not None:
            rule_before.restore()
        if installed:
            helper_install.uninstall()
        for snapshot in snapshots:
            snapshot.restore()
        if subject is not None:
            subject.kill()
            subject.wait(STOP_TIMEOUT)
        stop(polkitd)
        if bus_pid is not None:
            stop_pids([bus_pid])
            with contextlib.suppress(FileNotFoundError):
                SYSTEM_BUS_SOCKET.unlink()
        # The helper keeps one lock file per interface name it ever locked (removing one a
        # helper may wait on is unsafe); no helper runs now, so the session's own can go.
        for lock in set(runtime_dir.glob("*.lock")) - locks_before:
            lock.unlink(missing_ok=True)
        if not runtime_dir_before:
            with contextlib.suppress(OSError):
                runtime_dir.rmdir()  # the helper's own; only when the tests left it empty
        shutil.rmtree(log_dir, ignore_errors=True)
