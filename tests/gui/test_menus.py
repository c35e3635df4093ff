"""The menus' sections outside the tray: a window's menu bar fills its menus from them."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QMenu, QMenuBar

from fiotray.gui import dialogs, menus

TUNNEL = "demo-factory"


def recorder() -> tuple[menus.MenuActions, list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []
    actions = menus.MenuActions(
        toggle=lambda name: calls.append(("toggle", name)),
        devices=lambda factory: calls.append(("devices", factory)),
        ssh=lambda factory, device: calls.append(("ssh", (factory, device))),
        sign_out=lambda factory: calls.append(("sign_out", factory)),
        open_dialog=lambda load: calls.append(("open", load)),
        quit=lambda: calls.append(("quit", None)),
        tunnel_details=lambda name: calls.append(("details", name)),
        remove_tunnel=lambda name: calls.append(("remove", name)),
    )
    return actions, calls


def entry(menu: QMenu, prefix: str):
    found = [a for a in menu.actions() if a.text().replace("&", "").startswith(prefix)]
    assert found, [a.text() for a in menu.actions()]
    return found[0]


async def test_a_menu_bar_reuses_the_sections(backend):
    await backend.refresh_tunnels()
    actions, calls = recorder()
    bar = QMenuBar()
    tunnels, devices, account, app = (
        bar.addMenu(t) for t in ("Tunnels", "Devices", "Account", "fiotray")
    )
    factories = menus.factory_names(backend)
    menus.add_tunnel_entries(tunnels, backend, actions)
    menus.add_device_entries(devices, backend, factories, actions)
    menus.add_account_entries(account, factories, actions)
    menus.add_app_entries(app, actions)
    entry(tunnels, TUNNEL).trigger()
    entry(devices, "Devices…").trigger()
    entry(account, f"Sign out of {TUNNEL}").trigger()
    for text in ("Sign in…", "Add tunnel…", "Import WireGuard config…"):
        entry(account, text).trigger()
    entry(app, "Settings…").trigger()
    entry(app, "Help").trigger()
    entry(app, "About fiotray").trigger()
    assert calls == [
        ("toggle", TUNNEL),
        ("devices", TUNNEL),
        ("sign_out", TUNNEL),
        ("open", dialogs.sign_in_dialog),
        ("open", dialogs.add_tunnel_dialog),
        ("open", dialogs.import_tunnel_dialog),
        ("open", dialogs.settings_dialog),
        ("open", dialogs.help_dialog),
        ("open", dialogs.about_dialog),
    ]
    bar.deleteLater()


async def test_refilling_drops_the_old_submenus(backend):
    backend.save_settings(dataclasses.replace(backend.settings, recent=((TUNNEL, "dev-1"),)))
    actions, calls = recorder()
    menu = QMenu()
    for _ in range(3):
        menus.fill_tray_menu(menu, backend, actions)
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    subs = menu.findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly)
    # One tunnel's submenu and the recent devices, once each.
    assert sorted(m.title() for m in subs) == [
        "Recent devices",
        f"{TUNNEL}: details, copy, remove",
    ]
    recent = next(m for m in subs if m.title() == "Recent devices")
    entry(entry(recent, "dev-1").menu(), "Open SSH terminal").trigger()
    entry(menu, "Quit").trigger()
    assert calls == [("ssh", (TUNNEL, "dev-1")), ("quit", None)]


def test_before_the_backend_the_menu_says_starting(qapp):
    actions, _ = recorder()
    menu = QMenu()
    menus.fill_tray_menu(menu, None, actions)
    assert [a.text() for a in menu.actions()] == ["fiotray: starting…"]
    assert not menu.actions()[0].isEnabled()


async def test_each_tunnel_has_details_copy_and_remove(backend):
    from PySide6.QtGui import QGuiApplication

    await backend.refresh_tunnels()
    actions, calls = recorder()
    menu = QMenu()
    menus.add_tunnel_entries(menu, backend, actions)
    (sub,) = menu.findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly)
    tunnel = backend.tunnels()[0]
    entry(sub, "Copy my VPN address").trigger()
    assert QGuiApplication.clipboard().text() == tunnel.address
    entry(sub, "Copy my public key").trigger()
    assert QGuiApplication.clipboard().text() == tunnel.public_key
    entry(sub, "Details…").trigger()
    entry(sub, "Remove…").trigger()
    assert calls == [("details", TUNNEL), ("remove", TUNNEL)]
    text = menus.tunnel_details(backend, TUNNEL)
    for line in (
        f"My VPN address: {tunnel.address}",
        f"My public key: {tunnel.public_key}",
        f"Interface: {tunnel.interface}",
        "State: disconnected",
    ):
        assert line in text.splitlines(), text
    menu.deleteLater()


async def test_several_factories_get_a_submenu_each(backend):
    from fiotray.core.factories import Factory

    for name in ("acme", "globex", "initech"):
        backend.services.factories.save(Factory(name, "token"))
    backend.save_settings(
        dataclasses.replace(
            backend.settings, recent=(("acme", "gw-1"), (TUNNEL, "dev-1"), ("globex", "gw-9"))
        )
    )
    backend.needs_sign_in.add("globex")
    actions, calls = recorder()
    actions = dataclasses.replace(
        actions,
        sign_in_again=lambda f: calls.append(("again", f)),
        copy_address=lambda f, d: calls.append(("copy", (f, d))),
    )
    menu = QMenu()
    menus.fill_tray_menu(menu, backend, actions)
    top = [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]
    # Four factories: no line per factory per action (it made an 18-line menu).
    assert top == [
        "fiotray (demo)",
        "Sign in again to globex…",
        f"{TUNNEL} — checking…",
        f"{TUNNEL}: details, copy, remove",
        "acme",
        TUNNEL,
        "globex (sign in again)",
        "initech",
        "Sign in…",
        "Add tunnel…",
        "Import WireGuard config…",
        "Settings…",
        "Help",
        "About fiotray",
        "Quit",
    ]
    acme = entry(menu, "acme").menu()
    assert [a.text().replace("&", "") for a in acme.actions() if not a.isSeparator()] == [
        "Devices…",
        "Recent devices",
        "Sign out",
    ]
    entry(acme, "Devices…").trigger()
    gw = entry(entry(acme, "Recent devices").menu(), "gw-1").menu()
    entry(gw, "Open SSH terminal").trigger()
    entry(gw, "Copy VPN address").trigger()
    entry(acme, "Sign out").trigger()
    globex = entry(menu, "globex").menu()
    entry(globex, "Sign in again…").trigger()
    assert calls == [
        ("devices", "acme"),
        ("ssh", ("acme", "gw-1")),
        ("copy", ("acme", "gw-1")),
        ("sign_out", "acme"),
        ("again", "globex"),
    ]
    # Only that factory's devices under it.
    own = next(a for a in menu.actions() if a.text() == TUNNEL).menu()
    recent = entry(own, "Recent devices").menu()
    assert [a.text() for a in recent.actions()] == ["dev-1"]
    assert entry(menu, "initech").menu().actions()[0].text() == "&Devices…"


async def test_favourites_come_first_in_the_device_menus(backend):
    """A device made a favourite (as the devices window and `fiotray favourite` do) is
    listed under Favourites, before the recent ones, and leaves Recent devices."""
    backend.save_settings(
        dataclasses.replace(backend.settings, recent=((TUNNEL, "dev-1"), (TUNNEL, "dev-2")))
    )
    assert backend.set_favourite(TUNNEL, ["dev-2", "dev-9"], True) == 2
    actions, _ = recorder()
    menu = QMenu()
    menus.add_device_entries(menu, backend, [TUNNEL], actions)
    subs = [a.menu().title() for a in menu.actions() if a.menu()]
    assert subs == ["Favourites", "Recent devices"]
    favourites, recent = (a.menu() for a in menu.actions() if a.menu())
    assert [a.text() for a in favourites.actions()] == ["dev-2", "dev-9"]
    assert [a.text() for a in recent.actions()] == ["dev-1"]
    menu.deleteLater()
