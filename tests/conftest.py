"""Shared pytest setup for fiotray's tests: light fixtures only.

The heavy ones (a Secret Service, system users, network namespaces, polkit, an X
session) are imported by the conftest.py of the suites that use them, tests/gui and
tests/integration, so unit tests neither import nor can request them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# hypothesis keeps caches (constants, unicode data) in ./.hypothesis: in a temp dir
# instead, removed at the end, so a test run leaves nothing in the checkout.
_HYPOTHESIS_DIR = tempfile.mkdtemp(prefix="fiotray-hypothesis-")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _HYPOTHESIS_DIR
atexit.register(shutil.rmtree, _HYPOTHESIS_DIR, True)


@pytest.fixture(autouse=True)
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test its own $XDG_RUNTIME_DIR: the app's socket and the demo's simulated
    interfaces (shared by every demo process of a user) never meet another test's, or
    those of a fiotray the user runs meanwhile. Beside the test's tmp_path, not in it:
    tests compare what a command left there."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("run")))


@pytest.fixture
def no_keyring_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyring's "no backend" path, forced the way users can force it."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


@pytest.fixture
def server(factory):
    """The test module's `factory` (a FakeFactory fixture) served over HTTP on loopback."""
    from fiotray.demo.fakeapi import FakeApiServer

    with FakeApiServer(factory) as srv:
        yield srv
        assert srv.handler_errors == [], "the fake API itself failed (a bug in the fake)"
