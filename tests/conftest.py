"""Shared pytest setup for fiotray's tests."""

from __future__ import annotations

pytest_plugins = [
    "tests.keyring_session",
    "tests.system_user",
    "tests.vpn_world",
    "tests.polkit_session",
    "tests.xsession",
    "tests.engineer",
]
