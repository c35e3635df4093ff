"""The app's menus, built from the backend's state: for the tray and a window's menu bar.

Each `add_*` function appends one section to a given QMenu; `fill_tray_menu` clears a
menu and puts every section in it. Nothing here keeps state: a caller rebuilds on
`aboutToShow` (Vorta's idiom), so a menu is never out of date and needs no bookkeeping.
What an entry does is up to the caller, through `MenuActions`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QMenu

from fiotray.core import format as fmt
from fiotray.core.errors import FiotrayError
from fiotray.core.tunnelstate import State, TunnelStatus
from fiotray.gui import dialogs

if TYPE_CHECKING:
    from PySide6.QtGui import QAction

    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend
    from fiotray.gui.dialogs import DialogLoader

MAX_MENU_TEXT = 80
UP_STATES = (State.CONNECTED, State.CONNECTING, State.WAITING, State.STALE)


def state_text(status: TunnelStatus | None, now: float | None = None) -> str:
    """What one line of menu or tooltip says of a tunnel: "connected, handshake 12 s ago"."""
    if status is None:
        return "checking…"
    age = status.handshake_age(now)
    if status.state is State.CONNECTED:
        if age is None:
            return "connected"
        return f"connected, handshake {fmt.since(age)}"
    if status.state is State.CONNECTING:
        return "connecting…"
    if status.state is State.WAITING:
        return "waiting for the server to admit this laptop"
    if status.state is State.STALE:
        if age is None:
            return "server unreachable"
        return f"server unreachable, no handshake for {fmt.duration(age)}"
    if status.state is State.ERROR:
        return "failed"
    return "disconnected"


def menu_text(text: str) -> str:
    """Names from a server or a file, safe as a menu label: one line, no mnemonics, bounded."""
    return fmt.safe_text(" ".join(text.split()), MAX_MENU_TEXT).replace("&", "&&")


def app_title(backend: Backend) -> str:
    return "fiotray (demo)" if backend.demo else "fiotray"


@dataclass(frozen=True)
class MenuActions:
    """What the entries do; the tray and a window each bring their own."""

    toggle: Callable[[str], None]  # a tunnel's name
    devices: Callable[[str | None], None]  # a factory, or None for the default
    ssh: Callable[[str, str], None]  # factory, device
    sign_out: Callable[[str], None]  # factory
    open_dialog: Callable[[DialogLoader], object]
    quit: Callable[[], None]
    tunnel_details: Callable[[str], None] | None = None  # a tunnel's name
    sign_in_again: Callable[[str], None] | None = None  # a factory whose sign-in failed
    remove_tunnel: Callable[[str], None] | None = None  # a tunnel's name (asks first)
    copy_address: Callable[[str, str], None] | None = None  # factory, device
    autoconnect: Callable[[str, bool], None] | None = None  # a tunnel's name, on
    forward_port: Callable[[str, str], None] | None = None  # factory, device (asks which)
    stop_forward: Callable[[str], None] | None = None  # a port forward's id
    restore_forwards: Callable[[], None] | None = None  # start the saved ones not running


def add_entry(menu: QMenu, text: str, slot: Callable[[], Any] | None = None) -> QAction:
    """An entry; without a slot a disabled line of information.

    Fixed entries carry an &-mnemonic (a key opens them from the open menu); text
    from data goes through menu_text(), which escapes its '&'.
    """
    action = menu.addAction(text)
    if slot is None:
        action.setEnabled(False)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    return action


def clear_menu(menu: QMenu) -> None:
    menu.clear()
    # clear() leaves submenus alive (the menu is their parent): drop last time's.
    # (All descendants, not direct children only: naming that option would load the Qt
    # namespace, ~14 ms, before the tray icon shows.)
    for sub in menu.findChildren(QMenu):
        sub.deleteLater()


def factory_names(backend: Backend) -> list[str]:
    return [p.factory for p in backend.factories()]


def add_tunnel_entries(menu: QMenu, backend: Backend, actions: MenuActions) -> None:
    """One checkable entry per tunnel (checked while up), its problem under it."""
    tunnels = backend.tunnels()
    if not tunnels:
        add_entry(menu, "No tunnel configured")
    now = time.time()
    for tunnel in tunnels:
        status = backend.tunnel_states.get(tunnel.name)
        text = f"{tunnel.name} — {state_text(status, now)}"
        action = add_entry(menu, menu_text(text), lambda n=tunnel.name: actions.toggle(n))
        action.setCheckable(True)
        action.setChecked(status is not None and status.state in UP_STATES)
        action.setToolTip("Disconnect" if action.isChecked() else "Connect")
        if status is not None and status.detail:
            add_entry(menu, "    " + menu_text(status.detail))
        add_tunnel_submenu(menu, tunnel, actions)


def add_tunnel_submenu(menu: QMenu, tunnel: Tunnel, actions: MenuActions) -> QMenu:
    """What else there is to do with a tunnel: see it, copy what the server's admin
    asks for, remove it."""
    sub = menu.addMenu(menu_text(f"{tunnel.name}: details, copy, remove"))
    name, details, remove = tunnel.name, actions.tunnel_details, actions.remove_tunnel
    if details is not None:
        add_entry(sub, "&Details…", lambda: details(name))
    if tunnel.address:
        address = tunnel.address
        add_entry(sub, "Copy my VPN &address", lambda: copy_text(address))
    add_entry(sub, "Copy my &public key", lambda: copy_text(tunnel.public_key))
    autoconnect = actions.autoconnect
    if autoconnect is not None:
        on = add_entry(sub, "&Connect when fiotray starts", lambda: None)
        on.setCheckable(True)
        on.setChecked(tunnel.autoconnect)
        on.toggled.connect(lambda checked: autoconnect(name, checked))
    if remove is not None:
        sub.addSeparator()
        add_entry(sub, "&Remove…", lambda: remove(name))
    return sub


def copy_text(text: str) -> None:
    from PySide6.QtGui import QGuiApplication

    QGuiApplication.clipboard().setText(text)


def add_device_entries(
    menu: QMenu, backend: Backend, factories: list[str], actions: MenuActions
) -> None:
    """Devices… (one per factory when there are several), then the favourite and recent
    devices of every factory."""
    if len(factories) <= 1:
        factory = factories[0] if factories else None
        add_entry(menu, "&Devices…", lambda: actions.devices(factory))
    else:
        for f in factories:
            add_entry(menu, menu_text(f"Devices — {f}…"), lambda f=f: actions.devices(f))
    add_recent_devices(menu, backend, actions)


def add_recent_devices(
    menu: QMenu, backend: Backend, actions: MenuActions, factory: str | None = None
) -> None:
    """Favourites and recent devices (of `factory` only, when given), one submenu each,
    every device a submenu of what to do with it."""
    settings = backend.settings
    favourites = [p for p in settings.favourites if factory is None or p[0] == factory]
    recent = [
        p for p in settings.recent if p not in favourites and (factory is None or p[0] == factory)
    ]
    several = factory is None and len({f for f, _ in favourites + recent}) > 1
    for title, pairs in (("Favourites", favourites), ("Recent devices", recent)):
        if not pairs:
            continue
        sub = menu.addMenu(title)
        for f, device in pairs:
            label = device + (f" ({f})" if several else "")
            add_device_submenu(sub, menu_text(label), f, device, actions)


def add_device_submenu(
    menu: QMenu, label: str, factory: str, device: str, actions: MenuActions
) -> QMenu:
    sub = menu.addMenu(label)
    add_entry(sub, "Open &SSH terminal", lambda: actions.ssh(factory, device))
    copy = actions.copy_address
    if copy is not None:
        add_entry(sub, "Copy VPN &address", lambda: copy(factory, device))
    forward = actions.forward_port
    if forward is not None:
        add_entry(sub, "Forward a &port…", lambda: forward(factory, device))
    return sub


def open_url(url: str) -> None:
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    QDesktopServices.openUrl(QUrl(url))


def add_forward_entries(menu: QMenu, backend: Backend, actions: MenuActions) -> None:
    """ "Port forwards": one submenu per forward (as last checked), with Open in browser
    for a web port, Copy address and Stop."""
    stop, restore = actions.stop_forward, actions.restore_forwards
    waiting = backend.saved_not_running() if restore is not None else []
    if stop is None or not (backend.forwards or waiting):
        return
    sub = menu.addMenu("&Port forwards")
    if waiting and restore is not None:
        add_entry(sub, menu_text(f"Start saved forwards ({len(waiting)})"), restore)
        if backend.forwards:
            sub.addSeparator()
    for f in backend.forwards:
        label = f.label + ("" if f.alive else " (dropped)")
        entry = sub.addMenu(menu_text(label))
        url = f.url
        if url is not None:
            add_entry(entry, "Open in &browser", lambda url=url: open_url(url))
        if f.spec.kind == "local":
            address = f"127.0.0.1:{f.local_port}"
            add_entry(entry, "&Copy address", lambda a=address: copy_text(a))
        add_entry(entry, "&Stop", lambda fid=f.id: stop(fid))


def add_sign_in_again_entries(menu: QMenu, factories: Iterable[str], actions: MenuActions) -> None:
    """ "Sign in again to F…" for each of `factories` (those whose sign-in was refused)."""
    again = actions.sign_in_again
    if again is None:
        return
    for f in sorted(factories):
        add_entry(menu, menu_text(f"Sign in again to {f}…"), lambda f=f: again(f))


def add_sign_in_entries(menu: QMenu, factories: list[str], actions: MenuActions) -> None:
    """Sign in…, then sign out of each of `factories`."""
    add_entry(menu, "Sign &in…", lambda: actions.open_dialog(dialogs.sign_in_dialog))
    for f in factories:
        add_entry(menu, menu_text(f"Sign out of {f}"), lambda f=f: actions.sign_out(f))


def add_new_tunnel_entries(menu: QMenu, actions: MenuActions) -> None:
    add_entry(menu, "Add &tunnel…", lambda: actions.open_dialog(dialogs.add_tunnel_dialog))
    add_entry(
        menu,
        "I&mport WireGuard config…",
        lambda: actions.open_dialog(dialogs.import_tunnel_dialog),
    )


def add_account_entries(menu: QMenu, factories: list[str], actions: MenuActions) -> None:
    """Sign in, sign out of each of `factories`, add or import a tunnel."""
    add_sign_in_entries(menu, factories, actions)
    add_new_tunnel_entries(menu, actions)


def add_factory_submenus(
    menu: QMenu, backend: Backend, factories: list[str], actions: MenuActions
) -> None:
    """One submenu per factory: its devices, its favourite and recent ones, its sign-in."""
    again = actions.sign_in_again
    for f in factories:
        needs = f in backend.needs_sign_in
        sub = menu.addMenu(menu_text(f + (" (sign in again)" if needs else "")))
        add_entry(sub, "&Devices…", lambda f=f: actions.devices(f))
        add_recent_devices(sub, backend, actions, f)
        sub.addSeparator()
        if needs and again is not None:
            add_entry(sub, "Sign in &again…", lambda f=f: again(f))
        add_entry(sub, "Sign &out", lambda f=f: actions.sign_out(f))


def add_app_entries(menu: QMenu, actions: MenuActions) -> None:
    add_entry(menu, "&Settings…", lambda: actions.open_dialog(dialogs.settings_dialog))
    add_entry(menu, "&Help", lambda: actions.open_dialog(dialogs.help_dialog))
    add_entry(menu, "&About fiotray", lambda: actions.open_dialog(dialogs.about_dialog))


def fill_tray_menu(menu: QMenu, backend: Backend | None, actions: MenuActions) -> None:
    """The whole tray menu, replacing what `menu` held.

    With several factories, each gets a submenu (its devices, recent devices, sign-in),
    so the menu keeps its length whatever the number of factories.
    """
    clear_menu(menu)
    if backend is None:
        add_entry(menu, "fiotray: starting…")
        return
    add_entry(menu, app_title(backend))
    # First: nothing else of that factory works until then.
    add_sign_in_again_entries(menu, backend.needs_sign_in, actions)
    try:
        add_tunnel_entries(menu, backend, actions)
        menu.addSeparator()
        factories = factory_names(backend)
        several = len(factories) > 1
        if several:
            add_factory_submenus(menu, backend, factories, actions)
        else:
            add_device_entries(menu, backend, factories, actions)
        add_forward_entries(menu, backend, actions)
        menu.addSeparator()
        # With several factories, each one's sign-out is in its own submenu.
        add_account_entries(menu, [] if several else factories, actions)
    except FiotrayError as exc:
        # A hand-edited factories file: the menu still opens and says what is wrong.
        add_entry(menu, menu_text(str(exc)))
    menu.addSeparator()
    add_app_entries(menu, actions)
    menu.addSeparator()
    add_entry(menu, "&Quit", actions.quit)


def tunnel_details(backend: Backend, name: str) -> str:
    """A tunnel's facts, one per line (text: names come from files and servers)."""
    tunnel = next((t for t in backend.tunnels() if t.name == name), None)
    if tunnel is None:
        return f"No tunnel named {fmt.safe_text(name, 40)}."
    status = backend.tunnel_states.get(name)
    lines = [
        ("Kind", "Foundries" if tunnel.kind == "foundries" else "plain WireGuard"),
        ("Factory", tunnel.factory or "-"),
        ("Interface", tunnel.interface),
        ("Server", tunnel.endpoint or "-"),
        ("My VPN address", tunnel.address or "-"),
        ("My public key", tunnel.public_key),
        ("State", state_text(status)),
    ]
    if tunnel.kind == "foundries":
        how = "requested (self-service)" if tunnel.access == "request" else "by the server's admin"
        lines.append(("Admitted", ("yes" if tunnel.admitted else "not yet") + f", {how}"))
    if status is not None and (status.rx_bytes or status.tx_bytes):
        lines.append(
            ("Traffic", f"{fmt.size(status.rx_bytes)} in, {fmt.size(status.tx_bytes)} out")
        )
    return "\n".join(f"{k}: {fmt.safe_text(str(v), 120)}" for k, v in lines)
