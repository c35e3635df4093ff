"""SecretStore's choice of keyring backend and its errors, without a keyring daemon.

The same store against a real Secret Service: tests/integration/test_secrets_keyring.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import keyring.backend
import keyring.core
import keyring.errors
import pytest

from fiotray.core import secrets as secrets_mod
from fiotray.core.errors import SecretsUnavailable
from fiotray.core.secrets import MemorySecretStore, SecretStore, factory_key

SECRET = "s3cr3t-VALUE-that-must-never-show-up"


def unique_key(label: str = "k") -> str:
    # The daemons live for the whole session: keep tests apart by key.
    return f"test/{label}/{uuid.uuid4().hex}"


# -- async variants run off the event loop thread -----------------------------------


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


def test_factory_key_keeps_the_stored_key_names() -> None:
    # Users' secrets are stored under these exact names: renaming the function must not move them.
    assert factory_key("acme", "client_secret") == "profile/acme/client_secret"
    assert factory_key("acme", "oauth_token") == "profile/acme/oauth_token"
    assert factory_key("acme", "api_token") == "profile/acme/api_token"
    with pytest.raises(ValueError, match="unknown secret kind"):
        factory_key("acme", "password")
    with pytest.raises(ValueError, match="empty"):
        factory_key("", "api_token")
