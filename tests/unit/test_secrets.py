"""SecretStore against a real Secret Service (gnome-keyring on a private bus) and its errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import uuid
from typing import Any

import keyring.backend
import keyring.core
import keyring.errors
import pytest

from fiotray.core import secrets as secrets_mod
from fiotray.core.errors import SecretsUnavailable
from fiotray.core.secrets import SERVICE, MemorySecretStore, SecretStore, profile_key
from tests.keyring_session import SecretServiceSession

SECRET = "s3cr3t-VALUE-that-must-never-show-up"


def unique_key(label: str = "k") -> str:
    # The daemons live for the whole session: keep tests apart by key.
    return f"test/{label}/{uuid.uuid4().hex}"


def secret_tool(session: SecretServiceSession, *args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("secret-tool")
    if tool is None:
        pytest.fail("secret-tool not found: install the Debian package 'libsecret-tools'")
    return subprocess.run(
        [tool, *args], env=session.env(), capture_output=True, text=True, timeout=10, check=False
    )


# -- the real Secret Service -------------------------------------------------------


def test_round_trip_is_really_stored_in_the_secret_service(
    secret_service: SecretServiceSession,
) -> None:
    store = SecretStore()
    key = unique_key()
    store.set(key, SECRET)

    assert store.get(key) == SECRET
    # A second instance (own backend, own D-Bus connection) and an independent
    # client both see it: it is in the daemon, not in a cache of ours.
    assert SecretStore().get(key) == SECRET
    lookup = secret_tool(secret_service, "lookup", "service", SERVICE, "username", key)
    assert lookup.returncode == 0, lookup.stderr
    assert lookup.stdout == SECRET

    store.delete(key)
    assert store.get(key) is None
    assert secret_tool(secret_service, "lookup", "service", SERVICE, "username", key).stdout == ""


def test_secret_tool_search_lists_one_item_per_key(secret_service: SecretServiceSession) -> None:
    store = SecretStore()
    key = unique_key("search")
    store.set(key, "first")
    store.set(key, "second")  # replaces, does not add a second item

    found = secret_tool(secret_service, "search", "--all", "service", SERVICE, "username", key)
    assert found.returncode == 0, found.stderr
    assert (found.stdout + found.stderr).count(f"attribute.username = {key}") == 1
    assert store.get(key) == "second"
    store.delete(key)


def test_long_json_values_round_trip(secret_service: SecretServiceSession) -> None:
    store = SecretStore()
    key = unique_key("long")
    value = json.dumps({"access_token": "a" * 6000, "orgs": [f"f{i}" for i in range(300)]})
    store.set(key, value)
    assert SecretStore().get(key) == value
    store.delete(key)


def test_delete_of_a_missing_key_is_fine(secret_service: SecretServiceSession) -> None:
    store = SecretStore()
    key = unique_key("missing")
    store.delete(key)
    store.delete(key)
    assert store.get(key) is None


def test_backend_name_and_check(secret_service: SecretServiceSession) -> None:
    store = SecretStore()
    store.check()
    assert store.backend_name == "SecretService Keyring"


def test_separate_service_names_do_not_mix(secret_service: SecretServiceSession) -> None:
    key = unique_key("svc")
    SecretStore("fiotray-other-test").set(key, "other")
    assert SecretStore().get(key) is None
    assert SecretStore("fiotray-other-test").get(key) == "other"
    SecretStore("fiotray-other-test").delete(key)


def test_backend_is_chosen_per_instance_and_failures_are_not_cached(
    secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    early = SecretStore()
    with pytest.raises(SecretsUnavailable):
        early.get(unique_key())

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    key = unique_key("lazy")
    SecretStore().set(key, "v")
    # The failed instance looks again instead of remembering the failure.
    assert early.get(key) == "v"
    early.delete(key)


def test_explicit_secret_service_backend_is_honoured(
    secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.SecretService.Keyring")
    store = SecretStore()
    key = unique_key("explicit")
    store.set(key, "v")
    assert store.get(key) == "v"
    store.delete(key)


def test_chainer_is_unwrapped_to_the_secure_member(
    secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.chainer.ChainerBackend")
    store = SecretStore()
    assert store.backend_name == "SecretService Keyring"
    key = unique_key("chain")
    store.set(key, "v")
    assert SecretStore().get(key) == "v"
    store.delete(key)


def test_the_global_keyring_setting_is_not_touched(secret_service: SecretServiceSession) -> None:
    before = keyring.core._keyring_backend
    SecretStore().get(unique_key())
    assert keyring.core._keyring_backend is before


# -- async variants run off the event loop thread -----------------------------------


class ThreadRecordingStore(SecretStore):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def get(self, key: str) -> str | None:
        self.threads.append(threading.get_ident())
        return super().get(key)

    def set(self, key: str, value: str) -> None:
        self.threads.append(threading.get_ident())
        super().set(key, value)

    def delete(self, key: str) -> None:
        self.threads.append(threading.get_ident())
        super().delete(key)


async def test_async_variants_run_in_a_worker_thread(secret_service: SecretServiceSession) -> None:
    store = ThreadRecordingStore()
    key = unique_key("async")
    loop_thread = threading.get_ident()

    await store.aset(key, SECRET)
    assert await store.aget(key) == SECRET
    await store.adelete(key)
    assert await store.aget(key) is None

    assert len(store.threads) == 4
    assert loop_thread not in store.threads


async def test_async_calls_do_not_block_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A keyring waiting on an unlock prompt must not freeze the GUI: while one
    # call is stuck, the loop keeps running other tasks.
    release = threading.Event()
    entered = threading.Event()
    store = MemorySecretStore()

    def stuck_get(key: str) -> str | None:
        entered.set()
        release.wait(10)
        return "late"

    monkeypatch.setattr(store, "get", stuck_get)
    task = asyncio.create_task(store.aget("k"))
    await asyncio.wait_for(asyncio.to_thread(entered.wait, 10), 10)
    assert not task.done()
    release.set()
    assert await asyncio.wait_for(task, 10) == "late"


# -- no secure storage ------------------------------------------------------------


def test_forced_fail_backend_gives_guidance(no_keyring_backend: None) -> None:
    store = SecretStore()
    with pytest.raises(SecretsUnavailable) as info:
        store.set(unique_key(), SECRET)
    message = str(info.value)
    assert "Secret Service" in message
    assert "gnome-keyring" in message
    assert "PYTHON_KEYRING_BACKEND" in message
    assert SECRET not in message
    with pytest.raises(SecretsUnavailable):
        store.check()
    assert store.backend_name == "unavailable"


def test_null_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    with pytest.raises(SecretsUnavailable, match="cannot store secrets"):
        SecretStore().get("k")


def test_no_session_bus_names_dbus_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    with pytest.raises(SecretsUnavailable) as info:
        SecretStore().set("k", SECRET)
    message = str(info.value)
    assert "DBUS_SESSION_BUS_ADDRESS is unset" in message
    assert "gnome-keyring" in message
    assert SECRET not in message


def test_explicit_secret_service_without_a_daemon(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-bus")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.SecretService.Keyring")
    with pytest.raises(SecretsUnavailable, match="cannot be used here") as info:
        SecretStore().get("k")
    assert "Secret Service provider" in str(info.value)


def test_no_collection_gives_collection_guidance(
    secret_service_no_collection: SecretServiceSession,
) -> None:
    store = SecretStore()
    assert store.backend_name == "SecretService Keyring"
    with pytest.raises(SecretsUnavailable) as info:
        store.set(unique_key(), SECRET)
    message = str(info.value)
    assert "no default collection" in message
    assert "unlock it" in message
    assert SECRET not in message
    with pytest.raises(SecretsUnavailable, match="no default collection"):
        store.check()


def test_locked_collection_says_unlock(secret_service_factory: Any) -> None:
    import secretstorage

    with secret_service_factory(unlock=True) as session, pytest.MonkeyPatch.context() as mp:
        session.activate(mp)
        store = SecretStore()
        key = unique_key("locked")
        store.set(key, SECRET)
        conn = secretstorage.dbus_init()
        try:
            collection = secretstorage.get_default_collection(conn)
            collection.lock()
            assert collection.is_locked()
        finally:
            conn.close()
        for call in (lambda: store.get(key), lambda: store.set(key, SECRET)):
            with pytest.raises(SecretsUnavailable) as info:
                call()
            assert "unlock your keyring (login collection) and try again" in str(info.value)
            assert SECRET not in str(info.value)


# -- refusing insecure or unknown backends -----------------------------------------


class UnknownKeyring(keyring.backend.KeyringBackend):
    """A viable but unknown backend (only when the test asks: it is globally registered)."""

    @keyring.backend.properties.classproperty
    def priority(cls) -> float:
        if not UnknownKeyring.enabled:
            raise RuntimeError("test backend disabled")
        return 100.0

    enabled = False
    values: dict[tuple[str, str], str] = {}  # noqa: RUF012

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password


@pytest.fixture
def unknown_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UnknownKeyring, "enabled", True)


def test_unknown_explicit_backend_is_refused(
    unknown_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", f"{__name__}.UnknownKeyring")
    with pytest.raises(SecretsUnavailable, match="not a known secure system keyring"):
        SecretStore().set("k", SECRET)
    assert UnknownKeyring.values == {}


def test_unknown_backend_is_never_picked_automatically(
    unknown_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Higher priority than anything else, yet not on the allow list.
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    with pytest.raises(SecretsUnavailable):
        SecretStore().set("k", SECRET)
    assert UnknownKeyring.values == {}


def test_file_backends_from_keyrings_alt_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    plaintext = type("PlaintextKeyring", (), {"__module__": "keyrings.alt.file"})()
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr(keyring.core, "load_env", lambda: plaintext)
    with pytest.raises(SecretsUnavailable, match="keeps secrets in a file"):
        SecretStore().get("k")


def test_broken_keyringrc_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)

    def broken() -> None:
        raise ImportError("no module named nowhere")

    monkeypatch.setattr(keyring.core, "load_config", broken)
    with pytest.raises(SecretsUnavailable, match=r"keyringrc\.cfg"):
        SecretStore().get("k")


# -- keyring exceptions become one actionable sentence -------------------------------


class RaisingBackend:
    name = "Fake Keyring"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get_password(self, *args: str) -> str | None:
        raise self.exc

    set_password = delete_password = get_password


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            keyring.errors.KeyringLocked("Failed to unlock"),
            "unlock your keyring (login collection)",
        ),
        (keyring.errors.InitError("Failed to create the collection"), "no default collection"),
        (keyring.errors.NoKeyringError("nope"), "Secret Service provider"),
        (keyring.errors.PasswordSetError("nope"), "refused to store"),
        (OSError(f"connection reset {SECRET}"), "Fake Keyring) failed (OSError)"),
    ],
)
def test_keyring_errors_are_mapped(exc: BaseException, expected: str) -> None:
    store = SecretStore()
    store._backend = RaisingBackend(exc)  # type: ignore[assignment]
    with pytest.raises(SecretsUnavailable) as info:
        store.set("k", SECRET)
    assert expected in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_delete_treats_password_delete_error_as_missing() -> None:
    store = SecretStore()
    store._backend = RaisingBackend(keyring.errors.PasswordDeleteError("No such password!"))  # type: ignore[assignment]
    store.delete("k")  # no exception


def test_secure_allow_list_names_real_keyring_classes() -> None:
    import importlib

    for module_name, class_name in secrets_mod._SECURE_BACKENDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # e.g. a platform module that does not import here
        assert isinstance(getattr(module, class_name), type), (module_name, class_name)


# -- memory store and key names ---------------------------------------------------


async def test_memory_store_round_trip_without_any_keyring(no_keyring_backend: None) -> None:
    store = MemorySecretStore()
    store.check()
    assert "memory" in store.backend_name
    store.set("a", "1")
    await store.aset("b", "2")
    assert store.get("a") == "1"
    assert await store.aget("b") == "2"
    store.delete("a")
    await store.adelete("missing")
    assert store.get("a") is None
    assert store.keys() == ["b"]
    assert isinstance(store, SecretStore)


def test_memory_stores_are_independent() -> None:
    one, two = MemorySecretStore(), MemorySecretStore()
    one.set("k", "v")
    assert two.get("k") is None


def test_values_must_be_strings_and_keys_non_empty() -> None:
    store = MemorySecretStore()
    with pytest.raises(TypeError):
        store.set("k", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        store.get("")


def test_profile_key() -> None:
    assert profile_key("acme", "client_secret") == "profile/acme/client_secret"
    assert profile_key("acme", "oauth_token") == "profile/acme/oauth_token"
    assert profile_key("acme", "api_token") == "profile/acme/api_token"
    with pytest.raises(ValueError, match="unknown secret kind"):
        profile_key("acme", "password")
    with pytest.raises(ValueError, match="empty"):
        profile_key("", "api_token")
