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
