"""Fixtures of the unit tests: the demo's services (fake API over HTTP, simulated tunnel)."""

from __future__ import annotations

import pytest

from fiotray.core.services import demo_services


@pytest.fixture
async def services():
    """Demo services with two known devices; changes apply only when a test says so."""
    s = demo_services(devices=4)
    fake = s.demo.server.factory
    fake.auto_apply_after = None
    fake.add_device("on-vpn", vpn_address="10.42.42.77")
    fake.add_device("off-vpn", vpn_enabled=False)
    yield s
    await s.aclose()
