"""SecretStore against a real Secret Service: gnome-keyring on a private bus."""

from __future__ import annotations

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

from fiotray.core.errors import SecretsUnavailable
from fiotray.core.secrets import SERVICE, SecretStore
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


def test_the_index_names_every_entry_and_holds_no_value(
    secret_service: SecretServiceSession, tmp_path
) -> None:
    import stat

    index = tmp_path / "fiotray" / "keyring-entries.json"
    store = SecretStore(index=index)
    first, second = unique_key("indexed-a"), unique_key("indexed-b")
    store.set(first, "index-secret-value-1")
    store.set(second, "index-secret-value-2")
    store.set(first, "index-secret-value-3")  # set again: named once
    assert SecretStore(index=index).entry_names() == sorted([first, second])
    assert "index-secret-value" not in index.read_text()
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    store.delete(first)
    assert store.entry_names() == [second] and store.get(first) is None
    index.write_text("{not json")  # a broken index is started afresh, secrets untouched
    assert store.entry_names() == [] and store.get(second) == "index-secret-value-2"
    store.delete(second)


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


# -- a collection that is missing or locked ----------------------------------------


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
