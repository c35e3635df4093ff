"""The devices window and its model: offscreen, on the demo factory, on a qasync loop.

No nested event loops here (no QMenu.exec, no qtbot.waitSignal inside a
coroutine): waits are futures tied to signals, bounded by asyncio.wait_for.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, QObject, QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMenu

from fiotray.core.devices import DeviceRow, VpnState
from fiotray.core.factories import Factory
from fiotray.core.models import Device
from fiotray.core.tunnels import State
from fiotray.gui.device_model import (
    HEADERS,
    Col,
    DeviceFilterProxy,
    DeviceTableModel,
    address_key,
    relative_age,
)
from fiotray.gui.devices_window import DevicesWindow
from tests import hostile
from tests.gui.waits import signal_future, until

WAIT = 10.0
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# -- helpers ------------------------------------------------------------------------


async def wait(future: asyncio.Future) -> Any:
    return await asyncio.wait_for(future, WAIT)


def row(
    name: str,
    *,
    seen: timedelta | None = timedelta(minutes=3),
    address: str = "",
    enabled: bool = False,
    pending: bool = False,
    target: str = "main-lmp-50",
    group: str | None = "lab",
    tag: str = "main",
    uuid: str = "",
) -> DeviceRow:
    raw = {
        "name": name,
        "uuid": uuid or f"uuid-{name}",
        "target-name": target,
        "device-group": group,
        "tag": tag,
        "last-seen": (NOW - seen).isoformat() if seen is not None else None,
    }
    return DeviceRow(Device.from_json(raw), enabled, address, pending)


SAMPLE = [
    row("bravo", address="10.42.42.10", enabled=True, seen=timedelta(hours=1)),
    row("Alpha", address="10.42.42.9", enabled=False, seen=timedelta(days=3), group=None),
    row("charlie", seen=None, target="devel-lmp-41", tag="devel", uuid="ABCDEF-1234"),
    row("delta", address="10.42.42.200", enabled=True, pending=True, seen=timedelta(seconds=5)),
    row("echo", seen=timedelta(minutes=3), group="field"),
]


async def sample_model() -> tuple[DeviceTableModel, DeviceFilterProxy]:
    model = DeviceTableModel()
    proxy = DeviceFilterProxy()
    proxy.setSourceModel(model)
    assert await model.set_rows("f", SAMPLE, now=NOW.timestamp())
    return model, proxy


def names(proxy: DeviceFilterProxy) -> list[str]:
    return [proxy.row(r).device.name for r in range(proxy.rowCount())]


def column(proxy: DeviceFilterProxy, col: int) -> list[str]:
    return [proxy.index(r, col).data() for r in range(proxy.rowCount())]


def device_requests(backend: Any, method: str = "GET", path: str = "/ota/devices/") -> int:
    return sum(
        1
        for r in backend.services.demo.server.requests
        if r.method == method and r.path.startswith(path) and (method != "GET" or r.path == path)
    )


def actions(menu: QMenu) -> dict[str, Any]:
    return {a.objectName(): a for a in menu.actions() if a.objectName()}


@pytest.fixture
async def window(backend):
    w = DevicesWindow(backend)
    yield w
    w.hide()
    w.deleteLater()


async def show_loaded(window: DevicesWindow) -> DevicesWindow:
    loaded = signal_future(window.model.rowsReplaced, lambda: window.model.total > 0)
    window.show_factory()
    await wait(loaded)
    return window


def find_row(window: DevicesWindow, pred: Callable[[DeviceRow], bool]) -> tuple[int, DeviceRow]:
    for r in range(window.proxy.rowCount()):
        device = window.proxy.row(r)
        if pred(device):
            return r, device
    raise AssertionError("no such row in the demo factory")


# -- model ----------------------------------------------------------------------------


def test_relative_age_and_address_keys():
    assert relative_age(5) == "just now"
    assert relative_age(180) == "3m ago"
    assert relative_age(3 * 3600 + 5) == "3h ago"
    assert relative_age(3 * 86400) == "3d ago"
    assert relative_age(200 * 86400) == "6mo ago"
    assert address_key("10.42.42.9") < address_key("10.42.42.10") < address_key("10.42.43.1")
    assert address_key("not-an-ip") == float("inf")


async def test_model_columns_and_display(qapp):
    model, proxy = await sample_model()
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in Col] == list(HEADERS)
    assert names(proxy) == ["Alpha", "bravo", "charlie", "delta", "echo"]
    by_name = {proxy.row(r).device.name: r for r in range(proxy.rowCount())}

    def cell(name: str, col: Col, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return proxy.index(by_name[name], col).data(role)

    assert cell("bravo", Col.VPN) == "enabled"
    assert cell("Alpha", Col.VPN) == "disabled"  # has an address, VPN off
    assert cell("charlie", Col.VPN) == "—"  # never enabled
    assert cell("delta", Col.VPN) == "pending"
    assert "not applied" in cell("delta", Col.VPN, Qt.ItemDataRole.ToolTipRole)
    assert cell("bravo", Col.ADDRESS) == "10.42.42.10"
    assert cell("bravo", Col.ONLINE) == "online"
    assert cell("Alpha", Col.ONLINE) == "offline"
    assert cell("charlie", Col.ONLINE) == "never seen"
    assert cell("echo", Col.LAST_SEEN) == "3m ago"
    assert cell("charlie", Col.LAST_SEEN) == "never"
    local = (NOW - timedelta(minutes=3)).astimezone()
    assert f"{local:%Y-%m-%d %H:%M:%S}" in cell("echo", Col.LAST_SEEN, Qt.ItemDataRole.ToolTipRole)
    assert cell("Alpha", Col.GROUP) == ""
    assert cell("charlie", Col.TARGET) == "devel-lmp-41"
    assert (model.total, model.online, model.on_vpn) == (5, 3, 2)


async def test_model_sort_keys(qapp):
    _, proxy = await sample_model()
    proxy.sort(Col.ADDRESS)  # numeric, empty last
    assert names(proxy) == ["Alpha", "bravo", "delta", "charlie", "echo"]
    proxy.sort(Col.LAST_SEEN)  # most recent first, never seen last
    assert names(proxy) == ["delta", "echo", "bravo", "Alpha", "charlie"]
    proxy.sort(Col.ONLINE)  # online first, then offline, then never seen; ties by name
    assert names(proxy) == ["bravo", "delta", "echo", "Alpha", "charlie"]
    proxy.sort(Col.ONLINE, Qt.SortOrder.DescendingOrder)  # ties keep name order
    assert names(proxy) == ["charlie", "Alpha", "bravo", "delta", "echo"]
    proxy.sort(Col.VPN)
    assert column(proxy, Col.VPN) == ["enabled", "pending", "disabled", "—", "—"]
    proxy.sort(Col.GROUP)  # empty group last
    assert names(proxy)[-1] == "Alpha"
    proxy.sort(Col.NAME, Qt.SortOrder.DescendingOrder)  # case-insensitive
    assert names(proxy) == ["echo", "delta", "charlie", "bravo", "Alpha"]


async def test_model_filter(qapp):
    _, proxy = await sample_model()
    proxy.set_filter_text("ALPHA")
    assert names(proxy) == ["Alpha"]
    proxy.set_filter_text("abcdef")  # uuid, case-insensitive
    assert names(proxy) == ["charlie"]
    proxy.set_filter_text("10.42.42.2")  # address
    assert names(proxy) == ["delta"]
    proxy.set_filter_text("devel")  # target and tag
    assert names(proxy) == ["charlie"]
    proxy.set_filter_text("lab 10.42")  # every word must match
    assert names(proxy) == ["bravo", "delta"]
    proxy.set_filter_text("lab 10.42.42.1")  # narrowing from the rows shown
    assert names(proxy) == ["bravo"]
    proxy.set_filter_text("field")
    assert names(proxy) == ["echo"]
    proxy.set_filter_text("nothing-like-it")
    assert proxy.rowCount() == 0
    proxy.set_filter_text("")
    assert proxy.rowCount() == 5


async def test_model_state_filters_and_vpn_words(qapp):
    model, proxy = await sample_model()
    proxy.set_state_filter("enabled")
    assert names(proxy) == ["bravo"]  # delta's enable is not applied yet: pending
    proxy.set_state_filter("pending")
    assert names(proxy) == ["delta"]
    proxy.set_state_filter("disabled")  # disabled, or never enabled
    assert names(proxy) == ["Alpha", "charlie", "echo"]
    proxy.set_state_filter("online")
    assert names(proxy) == ["bravo", "delta", "echo"]
    proxy.set_state_filter("favourites", frozenset({"echo", "gone"}))
    assert names(proxy) == ["echo"]
    # The state filter and the search words combine: all must hold.
    proxy.set_state_filter("disabled")
    proxy.set_filter_text("lab")
    assert names(proxy) == ["charlie"]
    proxy.set_state_filter("all")
    assert names(proxy) == ["bravo", "charlie", "delta"]
    # The VPN column's words are searchable too, as one more term.
    proxy.set_filter_text("lab enabled")
    assert names(proxy) == ["bravo"]
    proxy.set_filter_text("disabled")
    assert names(proxy) == ["Alpha"]  # never enabled is "—", not "disabled"
    proxy.set_filter_text("pending 10.42")
    assert names(proxy) == ["delta"]
    # A VPN change re-words the row: delta applied its enable.
    model.apply_vpn(VpnState("delta", True, "10.42.42.200", "", pending=False))
    proxy.set_filter_text("lab enabled")
    assert names(proxy) == ["bravo", "delta"]
    with pytest.raises(ValueError):
        proxy.set_state_filter("bogus")


async def test_refresh_keeps_the_current_row_on_its_device(qapp):
    from PySide6.QtCore import QPersistentModelIndex

    model, proxy = await sample_model()
    proxy.sort(Col.LAST_SEEN)
    current = QPersistentModelIndex(proxy.index(names(proxy).index("bravo"), Col.TARGET))
    fresh = [row("aardvark", seen=timedelta(seconds=1)), *SAMPLE]
    assert await model.set_rows("f", fresh, now=NOW.timestamp())
    assert model.total == 6
    assert current.isValid() and proxy.row(current.row()).device.name == "bravo"
    assert current.column() == Col.TARGET
    assert names(proxy)[0] == "aardvark"  # the sort order holds for new rows
    proxy.set_filter_text("echo")
    assert not current.isValid()  # filtered out
    proxy.set_filter_text("")


async def test_model_apply_vpn_marks_pending(qapp):
    model, proxy = await sample_model()
    changed = []
    model.dataChanged.connect(lambda a, b, roles: changed.append(a.row()))
    assert model.apply_vpn(VpnState("echo", True, "10.42.42.77", "pk", pending=True))
    r = names(proxy).index("echo")
    assert changed == [r]
    assert proxy.index(r, Col.VPN).data() == "pending"
    assert proxy.index(r, Col.ADDRESS).data() == "10.42.42.77"
    assert proxy.row(r).vpn_enabled and model.on_vpn == 3
    proxy.set_filter_text("10.42.42.77")  # the new address is searchable
    assert names(proxy) == ["echo"]
    assert not model.apply_vpn(VpnState("nobody", True, "", "", pending=True))


async def test_newer_set_rows_overtakes_an_older_one(qapp):
    model = DeviceTableModel()
    many = [row(f"dev-{i:05d}") for i in range(5000)]  # several chunks: it yields
    first = asyncio.ensure_future(model.set_rows("f", many, now=NOW.timestamp()))
    await asyncio.sleep(0)
    assert await model.set_rows("f", SAMPLE, now=NOW.timestamp())
    assert await first is False
    assert model.total == 5


# -- window on the demo factory -------------------------------------------------------------


async def test_lists_demo_devices_with_status_line(window, backend):
    progress = signal_future(backend.devicesProgress)
    loaded = signal_future(window.model.rowsReplaced, lambda: window.model.total > 0)
    window.show_factory()
    assert window.progress.isVisible()
    assert window.placeholder.text() == "Loading devices…"
    assert window.status.text() == "demo-factory: loading devices…"
    assert (await wait(progress))[1:] == (36, 36)
    await wait(loaded)
    m = window.model
    assert window.proxy.rowCount() == 36 == m.total
    assert window.stack.currentWidget() is window.table
    online = sum(1 for r in range(36) if window.proxy.row(r).online())
    on_vpn = sum(1 for r in range(36) if window.proxy.row(r).vpn_enabled)
    assert window.status.text() == f"demo-factory: 36 devices, {online} online, {on_vpn} on VPN"
    assert "demo-factory" in window.windowTitle()
    assert not window.progress.isVisible()
    assert not window.factory_combo.isVisibleTo(window)  # one factory: no picker


async def test_search_filters_and_escape_clears(window):
    await show_loaded(window)
    first = window.proxy.row(0).device.name
    applied = signal_future(window.model.filterApplied)
    QTest.keyClicks(window.search, first.upper())
    await wait(applied)
    await asyncio.sleep(0)  # let a trailing debounce tick run
    assert names(window.proxy) == [first]
    assert window.status.text().endswith(f"1 match for “{first.upper()}”")
    applied = signal_future(window.model.filterApplied)
    window.search.setText("zz-no-such-device")
    await wait(applied)
    assert window.stack.currentWidget() is window.placeholder
    assert "No devices match" in window.placeholder.text()
    window.clear_search()
    assert window.search.text() == "" and window.proxy.rowCount() == 36
    assert window.stack.currentWidget() is window.table


async def test_header_click_sorts(window):
    await show_loaded(window)
    header = window.table.horizontalHeader()
    x = header.sectionViewportPosition(Col.LAST_SEEN) + 10
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    seen = [window.proxy.row(r).device.last_seen for r in range(36)]
    known = [s for s in seen if s is not None]
    assert known == sorted(known, reverse=True)  # most recent first
    assert all(s is None for s in seen[len(known) :])  # never seen last
    window.table.sortByColumn(Col.NAME, Qt.SortOrder.DescendingOrder)
    listed = names(window.proxy)
    assert listed == sorted(listed, key=str.casefold, reverse=True)


async def test_context_menu_reasons_follow_vpn_and_tunnel(window, backend):
    await show_loaded(window)
    r_off, _ = find_row(window, lambda d: not d.vpn_enabled and not d.vpn_address)
    menu = window.context_menu_for(r_off)
    a = actions(menu)
    assert list(a) == [
        "ssh",
        "copy_ssh",
        "copy_address",
        "copy_to",
        "copy_from",
        "forward",
        "enable_vpn",
        "disable_vpn",
        "favourite",
        "web",
    ]
    assert not a["ssh"].isEnabled() and "VPN is off" in a["ssh"].text()
    # Copying goes where SSH goes: refused for the same reason.
    assert not a["copy_to"].isEnabled() and "VPN is off" in a["copy_to"].text()
    assert not a["copy_from"].isEnabled() and "VPN is off" in a["copy_from"].text()
    assert not a["copy_ssh"].isEnabled()
    assert not a["copy_address"].isEnabled() and "no VPN address" in a["copy_address"].text()
    assert a["enable_vpn"].isEnabled()
    assert not a["disable_vpn"].isEnabled() and "never enabled" in a["disable_vpn"].text()
    assert not a["web"].isEnabled()  # the demo has no web app
    menu.deleteLater()

    r_on, _ = find_row(window, lambda d: d.vpn_enabled and not d.vpn_pending)
    a = actions(menu := window.context_menu_for(r_on))
    assert not a["ssh"].isEnabled() and "connect the tunnel first" in a["ssh"].text()
    assert "connect the tunnel first" in a["ssh"].toolTip()
    assert a["copy_ssh"].isEnabled() and a["copy_address"].isEnabled()
    assert not a["enable_vpn"].isEnabled() and "already enabled" in a["enable_vpn"].text()
    assert a["disable_vpn"].isEnabled()
    menu.deleteLater()

    (tunnel,) = backend.tunnels()
    assert (await backend.connect(tunnel.name)).state is State.CONNECTED
    a = actions(menu := window.context_menu_for(r_on))
    assert a["ssh"].isEnabled() and a["ssh"].text().startswith("Open &SSH terminal")
    menu.deleteLater()


async def test_enable_vpn_patches_and_row_turns_pending(window, backend):
    await show_loaded(window)
    r, device = find_row(window, lambda d: not d.vpn_enabled and not d.vpn_pending)
    name = device.device.name
    changed = signal_future(backend.vpnChanged, lambda f, state: state.device == name)
    backend.services.demo.server.clear_requests()
    actions(window.context_menu_for(r))["enable_vpn"].trigger()
    _, state = await wait(changed)
    assert state.pending and state.enabled
    patches = [
        req
        for req in backend.services.demo.server.requests
        if req.method == "PATCH" and req.path == f"/ota/devices/{name}/config/"
    ]
    assert len(patches) == 1 and b"wireguard-client" in patches[0].body
    r = window.proxy.row_of(name)
    assert window.proxy.index(r, Col.VPN).data() == "pending"
    assert window.proxy.index(r, Col.ADDRESS).data() == state.address
    a = actions(window.context_menu_for(r))
    assert not a["enable_vpn"].isEnabled() and "not applied yet" in a["enable_vpn"].text()
    # The next refresh tells the truth: still pending (the demo applies after 15 s).
    loaded = signal_future(window.model.rowsReplaced)
    window.refresh()
    await wait(loaded)
    assert window.model.device(name).vpn_pending


async def test_enable_without_wireguard_key_says_so(window, backend):
    await show_loaded(window)
    fake = backend.services.demo.server.factory
    r, device = find_row(
        window, lambda d: fake.current_file(d.device.name, "wireguard-client") is None
    )
    notices = []
    backend.notice.connect(lambda *a: notices.append(a))
    done = signal_future(window.actionFinished, lambda what: what == "Enable VPN")
    actions(window.context_menu_for(r))["enable_vpn"].trigger()
    await wait(done)
    assert window.message_bar.isVisible()
    assert "no public key" in window.message_bar.text.text()
    assert notices == []  # shown here, where the user clicked, not as a notification
    a = actions(window.context_menu_for(r))
    assert not a["enable_vpn"].isEnabled() and "no WireGuard key yet" in a["enable_vpn"].text()
    assert "no WireGuard key yet" in a["disable_vpn"].text()
    assert device_requests(backend, "PATCH", f"/ota/devices/{device.device.name}/") == 0


HOSTILE_REPLIES: dict[str, tuple[int, Callable[[], Any], dict[str, str], str]] = {
    "deep-json": (200, lambda: b"[" * 100_000 + b"]" * 100_000, {}, "malformed reply"),
    "escapes": (403, lambda: {"msg": hostile.ESCAPES, "errors": {hostile.ESCAPES: "x"}}, {}, "403"),
    "gzip-bomb": (
        200,
        lambda: hostile.gzip_bomb(64 << 20),
        {"Content-Encoding": "gzip"},
        "larger than",
    ),
}


@pytest.mark.parametrize("reply", HOSTILE_REPLIES)
async def test_hostile_reply_keeps_rows_and_shows_one_safe_sentence(window, backend, reply):
    status, body, headers, expected = HOSTILE_REPLIES[reply]
    await show_loaded(window)
    backend.services.demo.server.inject(
        "GET", r"^/ota/devices/$", status=status, body=body(), headers=headers
    )
    notices = []
    backend.notice.connect(lambda *a: notices.append(a))
    failed = signal_future(backend.devicesFailed)
    window.refresh()
    _, message = await wait(failed)
    assert expected in message
    assert message.isprintable(), repr(message)  # no escape sequence, no bidi control
    assert window.model.total == 36 and window.proxy.rowCount() == 36
    text = window.message_bar.text.text()
    assert text.startswith("Could not refresh the device list") and text.isprintable()
    await asyncio.sleep(0)
    assert notices == []


async def test_failed_refresh_keeps_rows_and_shows_error_inline(window, backend):
    await show_loaded(window)
    client = await backend.client("demo-factory")
    client.backoff_base = 0.001  # fast retries
    # Every attempt of one refresh fails; the Retry after it succeeds.
    attempts = client.max_retries + 1
    backend.services.demo.server.inject("GET", r"^/ota/devices/$", status=503, times=attempts)
    notices = []
    backend.notice.connect(lambda *a: notices.append(a))
    failed = signal_future(backend.devicesFailed)
    window.refresh()
    _, message = await wait(failed)
    assert "503" in message
    assert window.model.total == 36 and window.proxy.rowCount() == 36
    assert window.stack.currentWidget() is window.table
    assert window.message_bar.isVisible()
    assert window.message_bar.text.text().startswith("Could not refresh the device list")
    assert window.message_bar.retry_button.isVisible()
    assert not window.progress.isVisible()
    await asyncio.sleep(0)
    assert notices == []  # inline, not a desktop notification every minute
    loaded = signal_future(window.model.rowsReplaced)
    window.message_bar.retry_button.click()
    await wait(loaded)
    assert not window.message_bar.isVisible()


async def test_no_device_list_requests_while_hidden(window, backend):
    window.refresh_interval_ms = 40
    await show_loaded(window)
    # Control: shown, the timer does reload.
    loaded = signal_future(backend.devicesLoaded)
    await wait(loaded)
    window.hide()
    await asyncio.sleep(0)
    backend.services.demo.server.clear_requests()
    # Nothing to await for "nothing happens": ten timer intervals of silence.
    await asyncio.sleep(0.4)
    assert device_requests(backend) == 0
    window.refresh()  # F5 or a stray call while hidden does nothing either
    await asyncio.sleep(0.05)
    assert device_requests(backend) == 0


async def test_show_refreshes_only_stale_data(window, backend):
    await show_loaded(window)
    window.hide()
    backend.services.demo.server.clear_requests()
    window.show_factory()  # data younger than the interval: no request
    await asyncio.sleep(0.05)
    assert device_requests(backend) == 0
    window.hide()
    window.refresh_interval_ms = 1  # now the data is older than the interval
    loaded = signal_future(window.model.rowsReplaced)
    window.show_factory()
    await wait(loaded)
    assert device_requests(backend) >= 1


async def test_keyboard(window, backend, monkeypatch):
    await show_loaded(window)
    window.activateWindow()
    await asyncio.sleep(0)
    window.table.setFocus()
    QTest.keyClick(window.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.search.hasFocus()
    window.search.setText("zz")
    QTest.keyClick(window.search, Qt.Key.Key_Escape)
    assert window.search.text() == "" and window.table.hasFocus()

    loaded = signal_future(window.model.rowsReplaced)
    QTest.keyClick(window.table, Qt.Key.Key_F5)
    await wait(loaded)

    opened: list[tuple[str, str]] = []

    async def fake_open_ssh(factory: str, device: str, route: str | None = None) -> int:
        opened.append((factory, device))
        return 1

    monkeypatch.setattr(backend, "open_ssh", fake_open_ssh)
    (tunnel,) = backend.tunnels()
    await backend.connect(tunnel.name)
    r, device = find_row(window, lambda d: d.vpn_enabled)
    window.table.setCurrentIndex(window.proxy.index(r, 0))
    QTest.keyClick(window.table, Qt.Key.Key_Return)
    for _ in range(5):
        await asyncio.sleep(0)
    assert opened == [("demo-factory", device.device.name)]

    popped: list[QMenu] = []
    monkeypatch.setattr(QMenu, "popup", lambda self, *a: popped.append(self))
    QTest.keyClick(window.table, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClick(window.table, Qt.Key.Key_Menu)
    assert len(popped) == 2
    assert actions(popped[0])["ssh"].isEnabled()


async def test_double_click_without_vpn_explains_instead_of_failing(window, monkeypatch, backend):
    await show_loaded(window)
    calls = []
    monkeypatch.setattr(backend, "open_ssh", lambda *a, **k: calls.append(a))
    r, device = find_row(window, lambda d: not d.vpn_enabled)
    rect = window.table.visualRect(window.proxy.index(r, Col.NAME))
    # QTest's double click alone is no press-release-press, which QAbstractItemView wants.
    QTest.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert calls == []
    assert window.message_bar.isVisible()
    assert f"Cannot open SSH to {device.device.name}: VPN is off" in window.message_bar.text.text()


async def test_ssh_with_the_tunnel_down_offers_to_connect_first(window, monkeypatch, backend):
    await show_loaded(window)
    opened: list[tuple[str, str]] = []

    async def open_ssh(factory: str, name: str) -> int:
        opened.append((factory, name))
        return 4242

    monkeypatch.setattr(backend, "open_ssh", open_ssh)
    r, device = find_row(window, lambda d: d.vpn_enabled and bool(d.vpn_address))
    name = device.device.name
    rect = window.table.visualRect(window.proxy.index(r, Col.NAME))
    QTest.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    bar = window.message_bar
    assert opened == [] and bar.isVisibleTo(window)
    assert "which is down" in bar.text.text()
    assert bar.action_button.text() == "Connect and open SSH"
    done = signal_future(window.actionFinished)
    bar.action_button.click()
    await wait(done)
    assert backend.tunnel_states["demo-factory"].state is State.CONNECTED
    assert opened == [("demo-factory", name)]


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot(QUrl)
    def handle(self, url: QUrl) -> None:
        self.urls.append(url.toString())


async def test_copy_and_web_actions(window, backend):
    await show_loaded(window)
    r, device = find_row(window, lambda d: d.vpn_enabled)
    name = device.device.name
    actions(window.context_menu_for(r))["copy_address"].trigger()
    assert QGuiApplication.clipboard().text() == device.vpn_address

    expected = shlex.join(await backend.ssh_command("demo-factory", name))
    done = signal_future(window.actionFinished)
    actions(window.context_menu_for(r))["copy_ssh"].trigger()
    assert await wait(done) == ("Copy SSH command",)
    assert QGuiApplication.clipboard().text() == expected
    assert expected.startswith("ssh ") and expected.endswith(f"fio@{device.vpn_address}")

    # The demo's fake API has no web app: the action says so instead of opening the
    # public one.
    web = actions(window.context_menu_for(r))["web"]
    assert not web.isEnabled() and "no web app known" in web.text()
    # Where the sign-in tells the web app, the action opens the device's page there.
    page = f"https://app.example.com/factories/demo-factory/devices/{name}/"
    backend.web_url = lambda factory, device: page if device == name else None
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("https", catcher, "handle")
    try:
        actions(window.context_menu_for(r))["web"].trigger()
    finally:
        QDesktopServices.unsetUrlHandler("https")
    assert catcher.urls == [page]


async def test_tunnel_bar_connects_and_disconnects(window, backend):
    await show_loaded(window)
    assert "disconnected" in window.tunnel_label.text()
    assert window.tunnel_button.text() == "Connect"
    done = signal_future(window.actionFinished)
    window.tunnel_button.click()
    assert not window.tunnel_button.isEnabled()  # no double clicks while it works
    await wait(done)
    assert backend.tunnel_states["demo-factory"].state is State.CONNECTED
    assert "connected" in window.tunnel_label.text()
    assert window.tunnel_button.text() == "Disconnect" and window.tunnel_button.isEnabled()
    done = signal_future(window.actionFinished)
    window.tunnel_button.click()
    await wait(done)
    assert backend.tunnel_states["demo-factory"].state is State.DISCONNECTED
    assert window.tunnel_button.text() == "Connect"


async def test_tunnel_bar_says_waiting_and_unreachable_once(window, backend):
    from fiotray.core.tunnelstate import TunnelStatus

    await show_loaded(window)
    interface = backend.tunnels()[0].interface
    waiting = "waiting for the server to admit this laptop: a self-service fiotray-server ..."
    backend._on_tunnel(TunnelStatus("demo-factory", interface, State.WAITING, detail=waiting))
    text = window.tunnel_label.text()
    assert text.count("waiting for the server to admit this laptop") == 1, text
    assert "a self-service fiotray-server" in text
    assert window.tunnel_button.text() == "Disconnect"  # up, though not admitted yet
    stale = "server unreachable: no handshake for over 3 minutes"
    backend._on_tunnel(TunnelStatus("demo-factory", interface, State.STALE, detail=stale))
    text = window.tunnel_label.text()
    assert text.count("server unreachable") == 1 and "over 3 minutes" in text, text


async def test_factory_picker_and_signed_out_state(window, backend):
    await show_loaded(window)
    store = backend.services.factories
    store.save(Factory(factory="other-factory", auth="token", api_url="https://127.0.0.1:9"))
    backend.configChanged.emit()
    combo = window.factory_combo
    assert combo.isVisibleTo(window)
    assert [combo.itemText(i) for i in range(combo.count())] == ["demo-factory", "other-factory"]
    assert window.factory == "demo-factory" and window.model.total == 36

    for name in ("other-factory", "demo-factory"):
        store.remove(name)
    backend.configChanged.emit()
    assert window.factory is None and window.model.total == 0
    assert window.stack.currentWidget() is window.placeholder
    assert "Sign in" in window.placeholder.text()
    assert window.status.text() == "Not signed in to any factory."


async def test_long_names_lose_their_middle_not_their_end(window):
    from PySide6.QtWidgets import QStyleOptionViewItem

    from fiotray.gui.device_model import Col

    await show_loaded(window)

    def elide(column: int) -> Qt.TextElideMode:
        # What the view hands its delegate to paint a cell, as the delegate leaves it.
        index = window.proxy.index(0, column)
        option = QStyleOptionViewItem()
        window.table.initViewItemOption(option)
        window.table.itemDelegateForIndex(index).initStyleOption(option, index)
        return option.textElideMode

    assert elide(Col.NAME) == Qt.TextElideMode.ElideMiddle
    assert elide(Col.TARGET) == Qt.TextElideMode.ElideRight


async def test_a_refused_sign_in_offers_sign_in_again_and_reloads_after_it(own_backend):
    from fiotray.core.secrets import factory_key

    # The user's own factory (a sign-in from the demo would leave it instead).
    backend = own_backend
    window = DevicesWindow(backend)
    await show_loaded(window)
    fake = backend.fake_api
    old = backend.services.secrets.get(factory_key("demo-factory", "api_token"))
    fake.factory.revoke(old)  # expired or revoked on the server
    failed = signal_future(backend.devicesFailed)
    window.refresh()
    await wait(failed)
    bar = window.message_bar
    assert bar.isVisibleTo(window) and bar.action_button.isVisibleTo(window)
    assert bar.action_button.text() == "Sign in again…"
    assert not bar.retry_button.isVisibleTo(window)
    assert "demo-factory" in backend.needs_sign_in
    asked = signal_future(window.signInRequested)
    bar.action_button.click()
    assert await wait(asked) == ("demo-factory",)

    fake.factory.add_api_token("fresh-token-1234")
    reloaded = signal_future(backend.devicesLoaded)
    await backend.sign_in_token("demo-factory", "fresh-token-1234", api_url=fake.api_url)
    await wait(reloaded)
    assert not bar.isVisibleTo(window) and "demo-factory" not in backend.needs_sign_in
    assert window.model.total == 36
    window.hide()
    window.deleteLater()


async def test_the_demo_says_so_and_offers_a_real_sign_in(window):
    await show_loaded(window)
    bar = window.demo_bar
    assert bar.isVisibleTo(window) and "demo factory" in bar.text.text()
    asked = signal_future(window.signInRequested)
    bar.action_button.click()
    assert await wait(asked) == ("",)


async def test_the_menu_bar_switches_factory_and_quits(backend):
    from fiotray.core.factories import Factory
    from fiotray.gui import menus

    backend.services.factories.save(Factory("acme", "token"))
    calls: list[Any] = []
    actions = menus.MenuActions(
        toggle=calls.append,
        devices=calls.append,
        ssh=lambda f, d: calls.append((f, d)),
        sign_out=calls.append,
        open_dialog=calls.append,
        quit=lambda: calls.append("quit"),
    )
    w = DevicesWindow(backend, menu_actions=lambda: actions)
    try:
        w.show()
        bar = w.menu_bar
        bar.rebuild_all()
        factory_menu = bar.factory_menu
        choices = [a for a in factory_menu.actions() if a.isCheckable()]
        assert [a.text() for a in choices] == ["acme", "demo-factory"]
        assert [a.isChecked() for a in choices] == [False, True]
        choices[0].trigger()
        assert w.factory == "acme" and w.factory_combo.currentText() == "acme"
        bar.rebuild_all()
        assert [a.isChecked() for a in factory_menu.actions() if a.isCheckable()] == [True, False]
        # "Devices — F…" entries of the shared sections show F here, not a second window.
        bar.menu_actions().devices("demo-factory")  # type: ignore[union-attr]
        assert w.factory == "demo-factory" and calls == []
        w.activateWindow()
        await until(w.isActiveWindow)
        w.table.setFocus()
        QTest.keyClick(w.table, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        assert calls == ["quit"]
        QTest.keyClick(w.table, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)
        assert not w.isVisible()
    finally:
        w.deleteLater()


# -- several rows, state filters, favourites ---------------------------------------------


def select(window: DevicesWindow, rows: list[int]) -> None:
    model = window.table.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    model.clearSelection()
    # The current row without touching the selection (the view's setCurrentIndex would
    # clear it or not, depending on the keyboard modifiers held).
    model.setCurrentIndex(
        window.proxy.index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate
    )
    for r in rows:
        model.select(window.proxy.index(r, 0), flags)


def _address(fake: Any, name: str) -> str:
    text = fake.current_file(name, "wireguard-client") or ""
    return next((ln[8:] for ln in text.splitlines() if ln.startswith("address=")), "")


async def test_several_rows_enable_vpn_at_once(window, backend):
    await show_loaded(window)
    fake = backend.services.demo.server.factory
    no_key = lambda d: fake.current_file(d.device.name, "wireguard-client") is None  # noqa: E731
    rows = [r for r in range(window.proxy.rowCount())]
    can = [
        r for r in rows if not window.proxy.row(r).vpn_enabled and not no_key(window.proxy.row(r))
    ]
    keyless = next(r for r in rows if no_key(window.proxy.row(r)))
    on = next(
        r for r in rows if window.proxy.row(r).vpn_enabled and not window.proxy.row(r).vpn_pending
    )
    picked = sorted([*can[:4], keyless, on])
    select(window, picked)
    assert window.status.text().endswith("· 6 selected")
    menu = window._popup_menu(picked[0], QPoint(0, 0))  # the row is one of the selected
    try:
        a = actions(menu)
        assert "ssh" not in a  # no single-device entries for several rows
        assert a["enable_vpn"].text() == "&Enable VPN on 5 devices (1 skipped: 1 already enabled)"
        assert a["enable_vpn"].isEnabled()
        assert a["disable_vpn"].text().startswith("&Disable VPN on 1 device (5 skipped: ")
        names_picked = [window.proxy.row(r).device.name for r in picked]
        on_name, keyless_name = (
            window.proxy.row(on).device.name,
            window.proxy.row(keyless).device.name,
        )
        backend.services.demo.server.clear_requests()
        done = signal_future(window.actionFinished, lambda what: what == "Enable VPN")
        a["enable_vpn"].trigger()
        await wait(done)
    finally:
        menu.close()
    text = window.message_bar.text.text()
    assert text.startswith(f"Enabled VPN on 4 of 5 devices; {keyless_name}: Device has no public")
    assert text.endswith("; 1 skipped.") and window.message_bar.level == "warning"
    assert window.message_bar.text.textFormat() == Qt.TextFormat.PlainText  # names: no markup
    changed = [n for n in names_picked if n not in (on_name, keyless_name)]
    addresses = [_address(fake, n) for n in changed]
    assert all(addresses) and len(set(addresses)) == 4
    for n in changed:
        assert window.proxy.index(window.proxy.row_of(n), Col.VPN).data() == "pending"
    assert device_requests(backend, "PATCH", f"/ota/devices/{on_name}/") == 0
    # The keyless device is remembered: its single menu says why now.
    single = actions(window.context_menu_for(window.proxy.row_of(keyless_name)))
    assert "no WireGuard key yet" in single["enable_vpn"].text()
    # Enter still means SSH on the current row, not an action on the selection.
    assert window.table.currentIndex().row() == picked[0]


async def test_selection_menu_when_nothing_applies(window, backend):
    await show_loaded(window)
    rows = [r for r in range(window.proxy.rowCount()) if window.proxy.row(r).vpn_enabled]
    menu = window.selection_menu_for(rows[:3])
    a = actions(menu)
    assert not a["enable_vpn"].isEnabled()
    assert a["enable_vpn"].text().startswith("&Enable VPN — none of these: ")
    assert a["disable_vpn"].isEnabled()
    menu.close()


async def test_state_filter_combo(window, backend):
    await show_loaded(window)
    applied = signal_future(window.model.filterApplied)
    window.set_state_filter("enabled")
    await wait(applied)
    shown = names(window.proxy)
    enabled = [r.device.name for r in window.model.rows() if r.vpn_enabled and not r.vpn_pending]
    assert sorted(shown) == sorted(enabled) and 0 < len(shown) < 36
    assert window.status.text().endswith(f"· {len(shown)} shown: VPN enabled")
    window.search.setText("zz-none")
    window._apply_filter()
    assert window.placeholder.text().startswith("No devices match “zz-none” among vpn enabled.")
    window.search.setText("")
    window._apply_filter()
    window.set_state_filter("favourites")
    assert window.proxy.rowCount() == 0
    assert "No devices to show: Favourites." in window.placeholder.text()
    window.set_state_filter("all")
    assert window.proxy.rowCount() == 36


async def test_favourites_from_the_menu(window, backend):
    await show_loaded(window)
    window.set_state_filter("favourites")
    window.set_state_filter("all")
    name = window.proxy.row(3).device.name
    a = actions(window.context_menu_for(3))
    assert a["favourite"].text() == "Add to &favourites"
    a["favourite"].trigger()
    assert ("demo-factory", name) in backend.settings.favourites
    assert ("demo-factory", name) in backend.services.settings.load().favourites
    window.set_state_filter("favourites")
    assert names(window.proxy) == [name]
    a = actions(window.context_menu_for(0))
    assert a["favourite"].text() == "Remove from &favourites"
    a["favourite"].trigger()  # the favourites filter follows at once
    assert window.proxy.rowCount() == 0
    assert backend.services.settings.load().favourites == ()
    # Several rows: add them all in one go.
    window.set_state_filter("all")
    menu = window.selection_menu_for([0, 1, 2])
    assert actions(menu)["favourite"].text() == "Add 3 to &favourites"
    actions(menu)["favourite"].trigger()
    menu.close()
    assert len(backend.services.settings.load().favourites) == 3


async def test_the_vpn_column_shows_how_far_an_enabled_device_got(qapp):
    from fiotray.core.devices import VpnState

    model, proxy = await sample_model()
    changed: list = []
    model.dataChanged.connect(lambda *a: changed.append(a))
    model.set_reach("bravo", ("reachable", "bravo is reachable at 10.42.42.10"))
    model.set_reach("delta", ("checking", "waiting"))  # pending: its word waits
    assert changed, "the view is told the VPN column changed"
    cells = dict(zip(names(proxy), column(proxy, Col.VPN), strict=True))
    assert cells["bravo"] == "enabled · reachable"
    assert cells["delta"] == "pending"
    i = names(proxy).index("bravo")
    assert proxy.index(i, Col.VPN).data(Qt.ItemDataRole.ToolTipRole) == (
        "VPN enabled; bravo is reachable at 10.42.42.10"
    )
    # Sorting and search go by the VPN state, not the added word.
    proxy.sort(Col.VPN)
    assert names(proxy)[:2] == ["bravo", "delta"]  # enabled, then pending
    # Disabled again: no word; forgotten: no word; another factory: forgotten.
    model.apply_vpn(VpnState("bravo", False, "10.42.42.10", "k", False))
    assert proxy.index(names(proxy).index("bravo"), Col.VPN).data() == "disabled"
    model.set_reach("bravo", None)
    model.set_reach("echo", ("checking", "x"))
    assert await model.set_rows("other", SAMPLE, now=NOW.timestamp())
    model.apply_vpn(VpnState("echo", True, "10.42.42.99", "k", False))
    assert proxy.index(names(proxy).index("echo"), Col.VPN).data() == "enabled"


async def test_a_reach_word_widens_the_vpn_column_and_survives_a_reload(window, backend):
    from fiotray.gui.device_model import Col

    await show_loaded(window)
    r, row = find_row(window, lambda d: d.vpn_enabled and not d.vpn_pending)
    narrow = window.table.columnWidth(Col.VPN)
    name = row.device.name
    backend._set_reach("demo-factory", name, "not reachable", "it never answered")
    assert window.proxy.index(r, Col.VPN).data() == "enabled · not reachable"
    wanted = window.table.fontMetrics().horizontalAdvance("enabled · not reachable")
    assert window.table.columnWidth(Col.VPN) > max(narrow, wanted)
    # A refresh (new rows) keeps the word: the backend still has it.
    loaded = signal_future(window.model.rowsReplaced)
    window.refresh()
    await wait(loaded)
    r, _ = find_row(window, lambda d: d.device.name == name)
    assert window.proxy.index(r, Col.VPN).data() == "enabled · not reachable"
