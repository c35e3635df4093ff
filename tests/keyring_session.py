"""pytest plugin: a real, private Secret Service (gnome-keyring on its own D-Bus session bus).

Fixtures
--------
``secret_service``
    Function-scoped view of a session-wide daemon pair whose ``login``
    collection exists and is unlocked. For the duration of the test
    ``DBUS_SESSION_BUS_ADDRESS`` points at the private bus and
    ``PYTHON_KEYRING_BACKEND`` is unset (monkeypatch: nothing leaks).
``secret_service_no_collection``
    Same, but gnome-keyring was started without creating/unlocking any
    collection: keyring raises ``InitError`` ("Failed to create the collection").
``secret_service_factory``
    ``start_secret_service`` (a context manager) for tests that need their own
    daemons, e.g. to lock the collection without disturbing other tests.

Needs the Debian packages ``dbus`` (dbus-daemon) and ``gnome-keyring``
(gnome-keyring-daemon). If they are missing the fixtures fail: a skip would
hide a broken CI setup.

Both daemons run with ``DISPLAY``/``WAYLAND_DISPLAY`` removed: with a display a
missing or locked collection opens a password window and keyring calls block
forever. Their data and runtime dirs are temp dirs, so the user's real keyring
is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import stop

SECRETS_BUS_NAME = "org.freedesktop.secrets"
START_TIMEOUT = 10.0
PASSWORD = "fiotray-test-keyring-password"

SessionManager = contextlib.AbstractContextManager["SecretServiceSession"]

_PACKAGES = {"dbus-daemon": "dbus", "gnome-keyring-daemon": "gnome-keyring"}


@dataclass
class SecretServiceSession:
    """A running private D-Bus session bus with gnome-keyring on it."""

    bus_address: str
    root: Path  # everything of this session lives below (deleted at the end)
    data_dir: Path  # XDG_DATA_HOME of the daemon: keyrings/ is in there
    runtime_dir: Path
    bus_pid: int
    keyring_pid: int
    unlocked: bool
    password: str

    def env(self) -> dict[str, str]:
        """Environment for a child process (e.g. secret-tool) that should use this keyring."""
        env = {k: v for k, v in os.environ.items() if k != "GNOME_KEYRING_CONTROL"}
        env["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address
        env.pop("PYTHON_KEYRING_BACKEND", None)
        return env

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this test process at the private bus until the test ends."""
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", self.bus_address)
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        monkeypatch.delenv("GNOME_KEYRING_CONTROL", raising=False)


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"{binary} not found: install the Debian package '{_PACKAGES[binary]}' "
            "(apt-get install -y dbus gnome-keyring) to run the Secret Service tests",
            pytrace=False,
        )
    return path


def _daemon_env(root: Path, data_dir: Path, runtime_dir: Path) -> dict[str, str]:
    drop = {"DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "DBUS_SESSION_BUS_ADDRESS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(XDG_DATA_HOME=str(data_dir), XDG_RUNTIME_DIR=str(runtime_dir), HOME=str(root))
    return env


def _bus_call(address: str, method: str, arg: str) -> object:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress(
        "/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus"
    )
    with open_dbus_connection(address) as conn:
        reply = conn.send_and_get_reply(new_method_call(bus, method, "s", (arg,)), timeout=2)
    return reply.body[0]


def _collection_unlocked(address: str, name: str = "login") -> bool:
    from jeepney import DBusAddress, Properties
    from jeepney.io.blocking import open_dbus_connection

    obj = DBusAddress(
        f"/org/freedesktop/secrets/collection/{name}",
        bus_name=SECRETS_BUS_NAME,
        interface="org.freedesktop.Secret.Collection",
    )
    with open_dbus_connection(address) as conn:
        reply = conn.send_and_get_reply(Properties(obj).get("Locked"), timeout=2)
    body = reply.body[0]
    return isinstance(body, tuple) and body[1] is False


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def start_secret_service(*, unlock: bool = True) -> Iterator[SecretServiceSession]:
    """Start dbus-daemon and gnome-keyring-daemon privately; stop both by PID afterwards.

    ``unlock=True`` creates the 'login' collection with a password and unlocks
    it (gnome-keyring --unlock reads the password from stdin); ``unlock=False``
    leaves the daemon without any usable collection.
    """
    dbus_daemon = _require("dbus-daemon")
    gnome_keyring = _require("gnome-keyring-daemon")
    root = Path(tempfile.mkdtemp(prefix="fiotray-keyring-"))
    data_dir = root / "data"
    runtime_dir = root / "run"
    data_dir.mkdir(mode=0o700)
    runtime_dir.mkdir(mode=0o700)
    env = _daemon_env(root, data_dir, runtime_dir)
    address = f"unix:path={root}/bus"
    bus: subprocess.Popen[bytes] | None = None
    keyring_proc: subprocess.Popen[bytes] | None = None
    gk_log = root / "gnome-keyring.log"
    try:
        # --nofork keeps the daemon our child so its PID is the one we stop.
        bus = subprocess.Popen(
            [dbus_daemon, "--session", "--nofork", "--nopidfile", f"--address={address}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(root / "dbus.log").open("wb"),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (root / "bus").exists():
            if bus.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"dbus-daemon did not start: {_log_tail(root / 'dbus.log')}", pytrace=False
                )
            time.sleep(0.01)

        mode = "--unlock" if unlock else "--start"
        with gk_log.open("wb") as log_fh:
            keyring_proc = subprocess.Popen(
                [gnome_keyring, "--foreground", mode, "--components=secrets"],
                env={**env, "DBUS_SESSION_BUS_ADDRESS": address},
                stdin=subprocess.PIPE,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
            )
        assert keyring_proc.stdin is not None
        if unlock:
            keyring_proc.stdin.write(PASSWORD.encode())
        keyring_proc.stdin.close()

        # Poll until our daemon owns the name: an activatable service file could
        # otherwise start a different gnome-keyring, which we would not stop.
        while True:
            owner: object = None
            with contextlib.suppress(Exception):
                if _bus_call(address, "NameHasOwner", SECRETS_BUS_NAME):
                    owner = _bus_call(address, "GetConnectionUnixProcessID", SECRETS_BUS_NAME)
            if owner == keyring_proc.pid:
                break
            if owner is not None:
                pytest.fail(
                    f"{SECRETS_BUS_NAME} is owned by pid {owner}, not our gnome-keyring-daemon "
                    f"(pid {keyring_proc.pid})",
                    pytrace=False,
                )
            if keyring_proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"gnome-keyring-daemon did not provide {SECRETS_BUS_NAME} within "
                    f"{START_TIMEOUT:g} s: {_log_tail(gk_log)}",
                    pytrace=False,
                )
            time.sleep(0.02)

        if unlock:
            while not _unlocked_quietly(address):
                if time.monotonic() > deadline:
                    pytest.fail(
                        "the 'login' collection is missing or locked after gnome-keyring "
                        f"--unlock: {_log_tail(gk_log)}",
                        pytrace=False,
                    )
                time.sleep(0.02)

        yield SecretServiceSession(
            bus_address=address,
            root=root,
            data_dir=data_dir,
            runtime_dir=runtime_dir,
            bus_pid=bus.pid,
            keyring_pid=keyring_proc.pid,
            unlocked=unlock,
            password=PASSWORD,
        )
    finally:
        stop(keyring_proc)  # keyring first, then its bus
        stop(bus)
        shutil.rmtree(root, ignore_errors=True)


def _unlocked_quietly(address: str) -> bool:
    try:
        return _collection_unlocked(address)
    except Exception:
        return False


@pytest.fixture(scope="session")
def _secret_service_daemons() -> Iterator[SecretServiceSession]:
    with start_secret_service(unlock=True) as session:
        yield session


@pytest.fixture(scope="session")
def _secret_service_no_collection_daemons() -> Iterator[SecretServiceSession]:
    with start_secret_service(unlock=False) as session:
        yield session


@pytest.fixture
def secret_service(
    _secret_service_daemons: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> SecretServiceSession:
    """A real unlocked Secret Service, active for this test (daemons shared by the session)."""
    session = _secret_service_daemons
    if not _bus_alive(session):
        pytest.fail("the test Secret Service daemons died during the session", pytrace=False)
    session.activate(monkeypatch)
    return session


@pytest.fixture
def secret_service_no_collection(
    _secret_service_no_collection_daemons: SecretServiceSession,
    monkeypatch: pytest.MonkeyPatch,
) -> SecretServiceSession:
    """A real Secret Service without any collection (keyring raises InitError)."""
    session = _secret_service_no_collection_daemons
    if not _bus_alive(session):
        pytest.fail("the test Secret Service daemons died during the session", pytrace=False)
    session.activate(monkeypatch)
    return session


@pytest.fixture
def secret_service_factory() -> Callable[..., SessionManager]:
    """``with secret_service_factory(unlock=True) as s:`` for a test's own daemons."""
    return start_secret_service


def _bus_alive(session: SecretServiceSession) -> bool:
    try:
        os.kill(session.bus_pid, 0)
        os.kill(session.keyring_pid, 0)
    except OSError:
        return False
    return True
