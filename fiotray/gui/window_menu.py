"""The devices window's menu bar: everything the tray menu has, for desktops without a tray.

Stock GNOME has no tray: there the window is the whole app, so its menu bar
carries the tray menu's sections (built by fiotray.gui.menus, the same builders)
plus what belongs to a window: the factory it shows, refresh, close and quit.
Each menu is rebuilt when it is about to show, as the tray's is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

from fiotray.core.errors import FiotrayError
from fiotray.gui import dialogs, menus
from fiotray.gui.menus import MenuActions, add_entry, menu_text

if TYPE_CHECKING:
    from fiotray.gui.devices_window import DevicesWindow


class WindowMenuBar(QMenuBar):
    """File, Tunnels, Factory and Help menus for `window`.

    `actions` gives the app's menu actions at the time a menu opens (the tray icon
    that owns them may be replaced when a tray appears late); None: the window is on
    its own (tests), with only its own entries.
    """

    def __init__(
        self, window: DevicesWindow, actions: Callable[[], MenuActions | None], parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.window = window
        self._actions = actions
        self.file_menu = self._menu("&File", self._fill_file)
        self.tunnels_menu = self._menu("&Tunnels", self._fill_tunnels)
        self.factory_menu = self._menu("F&actory", self._fill_factory)
        self.help_menu = self._menu("&Help", self._fill_help)

    def _menu(self, title: str, fill: Callable[[QMenu, MenuActions | None], None]) -> QMenu:
        menu = self.addMenu(title)

        def rebuild() -> None:
            menus.clear_menu(menu)
            try:
                fill(menu, self.menu_actions())
            except FiotrayError as exc:
                # A hand-edited config file: the menu still opens and says what is wrong.
                add_entry(menu, menu_text(str(exc)))

        menu.aboutToShow.connect(rebuild)
        return menu

    def menu_actions(self) -> MenuActions | None:
        actions = self._actions()
        if actions is None:
            return None
        # "Devices…" of a factory, here: show that factory in this window.
        return dataclasses.replace(actions, devices=self.window.show_factory)

    def rebuild_all(self) -> None:
        """Fill every menu now (tests and screenshots: a menu bar is read before it opens)."""
        for menu in (self.file_menu, self.tunnels_menu, self.factory_menu, self.help_menu):
            menu.aboutToShow.emit()

    # -- the menus ------------------------------------------------------------------------

    def _fill_file(self, menu: QMenu, actions: MenuActions | None) -> None:
        if actions is not None:
            add_entry(menu, "&Settings…", lambda: actions.open_dialog(dialogs.settings_dialog))
            menu.addSeparator()
        add_entry(menu, "&Close window\tCtrl+W", self.window.close)
        if actions is not None:
            add_entry(menu, "&Quit fiotray\tCtrl+Q", actions.quit)

    def _fill_tunnels(self, menu: QMenu, actions: MenuActions | None) -> None:
        if actions is None:
            add_entry(menu, "No tunnel actions here")
            return
        menus.add_tunnel_entries(menu, self.window.backend, actions)
        menu.addSeparator()
        menus.add_new_tunnel_entries(menu, actions)

    def _fill_factory(self, menu: QMenu, actions: MenuActions | None) -> None:
        window, backend = self.window, self.window.backend
        factories = menus.factory_names(backend)
        group = QActionGroup(menu)
        for f in factories:
            entry = add_entry(menu, menu_text(f), lambda f=f: window.show_factory(f))
            entry.setCheckable(True)
            entry.setChecked(f == window.factory)
            group.addAction(entry)
        if not factories:
            add_entry(menu, "Not signed in to a factory")
        menu.addSeparator()
        add_entry(menu, "&Refresh\tF5", window.refresh).setEnabled(window.factory is not None)
        add_entry(menu, "&Find…\tCtrl+F", window.focus_search)
        if actions is None:
            return
        if window.factory is not None:
            menus.add_recent_devices(menu, backend, actions, window.factory)
        menu.addSeparator()
        menus.add_sign_in_again_entries(menu, backend.needs_sign_in & set(factories), actions)
        menus.add_sign_in_entries(menu, factories, actions)

    def _fill_help(self, menu: QMenu, actions: MenuActions | None) -> None:
        if actions is None:
            add_entry(menu, "No help here")
            return
        add_entry(menu, "fiotray &Help", lambda: actions.open_dialog(dialogs.help_dialog))
        add_entry(menu, "&About fiotray", lambda: actions.open_dialog(dialogs.about_dialog))
