"""Shared pytest setup for fiotray's tests."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.keyring_session",
    "tests.system_user",
    "tests.vpn_world",
    "tests.polkit_session",
    "tests.xsession",
    "tests.engineer",
]


@pytest.fixture
def server(factory):
    """The test module's `factory` (a FakeFactory fixture) served over HTTP on loopback."""
    from fiotray.demo.fakeapi import FakeApiServer

    with FakeApiServer(factory) as srv:
        yield srv
        assert srv.handler_errors == [], "the fake API itself failed (a bug in the fake)"
