"""The devices window: every device of a factory, search, sort, SSH and VPN per row.

It doubles as the main window where no tray is available: the bar at the top
shows the factory's tunnel and connects or disconnects it.

Network use follows visibility: the list refreshes on a timer only while the
window is shown (and on show when the data is older than the interval); hiding
it stops the timer and cancels a load in flight, so a hidden window never asks
the API for the device list. A failed refresh keeps the last good rows and says
why in a bar above the table, not in a dialog.
"""

from __future__ import annotations

import asyncio
import html
import logging
import shlex
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QGuiApplication,
    QHideEvent,
    QKeyEvent,
    QKeySequence,
    QPalette,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.tunnels import State, TunnelStatus
from fiotray.gui.device_model import STATE_FILTERS, Col, DeviceFilterProxy, DeviceTableModel
from fiotray.ops.devices import TUNNEL_DOWN

if TYPE_CHECKING:
    from fiotray.core.devices import DeviceRow, VpnState
    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend
    from fiotray.gui.menus import MenuActions

log = logging.getLogger(__name__)

REFRESH_MS = 60_000
# Above this many devices a keystroke waits briefly for the next one before filtering.
DEBOUNCE_ROWS = 5_000
DEBOUNCE_MS = 80
FLASH_MS = 4_000
# States in which the tunnel carries no traffic: SSH over it cannot work.
TUNNEL_TEXT = {
    State.CONNECTED: "connected",
    State.CONNECTING: "connecting…",
    State.WAITING: "waiting for the server to admit this laptop",
    State.STALE: "server unreachable",
    State.DISCONNECTED: "disconnected",
    State.ERROR: "error",
}
TUNNEL_COLOR = {
    State.CONNECTED: "#2e9d4f",
    State.CONNECTING: "#d08a00",
    State.WAITING: "#d08a00",
    State.STALE: "#d08a00",
    State.DISCONNECTED: "#8a8a8a",
    State.ERROR: "#c62828",
}


class _MessageBar(QFrame):
    """An inline message above the table: a failed refresh, an action that could not run."""

    retry = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.icon = QLabel(self)
        self.text = QLabel(self)
        # Messages hold device names and server text: never markup (a name like
        # "<b>gw</b>" would otherwise turn a summary into rich text).
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.clicked.connect(self.retry)
        # What the message asks the user to do, when there is one thing (sign in again).
        self.action_button = QPushButton(self)
        self.action_button.hide()
        self._action: Callable[[], None] | None = None
        self.action_button.clicked.connect(lambda: self._action() if self._action else None)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.icon)
        row.addWidget(self.text, 1)
        row.addWidget(self.action_button)
        row.addWidget(self.retry_button)
        row.addWidget(self.close_button)
        self.level = ""
        self.hide()

    def show_message(
        self,
        text: str,
        level: str = "error",
        *,
        retry: bool = False,
        action: tuple[str, Callable[[], None]] | None = None,
    ) -> None:
        self.level = level
        icon = {
            "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
            "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
        }.get(level, QStyle.StandardPixmap.SP_MessageBoxInformation)
        size = self.fontMetrics().height()
        self.icon.setPixmap(self.style().standardIcon(icon).pixmap(size, size))
        colors = {"error": "#fdecea", "warning": "#fff4e5"}
        self.setStyleSheet(
            f"#messageBar {{ background: {colors.get(level, '#e8f1fb')}; border-radius: 4px; }}"
            " #messageBar QLabel { color: #202020; }"
        )
        self.text.setText(text)
        self.retry_button.setVisible(retry)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.show()


class MiddleElide(QStyledItemDelegate):
    """Device names differ at their ends (gateway-…-unit-0041, gateway-…-unit-0042):
    a name too long for its column loses its middle, not the end that tells them apart."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


class DevicesWindow(QWidget):
    """Every device of one factory, with the factory's tunnel on top."""

    # A row or tunnel action ("Enable VPN", "Tunnel", …) finished, whether it worked or not.
    actionFinished = Signal(str)
    # "Sign in again…" on the message bar: the app opens the sign-in dialog for it.
    signInRequested = Signal(str)  # factory

    def __init__(
        self,
        backend: Backend,
        parent: QWidget | None = None,
        menu_actions: Callable[[], MenuActions | None] | None = None,
    ) -> None:
        """`menu_actions`: the app's menu actions, for the menu bar (None: the window's own
        entries only)."""
        super().__init__(parent)
        self.backend = backend
        self._menu_actions = menu_actions or (lambda: None)
        self.setWindowTitle("Devices — fiotray")
        self.resize(1040, 620)
        self.model = DeviceTableModel(self)
        self.proxy = DeviceFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._factory: str | None = None
        self._shown = False
        self._load_task: asyncio.Task[Any] | None = None
        self._build_task: asyncio.Task[Any] | None = None
        self._load_failed = ""  # the last refresh's error while no newer data came
        self._no_key: set[tuple[str, str]] = set()  # (factory, device): Enable said "no key"
        self._busy_tunnel = False
        self._fitted_for = ""  # the factory the column widths were fitted to

        self._build_ui()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.timeout.connect(self._apply_filter)
        self._flash_timer = QTimer(self)
        self._flash_timer.setSingleShot(True)
        self._flash_timer.timeout.connect(self._update_status)
        self._flash_text = ""

        backend.devicesProgress.connect(self._on_progress)
        backend.devicesLoaded.connect(self._on_loaded)
        backend.devicesFailed.connect(self._on_failed)
        backend.vpnChanged.connect(self._on_vpn_changed)
        backend.reachChanged.connect(self._on_reach_changed)
        backend.tunnelChanged.connect(self._on_tunnel_changed)
        backend.configChanged.connect(self._rebuild_factories)
        backend.settingsChanged.connect(self._on_settings_changed)
        self.model.rowsReplaced.connect(self._on_rows_replaced)
        self.model.layoutChanged.connect(self._update_status)
        self.model.modelReset.connect(self._update_status)

        self._rebuild_factories()

    # -- layout ------------------------------------------------------------------------

    def _build_ui(self) -> None:
        # Tunnel bar: the factory's tunnel, so this window can stand in for the tray.
        self.tunnel_bar = QFrame(self)
        self.tunnel_bar.setObjectName("tunnelBar")
        self.tunnel_dot = QLabel(self.tunnel_bar)
        self.tunnel_label = QLabel(self.tunnel_bar)
        self.tunnel_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.tunnel_label.setWordWrap(True)  # a stale tunnel's hint is a long sentence
        self.tunnel_button = QPushButton("Connect", self.tunnel_bar)
        self.tunnel_button.clicked.connect(self._toggle_tunnel)
        self.factory_label = QLabel("&Factory:", self.tunnel_bar)
        self.factory_combo = QComboBox(self.tunnel_bar)
        self.factory_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.factory_label.setBuddy(self.factory_combo)
        self.factory_combo.currentIndexChanged.connect(self._on_factory_picked)
        bar = QHBoxLayout(self.tunnel_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.factory_label)
        bar.addWidget(self.factory_combo)
        bar.addSpacing(12)
        bar.addWidget(self.tunnel_dot)
        bar.addWidget(self.tunnel_label, 1)
        bar.addWidget(self.tunnel_button)

        self.search = QLineEdit(self)
        self.search.setObjectName("search")
        self.search.setPlaceholderText(
            "Search name, target, group, tag, address, uuid or VPN state (Ctrl+F)"
        )
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search_text)
        self.search.installEventFilter(self)
        self.refresh_button = QToolButton(self)
        self.refresh_button.setText("Refresh")
        self.refresh_button.setToolTip("Reload the device list (F5)")
        self.refresh_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.refresh_button.setIcon(
            self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload)
        )
        self.refresh_button.clicked.connect(self.refresh)
        # State filters: which devices, before the search words narrow them further.
        self.state_label = QLabel("Sho&w:", self)
        self.state_filter = QComboBox(self)
        self.state_filter.setObjectName("stateFilter")
        self.state_filter.setToolTip("Show only these devices (Alt+W); the search narrows them")
        for key, label in STATE_FILTERS:
            self.state_filter.addItem(label, key)
        self.state_label.setBuddy(self.state_filter)
        self.state_filter.currentIndexChanged.connect(self._on_state_filter)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.state_label)
        search_row.addWidget(self.state_filter)
        search_row.addWidget(self.refresh_button)

        self.message_bar = _MessageBar(self)
        self.message_bar.retry.connect(self.refresh)

        self.table = QTableView(self)
        self.table.setObjectName("devices")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # Several rows (Shift, Ctrl, Ctrl+A): their menu acts on all of them at once.
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        from fiotray.gui.dialogs.copy import FileDrops

        # Files dropped on a device row open "Copy files to device…" with them.
        self._file_drops = FileDrops(self.table, self._dropped_files)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setItemDelegateForColumn(Col.NAME, MiddleElide(self.table))
        self.table.setTabKeyNavigation(False)
        self.table.setShowGrid(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_requested)
        self.table.doubleClicked.connect(self._on_double_clicked)
        self.table.installEventFilter(self)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_status())
        vheader = self.table.verticalHeader()
        vheader.hide()
        # A fixed row height keeps the vertical header O(1) for 50,000 rows.
        vheader.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vheader.setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Col.NAME, Qt.SortOrder.AscendingOrder)
        self._fit_columns([])

        self.placeholder = QLabel(self)
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        # Empty states sit where the rows would be, framed like the table.
        self.placeholder.setFrameShape(QFrame.Shape.StyledPanel)
        self.placeholder.setBackgroundRole(QPalette.ColorRole.Base)
        self.placeholder.setAutoFillBackground(True)
        self.placeholder.setStyleSheet("color: palette(placeholder-text); font-size: 13pt;")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.placeholder)

        self.status = QLabel(self)
        self.status.setObjectName("status")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long search text must not widen the window: the line is cut instead.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setMaximumHeight(self.fontMetrics().height() + 4)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.progress_label = QLabel(self)
        self.progress_label.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress_label)
        bottom.addWidget(self.progress)

        # The demo says so where the devices are: nothing here is a real factory.
        self.demo_bar = _MessageBar(self)
        self.demo_bar.close_button.hide()
        if self.backend.demo:
            self.demo_bar.show_message(
                "This is the demo factory: its devices and tunnel are simulated, and nothing "
                "you do here leaves this computer.",
                "info",
                action=("Sign in to your factory…", lambda: self.signInRequested.emit("")),
            )

        from fiotray.gui.window_menu import WindowMenuBar

        # Everything the tray menu has: where no tray exists, this window is the app.
        self.menu_bar = WindowMenuBar(self, self._menu_actions, self)

        layout = QVBoxLayout(self)
        layout.setMenuBar(self.menu_bar)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(6)
        layout.addWidget(self.demo_bar)
        layout.addWidget(self.tunnel_bar)
        layout.addLayout(search_row)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)

        # Keyboard: everything the mouse does.
        self.find_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        self.find_shortcut.activated.connect(self.focus_search)
        self.refresh_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self)
        self.refresh_shortcut.activated.connect(self.refresh)
        self.clear_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.clear_shortcut.activated.connect(self.clear_search)
        self.close_shortcut = QShortcut(QKeySequence("Ctrl+W"), self)
        self.close_shortcut.activated.connect(self.close)
        self.quit_shortcut = QShortcut(QKeySequence("Ctrl+Q"), self)
        self.quit_shortcut.activated.connect(self._quit)
        # Shift+F10 and the Menu key on the table open the current row's menu.
        self.menu_shortcuts = []
        for key in ("Shift+F10", QKeySequence(Qt.Key.Key_Menu)):
            shortcut = QShortcut(QKeySequence(key), self.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self.open_menu_for_current)
            self.menu_shortcuts.append(shortcut)

    def _fit_columns(self, rows: list[DeviceRow]) -> None:
        """Widths from the font and the data, once per factory; the user may resize after."""
        fm = self.table.fontMetrics()
        pad = 28

        def widest(values: list[str], floor: str, cap: int) -> int:
            longest = max((fm.horizontalAdvance(v) for v in values), default=0)
            return min(cap, max(longest, fm.horizontalAdvance(floor)) + pad)

        # A sample is enough: 50,000 horizontalAdvance calls would stall the loop.
        sample = rows[:: max(1, len(rows) // 500)]
        names = [r.device.name for r in sample]
        widths = {
            Col.NAME: widest(names, "raspberrypi4-64-0000", 340),
            Col.ONLINE: fm.horizontalAdvance("never seen") + pad + 16,
            Col.VPN: fm.horizontalAdvance("disabled") + pad,
            Col.ADDRESS: fm.horizontalAdvance("10.255.255.255") + pad,
            Col.TARGET: widest([r.device.target for r in sample], "Target", 240),
            Col.GROUP: widest([r.device.group or "" for r in sample], "Group", 160),
            Col.TAG: widest([r.device.tag for r in sample], "devel", 140),
        }
        for col, width in widths.items():
            self.table.setColumnWidth(col, width)

    # -- public API -----------------------------------------------------------------------

    @property
    def factory(self) -> str | None:
        return self._factory

    @property
    def refresh_interval_ms(self) -> int:
        return self._refresh_timer.interval()

    @refresh_interval_ms.setter
    def refresh_interval_ms(self, value: int) -> None:
        self._refresh_timer.setInterval(value)

    def show_factory(self, factory: str | None = None) -> None:
        """Show, raise and activate the window on `factory` (None: the last or default one)."""
        names = self._factory_names()
        if factory is not None and factory not in names:
            self.message_bar.show_message(f"There is no factory named {factory}.", "warning")
            factory = None
        self._set_factory(factory or self._factory or self._default_factory(names))
        if self.isMinimized():
            self.showNormal()
        else:
            self.show()
        self.raise_()
        self.activateWindow()

    def refresh(self) -> None:
        """Reload the device list, unless hidden or a load is already under way."""
        if not self._shown or self._factory is None:
            return
        if self._load_task is not None and not self._load_task.done():
            return
        factory = self._factory
        self._load_task = self._spawn(self._load(factory), "Refresh devices")
        self._show_progress(f"Loading devices of {factory}…", 0, 0)
        self._update_placeholder()
        self._update_status()

    def _quit(self) -> None:
        actions = self._menu_actions()
        if actions is not None:
            actions.quit()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def clear_search(self) -> None:
        if self.search.text():
            self.search.clear()
            self._apply_filter()
        self.table.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def context_menu_for(self, row: int) -> QMenu:
        """The menu for table row `row`, built from the row's and the tunnel's state now."""
        device = self.proxy.row(row)
        factory = self.model.factory
        name = device.device.name
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def add(key: str, text: str, slot: Any, reason: str | None = None, hint: str = "") -> None:
            action = QAction(f"{text} — {reason}" if reason else text, menu)
            if hint and not reason:
                action.setText(f"{text}\t{hint}")
            action.setObjectName(key)
            action.setEnabled(reason is None)
            action.setToolTip(reason or text)
            action.triggered.connect(slot)
            menu.addAction(action)

        can = self.backend.device_actions(factory, device, no_key=(factory, name) in self._no_key)
        add(
            "ssh",
            "Open &SSH terminal",
            lambda: self._open_ssh(factory, name),
            can.ssh.reason,
            "Enter",
        )
        add(
            "copy_ssh",
            "Copy SSH &command",
            lambda: self._run(self._copy_ssh(factory, name), "Copy SSH command"),
            can.copy_ssh.reason,
        )
        add(
            "copy_address",
            "Copy VPN &address",
            lambda: self._copy_text(device.vpn_address, f"Copied {device.vpn_address}"),
            can.copy_address.reason,
        )
        add(
            "copy_to",
            "Copy files &to device…",
            lambda: self._copy_files(factory, name, upload=True),
            can.ssh.reason,
        )
        add(
            "copy_from",
            "Copy f&rom device…",
            lambda: self._copy_files(factory, name, upload=False),
            can.ssh.reason,
        )
        add(
            "forward",
            "Forward a &port…",
            lambda: self._forward_port(factory, name),
            can.ssh.reason,  # a forward takes the SSH route: usable when SSH is
        )
        menu.addSeparator()
        add(
            "enable_vpn",
            "&Enable VPN",
            lambda: self._run(self._set_vpn(factory, name, True), "Enable VPN"),
            can.enable_vpn.reason,
        )
        add(
            "disable_vpn",
            "&Disable VPN",
            lambda: self._run(self._set_vpn(factory, name, False), "Disable VPN"),
            can.disable_vpn.reason,
        )
        menu.addSeparator()
        favourite = name in self.backend.favourite_names(factory)
        add(
            "favourite",
            "Remove from &favourites" if favourite else "Add to &favourites",
            lambda: self._set_favourite(factory, [name], not favourite),
        )
        url = self.backend.web_url(factory, name)
        add(
            "web",
            "Open in the Foundries &web app",
            lambda: QDesktopServices.openUrl(QUrl(url)),
            None if url else "no web app known for this factory",
        )
        return menu

    def selection_menu_for(self, rows: list[int]) -> QMenu:
        """The menu for several selected table rows: VPN on all of those it applies to
        (saying how many are skipped, and why), favourites, copy their names."""
        from collections import Counter

        from fiotray.ops.devices import plan_vpn

        factory = self.model.factory
        devices = self.model.selected_rows(rows)
        names = [d.device.name for d in devices]
        no_key = [n for n in names if (factory, n) in self._no_key]
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        count = len(devices)

        def add(key: str, text: str, slot: Any, enabled: bool = True, tip: str = "") -> None:
            action = QAction(text, menu)
            action.setObjectName(key)
            action.setEnabled(enabled)
            action.setToolTip(tip or text)
            action.triggered.connect(slot)
            menu.addAction(action)

        header = menu.addAction(f"{count:,} devices selected")
        header.setEnabled(False)
        menu.addSeparator()
        for enable in (True, False):
            plan = plan_vpn(devices, enable, no_key=no_key)
            verb = "Enable" if enable else "Disable"
            n = len(plan.change)
            why = Counter(reason for _, reason in plan.skipped)
            skipped = ", ".join(f"{k} {reason}" for reason, k in why.most_common())
            text = f"{verb} VPN on {n:,} device{'s' if n != 1 else ''}"
            if not n:
                text = f"{verb} VPN — none of these: {skipped}"
            elif plan.skipped:
                text += f" ({len(plan.skipped):,} skipped: {skipped})"
            add(
                "enable_vpn" if enable else "disable_vpn",
                text.replace(f"{verb} VPN", f"&{verb} VPN", 1),
                lambda _=False, p=plan: self._bulk_vpn(factory, p),
                enabled=bool(n),
                tip="; ".join(f"{d}: {r}" for d, r in plan.skipped[:20]),
            )
        menu.addSeparator()
        favourites = self.backend.favourite_names(factory)
        new = [n for n in names if n not in favourites]
        old = [n for n in names if n in favourites]
        add(
            "favourite",
            f"Add {len(new):,} to &favourites" if new else "Add to &favourites — all of these are",
            lambda: self._set_favourite(factory, new, True),
            enabled=bool(new),
        )
        add(
            "unfavourite",
            f"Remove {len(old):,} from favourites"
            if old
            else "Remove from favourites — none of these is one",
            lambda: self._set_favourite(factory, old, False),
            enabled=bool(old),
        )
        add(
            "copy_names",
            "Copy &names",
            lambda: self._copy_text("\n".join(names), f"Copied {count:,} names"),
        )
        return menu

    def _selected_count(self) -> int:
        """How many rows are selected, from the selection's ranges (Ctrl+A on 50,000 rows
        is one range: no index per row for a status line)."""
        model = self.table.selectionModel()
        if model is None:
            return 0
        return sum(r.height() for r in model.selection() if r.left() == 0)

    def _selected_rows(self) -> list[int]:
        """The selected table rows, in view order."""
        model = self.table.selectionModel()
        if model is None:
            return []
        return sorted(index.row() for index in model.selectedRows())

    def _set_favourite(self, factory: str, names: list[str], favourite: bool) -> None:
        try:
            changed = self.backend.set_favourite(factory, names, favourite)
        except FiotrayError as exc:
            self.message_bar.show_message(f"Favourites: {exc}", "error")
            return
        what = names[0] if len(names) == 1 else f"{changed:,} devices"
        done = f"Added {what} to" if favourite else f"Removed {what} from"
        self._flash(f"{done} favourites")

    def _bulk_vpn(self, factory: str, plan: Any) -> asyncio.Task[Any]:
        """Enable or disable VPN on the plan's devices; one summary in the message bar."""
        return self._run(
            self._set_vpn_many(factory, plan), "Enable VPN" if plan.enable else "Disable VPN"
        )

    async def _set_vpn_many(self, factory: str, plan: Any) -> None:
        from fiotray.ops.devices import bulk_summary

        names, enable = list(plan.change), plan.enable
        total = len(names)
        done = 0
        verb = "Enabling" if enable else "Disabling"
        self.message_bar.hide()
        self._show_progress(f"{verb} VPN on {total:,} devices…", 0, total)

        def told(_result: Any) -> None:
            nonlocal done
            done += 1
            self._show_progress(f"{verb} VPN: {done:,} of {total:,}…", done, total)

        try:
            results = await self.backend.set_vpn_many(factory, names, enable, on_result=told)
        finally:
            if not self._loading():
                self._hide_progress()
        for r in results:
            if enable and r.code == errors.NO_PUBLIC_KEY:
                self._no_key.add((factory, r.device))
        text = bulk_summary(results, enable, len(plan.skipped))
        failed = sum(not r.ok for r in results)
        level = "info" if not failed else ("error" if failed == len(results) else "warning")
        self.message_bar.show_message(text + ".", level)

    def open_menu_for_current(self) -> QMenu | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        rect = self.table.visualRect(index)
        where = QPoint(self.table.columnViewportPosition(Col.NAME) + 8, rect.bottom())
        return self._popup_menu(index.row(), self.table.viewport().mapToGlobal(where))

    # -- events ---------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._shown = True
        self._refresh_timer.start()
        if self._factory is None:
            self._rebuild_factories()
        loaded = self.model.loaded_at
        stale = (
            self.model.factory != self._factory
            or loaded is None
            or (time.monotonic() - loaded) * 1000 >= self._refresh_timer.interval()
        )
        if stale:
            self.refresh()
        self._update_tunnel_bar()
        tunnel = self._tunnel()
        if tunnel is not None and tunnel.name not in self.backend.tunnel_states:
            self._spawn(self.backend.refresh_tunnels(), "Tunnel status")

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._shown = False
        self._refresh_timer.stop()
        # Pages still to fetch would be requests from a hidden window: drop the load.
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._hide_progress()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            key = event.key()
            if watched is self.table and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._activate(self.table.currentIndex())
                return True
            if watched is self.search and key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
                self.table.setFocus(Qt.FocusReason.OtherFocusReason)
                if not self.table.currentIndex().isValid() and self.proxy.rowCount():
                    self.table.selectRow(0)
                return True
            if watched is self.search and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._apply_filter()
                if self.proxy.rowCount() == 1:  # one match: Enter goes straight to it
                    self.table.selectRow(0)
                    self.table.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
        return super().eventFilter(watched, event)

    # -- factories ---------------------------------------------------------------------------

    def _factory_names(self) -> list[str]:
        return [p.factory for p in self.backend.factories()]

    def _default_factory(self, names: list[str]) -> str | None:
        if not names:
            return None
        default = self.backend.default_factory()
        return default if default in names else names[0]

    def _rebuild_factories(self) -> None:
        if (
            self._load_failed
            and self._factory is not None
            and self.message_bar.action_button.isVisible()
            and self._factory not in self.backend.needs_sign_in
        ):
            # Signed in again: the error is over, the list comes back at once.
            self._load_failed = ""
            self.message_bar.hide()
            self.refresh()
        names = self._factory_names()
        self.factory_combo.blockSignals(True)
        self.factory_combo.clear()
        self.factory_combo.addItems(names)
        self.factory_combo.blockSignals(False)
        several = len(names) > 1
        self.factory_label.setVisible(several)
        self.factory_combo.setVisible(several)
        self._set_factory(self._factory if self._factory in names else self._default_factory(names))

    def _on_factory_picked(self, index: int) -> None:
        if index >= 0:
            self._set_factory(self.factory_combo.itemText(index))

    def _set_factory(self, factory: str | None) -> None:
        if factory is not None:
            self.factory_combo.blockSignals(True)
            self.factory_combo.setCurrentIndex(self.factory_combo.findText(factory))
            self.factory_combo.blockSignals(False)
        if factory == self._factory:
            return
        self._factory = factory
        for task in (self._load_task, self._build_task):
            if task is not None and not task.done():
                task.cancel()
        self._load_failed = ""
        self.message_bar.hide()
        self._hide_progress()
        self.model.clear(factory or "")
        self.proxy.set_state_filter(
            self.model.state_filter, self.backend.favourite_names(factory or "")
        )
        self.setWindowTitle(f"Devices — {factory} — fiotray" if factory else "Devices — fiotray")
        self._update_tunnel_bar()
        self._update_status()
        if self._shown:
            self.refresh()

    # -- loading -----------------------------------------------------------------------------

    async def _load(self, factory: str) -> None:
        # The list shown now: a refresh reuses its unchanged rows instead of holding two.
        previous = self.model.rows() if self.model.factory == factory else None
        try:
            await self.backend.load_devices(factory, previous)
        except FiotrayError:
            pass  # devicesFailed put it in the message bar; a timer's refresh sends no notice
        finally:
            if self.model.factory == factory and self._build_task is None:
                self._hide_progress()

    def _on_progress(self, factory: str, loaded: int, total: int) -> None:
        if factory != self._factory or not self._shown:
            return
        if total:
            self._show_progress(f"Loading {loaded:,} of {total:,} devices…", loaded, total)
        else:
            self._show_progress(f"Loading devices… {loaded:,}", 0, 0)

    def _on_loaded(self, factory: str, rows: list[DeviceRow]) -> None:
        if factory != self._factory:
            return
        if self._build_task is not None and not self._build_task.done():
            self._build_task.cancel()
        if len(rows) > 5000:
            self._show_progress(f"Preparing {len(rows):,} devices…", 0, 0)
        self._build_task = self._spawn(self._build(factory, rows), "Show devices")

    async def _build(self, factory: str, rows: list[DeviceRow]) -> None:
        try:
            if await self.model.set_rows(factory, rows):
                self._load_failed = ""
                # A refused Enable is remembered until the next list: by then the device
                # may have registered its key, and Enable should be offered again.
                self._no_key = {k for k in self._no_key if k[0] != factory}
                if self.message_bar.level == "error" and self.message_bar.retry_button.isVisible():
                    self.message_bar.hide()
                if self._fitted_for != factory and rows:
                    self._fit_columns(rows)
                    self._fitted_for = factory
                for (f, device), reach in list(self.backend.reach.items()):
                    if f == factory:  # a watch that ran while another factory showed
                        self._show_reach(device, reach)
        finally:
            if self._build_task is asyncio.current_task():
                self._build_task = None
            if self._load_task is None or self._load_task.done():
                self._hide_progress()
            self._update_placeholder()

    def _on_failed(self, factory: str, message: str) -> None:
        if factory != self._factory:
            return
        self._hide_progress()
        self._load_failed = message
        if self.model.loaded_at is not None:
            shown = time.strftime("%H:%M", time.localtime(time.time() - self._data_age()))
            text = f"Could not refresh the device list: {message} Showing the list from {shown}."
        else:
            text = f"Could not load the device list: {message}"
        if factory in self.backend.needs_sign_in:
            again = ("Sign in again…", lambda: self.signInRequested.emit(factory))
            self.message_bar.show_message(text, "error", action=again)
        else:
            self.message_bar.show_message(text, "error", retry=True)
        self._update_placeholder()

    def _data_age(self) -> float:
        loaded = self.model.loaded_at
        return 0.0 if loaded is None else time.monotonic() - loaded

    def _on_rows_replaced(self) -> None:
        self._update_status()
        self._update_placeholder()

    def _on_reach_changed(self, factory: str, device: str) -> None:
        if factory == self.model.factory:
            self._show_reach(device, self.backend.reach.get((factory, device)))

    def _show_reach(self, device: str, reach: tuple[str, str] | None) -> None:
        self.model.set_reach(device, reach)
        if reach is not None:
            # The VPN column is fitted to "disabled": grow it (never shrink what the user set).
            wanted = self.table.fontMetrics().horizontalAdvance(f"enabled · {reach[0]}") + 28
            if self.table.columnWidth(Col.VPN) < wanted:
                self.table.setColumnWidth(Col.VPN, wanted)

    def _on_vpn_changed(self, factory: str, state: VpnState) -> None:
        if factory == self.model.factory and self.model.apply_vpn(state):
            self._update_status()

    # -- search ------------------------------------------------------------------------------

    def _on_search_text(self, _text: str) -> None:
        # Big lists: wait for a pause in typing, so a burst of keys filters once.
        delay = DEBOUNCE_MS if self.model.total > DEBOUNCE_ROWS else 0
        self._filter_timer.start(delay)

    def _on_state_filter(self, _index: int) -> None:
        self._apply_state_filter()

    def _apply_state_filter(self) -> None:
        state = self.state_filter.currentData() or "all"
        factory = self.model.factory
        self.proxy.set_state_filter(state, self.backend.favourite_names(factory))
        index = self.table.currentIndex()
        if index.isValid():
            self.table.scrollTo(index)
        self._update_placeholder()
        self._update_status()

    def set_state_filter(self, state: str) -> None:
        """Pick a state filter by key ("online", "enabled", ...; see STATE_FILTERS)."""
        self.state_filter.setCurrentIndex(self.state_filter.findData(state))

    def _on_settings_changed(self) -> None:
        # Favourites changed (here, in the tray or by the command line): that filter follows.
        self.proxy.set_state_filter(
            self.model.state_filter, self.backend.favourite_names(self.model.factory)
        )
        self._update_placeholder()
        self._update_status()

    def _apply_filter(self) -> None:
        self._filter_timer.stop()
        self.proxy.set_filter_text(self.search.text())
        index = self.table.currentIndex()
        if index.isValid():
            self.table.scrollTo(index)
        self._update_placeholder()

    # -- status and empty states ----------------------------------------------------------

    def _update_status(self) -> None:
        factory = self._factory
        if factory is None:
            self.status.setText("Not signed in to any factory.")
            return
        m = self.model
        if m.loaded_at is None and m.factory == factory:
            state = "loading devices…" if self._loading() else "no device list yet"
            text = f"{factory}: {state}"
        else:
            text = f"{factory}: {m.total:,} devices, {m.online:,} online, {m.on_vpn:,} on VPN"
            shown = self.proxy.rowCount()
            state = m.state_filter
            among = f" among {self.state_filter.currentText().lower()}" if state != "all" else ""
            if m.filter_text.strip():
                matches = "match" if shown == 1 else "matches"
                text += f" · {shown:,} {matches} for “{m.filter_text.strip()}”{among}"
            elif among:
                text += f" · {shown:,} shown: {self.state_filter.currentText()}"
            selected = self._selected_count()
            if selected > 1:
                text += f" · {selected:,} selected"
        if self._flash_timer.isActive() and self._flash_text:
            text += f" · {self._flash_text}"
        self.status.setText(text)

    def _flash(self, text: str) -> None:
        self._flash_text = text
        self._flash_timer.start(FLASH_MS)
        self._update_status()

    def _update_placeholder(self) -> None:
        factory = self._factory
        text = ""
        if factory is None:
            text = "Sign in to a factory to see its devices."
        elif self.model.loaded_at is None:
            if self._load_failed:
                text = f"Could not load the devices of {factory}."
            elif self._loading():
                text = "Loading devices…"
            else:
                text = "No device list yet. Press F5 to load it."
        elif self.model.total == 0:
            text = f"No devices in {factory} yet."
        elif self.proxy.rowCount() == 0 and not self.model.filter_text.strip():
            text = f"No devices to show: {self.state_filter.currentText()}."
            text += "\nPick “All devices” next to the search box."
        elif self.proxy.rowCount() == 0:
            among = self.state_filter.currentText().lower()
            where = f" among {among}" if self.model.state_filter != "all" else ""
            text = f"No devices match “{self.model.filter_text.strip()}”{where}.\n"
            text += "Esc clears the search."
        self.placeholder.setText(text)
        focus_in_table = self.table.hasFocus()
        self.stack.setCurrentWidget(self.placeholder if text else self.table)
        if focus_in_table and text:
            self.search.setFocus(Qt.FocusReason.OtherFocusReason)

    def _loading(self) -> bool:
        load, build = self._load_task, self._build_task
        return (load is not None and not load.done()) or (build is not None and not build.done())

    def _show_progress(self, text: str, value: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(value)
        self.progress_label.setText(text)
        self.progress.show()
        self.progress_label.show()

    def _hide_progress(self) -> None:
        self.progress.hide()
        self.progress_label.hide()

    # -- tunnel ------------------------------------------------------------------------------

    def _tunnel(self) -> Tunnel | None:
        if self._factory is None:
            return None
        return self.backend.tunnel_for(self._factory)

    def _tunnel_state(self) -> State | None:
        tunnel = self._tunnel()
        if tunnel is None:
            return None
        status = self.backend.tunnel_states.get(tunnel.name)
        return status.state if status else None

    def _on_tunnel_changed(self, status: TunnelStatus) -> None:
        tunnel = self._tunnel()
        if tunnel is not None and status.tunnel == tunnel.name:
            self._update_tunnel_bar()

    def _update_tunnel_bar(self) -> None:
        tunnel = self._tunnel()
        signed_in = self._factory is not None
        self.search.setEnabled(signed_in)
        self.refresh_button.setEnabled(signed_in)
        if tunnel is None:
            self.tunnel_dot.hide()
            self.tunnel_label.setText("No VPN tunnel set up for this factory." if signed_in else "")
            self.tunnel_label.setToolTip("")
            self.tunnel_button.hide()
            return
        self.tunnel_dot.show()
        status = self.backend.tunnel_states.get(tunnel.name)
        state = status.state if status else None
        words = TUNNEL_TEXT[state] if state else "checking…"
        # The detail comes from the helper or the system: text, never markup. It may
        # begin with the state's own words ("server unreachable: ..."): said once.
        rest = status.detail if status and status.detail else ""
        rest = rest.removeprefix(words).removeprefix(":").strip()
        detail = f": {html.escape(rest)}" if rest else ""
        self.tunnel_label.setText(f"Tunnel <b>{html.escape(tunnel.name)}</b> {words}{detail}")
        self.tunnel_label.setTextFormat(Qt.TextFormat.RichText)
        tip = [f"Interface {tunnel.interface}"]
        if tunnel.endpoint:
            tip.append(f"Server {tunnel.endpoint}")
        if status is not None and status.state is State.CONNECTED:
            age = status.handshake_age()
            if age is not None:
                tip.append(f"Last handshake {int(age)} s ago")
            tip.append(f"Received {status.rx_bytes:,} B, sent {status.tx_bytes:,} B")
        self.tunnel_label.setToolTip("\n".join(tip))
        color = TUNNEL_COLOR[state] if state else "#8a8a8a"
        size = self.fontMetrics().height() // 2 + 4
        self.tunnel_dot.setFixedSize(size, size)
        self.tunnel_dot.setStyleSheet(f"background: {color}; border-radius: {size // 2}px;")
        down = state in TUNNEL_DOWN
        self.tunnel_button.setText("Connect" if down else "Disconnect")
        self.tunnel_button.setEnabled(not self._busy_tunnel)
        self.tunnel_button.show()

    def _toggle_tunnel(self) -> None:
        tunnel = self._tunnel()
        if tunnel is None or self._busy_tunnel:
            return
        # An errored tunnel has nothing up to take down: the button means "try again".
        if self._tunnel_state() is State.ERROR:
            coro = self.backend.connect(tunnel.name)
        else:
            coro = self.backend.toggle(tunnel.name)
        self._busy_tunnel = True
        self.tunnel_button.setEnabled(False)
        self._run(self._tunnel_action(coro), "Tunnel")

    async def _tunnel_action(self, coro: Coroutine[Any, Any, TunnelStatus]) -> None:
        try:
            await coro
        finally:
            self._busy_tunnel = False
            self._update_tunnel_bar()

    # -- row actions -------------------------------------------------------------------------

    def _row_at(self, index: QModelIndex) -> DeviceRow | None:
        return self.proxy.row(index.row()) if index.isValid() else None

    def _activate(self, index: QModelIndex) -> None:
        device = self._row_at(index)
        if device is None:
            return
        self._open_ssh(self.model.factory, device.device.name)

    def _on_double_clicked(self, index: QModelIndex) -> None:
        self._activate(index)

    def _dropped_files(self, row: int, paths: list[str]) -> None:
        device = self.proxy.row(row)
        factory = self.model.factory
        no_key = (factory, device.device.name) in self._no_key
        reason = self.backend.device_actions(factory, device, no_key=no_key).ssh.reason
        if reason:
            self.message_bar.show_message(
                f"Cannot copy to {device.device.name}: {reason}.", "warning"
            )
            return
        self._copy_files(factory, device.device.name, upload=True, sources=paths)

    def _copy_files(
        self, factory: str, name: str, *, upload: bool, sources: list[str] | None = None
    ) -> None:
        """The copy dialog (fiotray.gui.dialogs.copy), window-modal."""
        from fiotray.gui.dialogs.copy import CopyDialog

        dialog = CopyDialog(
            self.backend, factory, name, upload=upload, parent=self, sources=sources
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _forward_port(self, factory: str, name: str) -> None:
        from fiotray.gui.dialogs.forward import ForwardDialog

        dialog = ForwardDialog(self.backend, self, factory=factory, device=name)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.forwardStarted.connect(lambda f: self._flash(f"Forwarding {f.label}"))
        dialog.open()

    def _open_ssh(self, factory: str, name: str) -> None:
        device = self.model.device(name)
        no_key = (factory, name) in self._no_key
        can = self.backend.device_actions(factory, device, no_key=no_key) if device else None
        reason = can.ssh.reason if can else "unknown device"
        tunnel = self._tunnel()
        # Only the tunnel stands in the way (the device is on the VPN): offer to connect.
        tunnel_only = (
            reason is not None
            and can is not None
            and can.copy_ssh.ok
            and tunnel is not None
            and self._tunnel_state() in TUNNEL_DOWN
        )
        if tunnel_only and tunnel is not None:
            self.message_bar.show_message(
                f"SSH to {name} goes through the tunnel {tunnel.name}, which is down.",
                "info",
                action=(
                    "Connect and open SSH",
                    lambda: self._connect_then_ssh(tunnel.name, factory, name),
                ),
            )
            return
        if reason:
            self.message_bar.show_message(f"Cannot open SSH to {name}: {reason}.", "info")
            return
        self._flash(f"Opening SSH to {name}…")
        self._run(self.backend.open_ssh(factory, name), "Open SSH terminal")

    def _connect_then_ssh(self, tunnel: str, factory: str, name: str) -> None:
        self.message_bar.hide()

        async def go() -> None:
            self._flash(f"Connecting {tunnel} and opening SSH to {name}…")
            try:
                await self.backend.connect_and_open_ssh(tunnel, factory, name)
            except VpnError as exc:
                if exc.code != errors.TUNNEL_DOWN:
                    raise
                self.message_bar.show_message(str(exc), "warning")

        self._run(go(), "Open SSH terminal")

    async def _copy_ssh(self, factory: str, name: str) -> None:
        argv = await self.backend.ssh_command(factory, name)
        self._copy_text(shlex.join(argv), "Copied the SSH command")

    def _copy_text(self, text: str, flash: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self._flash(flash)

    async def _set_vpn(self, factory: str, name: str, enable: bool) -> None:
        self._flash(f"{'Enabling' if enable else 'Disabling'} VPN on {name}…")
        try:
            await self.backend.set_vpn(factory, name, enable)
        except VpnError as exc:
            # The list cannot tell a device without a WireGuard key from one never
            # enabled; remember the refusal so the menu can say why next time.
            if enable and exc.code == errors.NO_PUBLIC_KEY:
                self._no_key.add((factory, name))
            raise
        self._flash(f"VPN {'enable' if enable else 'disable'} written; {name} applies it soon")

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = self.backend.spawn(coro, what=what)
        # A task cancelled before its first step never starts `coro`; closing it then
        # avoids a "never awaited" warning, and is a no-op once it ran.
        task.add_done_callback(lambda _: coro.close())
        return task

    def _run(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Spawn an action; its failure shows in the message bar (the user is looking here)."""

        async def guarded() -> Any:
            try:
                return await coro
            except FiotrayError as exc:
                self.message_bar.show_message(f"{what}: {exc}", "error")
                return None
            finally:
                self.actionFinished.emit(what)

        task = self._spawn(guarded(), what)
        task.add_done_callback(lambda _: coro.close())
        return task

    def _on_context_requested(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            index = self.table.currentIndex()
            if not index.isValid():
                return
            pos = self.table.visualRect(index).bottomLeft()
        selected = self._selected_rows()
        if index.row() not in selected or len(selected) < 2:
            self.table.setCurrentIndex(index)  # a click outside the selection picks that row
        self._popup_menu(index.row(), self.table.viewport().mapToGlobal(pos))

    def _popup_menu(self, row: int, where: QPoint) -> QMenu:
        """The row's menu, or the selection's when `row` is one of several selected."""
        selected = self._selected_rows()
        if row in selected and len(selected) > 1:
            menu = self.selection_menu_for(selected)
        else:
            menu = self.context_menu_for(row)
        menu.popup(where)  # not exec(): no nested event loop under qasync
        return menu


__all__ = ["DevicesWindow"]
