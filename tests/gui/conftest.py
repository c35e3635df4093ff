"""GUI tests: pytest-qt on the offscreen platform, coroutines on a qasync loop.

Tests here that need a real X server and tray use the `xsession` fixture
(tests/xsession.py); everything else runs offscreen.
"""

from __future__ import annotations

import gc
import os

# Before any QApplication exists: widget tests render offscreen unless a test brings X.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import qasync
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from fiotray.gui.backend import Backend, demo_services

# The one heavy fixture GUI tests use (test_tray_x11), imported so pytest finds it here
# and unit tests never load it.
from tests.xsession import xsession, xsession_no_tray

__all__ = ["xsession", "xsession_no_tray"]


def _qasync_loop() -> qasync.QEventLoop:
    app = QApplication.instance() or QApplication([])
    return qasync.QEventLoop(app, already_running=False)


def pytest_asyncio_loop_factories(config, item):
    # Async tests in this folder run on the Qt event loop, as the app does.
    return {"qasync": _qasync_loop}


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    """Settings, autostart entries, logs: in the test's own dirs, never the user's."""
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_DIRS", "etc-xdg"),  # no system-wide autostart entry either
    ):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / sub))


@pytest.fixture(autouse=True)
def keep_running_when_a_window_closes(qapp):
    """As in the tray app: closing its last window (a dialog, a message box) must not
    quit it, nor stop the qasync loop under a running test."""
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)


@pytest.fixture(autouse=True)
def _collect_qt_garbage(qapp):
    """Free each test's widgets and QObjects at its end, not at a random later moment.

    Python's collector may otherwise delete a test's leftovers in the middle of a
    later test's Qt event processing, which PySide does not survive.
    """
    yield
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    QApplication.processEvents()


@pytest.fixture
async def backend(qapp):
    """A Backend on the embedded demo factory and a simulated tunnel (no root, no network)."""
    b = Backend(demo_services())
    yield b
    await b.shutdown()
    b.deleteLater()


@pytest.fixture
async def own_backend(qapp):
    """A Backend on services that are the user's own, not a demo: the demo's fake factory
    served on loopback as if it were their self-hosted one (its API URL saved with it),
    stores in a temp dir and an in-memory keyring. For signing in, which in a demo is
    to the user's real factory and leaves the demo. `fake_api`: the fake's server."""
    services = demo_services()
    session = services.demo
    assert session is not None
    server = session.server  # serving now: nothing starts it on first use any more
    services.demo = None  # the cleanups still stop it and remove the temp dir
    b = Backend(services)
    b.fake_api = server  # type: ignore[attr-defined]
    yield b
    await b.shutdown()
    b.deleteLater()
