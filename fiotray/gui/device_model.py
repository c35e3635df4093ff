"""The device table's model: 50,000 rows without freezing the GUI.

Everything the view asks for is precomputed into plain Python lists, one per
column, built in chunks that yield to the event loop between them. Sorting and
filtering happen here, on those lists (`list.sort` on precomputed keys, `in` on
precomputed lower-case haystacks), because a QSortFilterProxyModel that calls
`lessThan`/`filterAcceptsRow` back into Python costs seconds for 50,000 rows.
`DeviceFilterProxy` is the usual proxy API in front of that, with no callbacks.

Rows keep their place: a refresh, a sort and a filter change are layout changes
that move the view's current and selected rows with their device, not resets.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from fiotray.core import format as fmt
from fiotray.core.devices import (
    LISTED,
    ROW_VPN_ADDRESS,
    ROW_VPN_ENABLED,
    ROW_VPN_PENDING,
    DeviceRow,
    DeviceRows,
    RowRecord,
    VpnState,
)
from fiotray.core.models import ONLINE_THRESHOLD


class Col(enum.IntEnum):
    NAME = 0
    ONLINE = 1
    VPN = 2
    ADDRESS = 3
    TARGET = 4
    GROUP = 5
    TAG = 6
    LAST_SEEN = 7


HEADERS = ("Name", "Online", "VPN", "VPN address", "Target", "Group", "Tag", "Last seen")
HEADER_TIPS = (
    "Device name",
    "Seen by the service in the last 4 hours; sorts online first",
    "WireGuard VPN: enabled, disabled, pending (written, not yet applied by the device), "
    "or — (never enabled)",
    "The device's address on the factory VPN; sorts numerically",
    "The target (build) the device runs",
    "Device group",
    "Update tag the device follows",
    "When the device last checked in; sorts most recent first",
)

# Roles as ints: data() runs for every painted cell, and int compares are the cheapest.
DISPLAY = Qt.ItemDataRole.DisplayRole.value
TOOLTIP = Qt.ItemDataRole.ToolTipRole.value
DECORATION = Qt.ItemDataRole.DecorationRole.value
FOREGROUND = Qt.ItemDataRole.ForegroundRole.value
ALIGNMENT = Qt.ItemDataRole.TextAlignmentRole.value
ROW_ROLE = Qt.ItemDataRole.UserRole.value  # the DeviceRow behind a table row

# RowRecord fields (see fiotray.core.devices).
_NAME, _UUID, _GROUP, _SEEN, _TARGET, _TAG = 0, 1, 3, 4, 5, 7

ONLINE, OFFLINE, NEVER = 0, 1, 2
VPN_ON, VPN_PENDING, VPN_OFF, VPN_NONE = fmt.VPN_ON, fmt.VPN_PENDING, fmt.VPN_OFF, fmt.VPN_NONE
ONLINE_TEXT = ("online", "offline", "never seen")
VPN_TEXT = fmt.VPN_LABELS
# Sort keys that put empty cells last in ascending order.
_LAST_STR = "\U0010ffff"
_LAST_NUM = float("inf")
# Last seen sorts on the time itself, which a refresh does not change (an age would),
# reversed: most recent first, and never seen last.
_NEVER_SEEN = float("-inf")
_REVERSED = frozenset({Col.LAST_SEEN})

# The state filters next to the search box: key, label (the combo's and the status line's).
STATE_FILTERS = (
    ("all", "All devices"),
    ("online", "Online"),
    ("enabled", "VPN enabled"),
    ("disabled", "VPN disabled"),
    ("pending", "VPN pending"),
    ("favourites", "Favourites"),
)
STATE_LABELS = dict(STATE_FILTERS)


def _hay(name: str, uuid: str, target: str, group: str, tag: str, address: str, vpn: int) -> str:
    """What the search looks in: the name first (its order is name order, see set_rows),
    the other text columns, and the VPN column's word (`qa enabled`); casefolded."""
    word = VPN_TEXT[vpn] if vpn != VPN_NONE else ""
    return f"{name}\n{uuid}\n{target}\n{group}\n{tag}\n{address}\n{word}".casefold()


# Rows prepared per step between two yields to the event loop (~5 ms each).
CHUNK = 2000


relative_age = fmt.ago  # the Last seen column


def address_key(address: str) -> float:
    """IPv4 as a number so 10.0.0.9 sorts before 10.0.0.10; anything else after them."""
    parts = address.split(".")
    if len(parts) != 4:
        return _LAST_NUM
    try:
        a, b, c, d = (int(p) for p in parts)
    except ValueError:
        return _LAST_NUM
    return float((a << 24) | (b << 16) | (c << 8) | d)


def vpn_code(row: DeviceRow) -> int:
    return _vpn_code(row.vpn_enabled, row.vpn_address, row.vpn_pending)


_vpn_code = fmt.vpn_code


def _dot(color: str, filled: bool) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(color))
    if filled:
        p.setBrush(QColor(color))
    p.drawEllipse(2, 2, 8, 8)
    p.end()
    return QIcon(pix)


_malloc_trim: Callable[[int], int] | None = None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim; elsewhere no-op).

    A list's columns and each decoded page are big blocks from malloc. Freed, they leave
    holes that glibc keeps (RSS stays at the high-water mark: some 40 MB after a refresh
    of 50,000 devices) until told to return them. ~3 ms; ctypes lets go of the interpreter
    lock meanwhile, so it runs on a worker thread.
    """
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes

        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (AttributeError, OSError):
            _malloc_trim = lambda _pad: 0  # noqa: E731 - not glibc
    _malloc_trim(0)


def _replaced(seq: tuple[Any, ...], i: int, value: Any) -> tuple[Any, ...]:
    return (*seq[:i], value, *seq[i + 1 :])


class _Table:
    """One factory's rows, prepared: display text, sort keys and haystack per row.

    Built in lists, then sealed into tuples. A tuple of strings and numbers is dropped
    by the garbage collector's tracking, where a list of 50,000 is walked at every full
    collection: a table has some twenty such columns, and a refresh holds two tables.
    """

    __slots__ = ("counts", "hay", "keys", "name_order", "now", "pos", "rows", "text")

    def __init__(self, now: float) -> None:
        self.now = now
        self.rows: tuple[RowRecord, ...] = ()
        self.text: list[Any] = [[] for _ in Col]  # per column: list, then tuple of str
        self.keys: list[Any] = [[] for _ in Col]  # per column: list, then tuple of keys
        self.hay: Any = []  # list, then tuple of str
        self.pos: dict[str, int] = {}
        self.name_order: tuple[int, ...] = ()
        self.counts = [0, 0, 0]  # devices, online, on VPN

    def add(self, rows: Sequence[RowRecord], memo: dict[str, str], old: _Table) -> None:
        """Prepare `rows`; what a row of `old` that is the same object already has is reused."""
        now, threshold = self.now, ONLINE_THRESHOLD.total_seconds()
        t_name, t_online, t_vpn, t_addr, t_target, t_group, t_tag, t_seen = self.text
        # No name key: the haystack starts with the casefolded name (see set_rows).
        _, k_online, k_vpn, k_addr, k_target, k_group, k_tag, k_seen = self.keys
        hay, pos, counts = self.hay, self.pos, self.counts
        old_pos, old_rows, old_hay = old.pos.get, old.rows, old.hay
        old_addr = old.keys[Col.ADDRESS] if old.rows else ()
        # Low-cardinality text (targets, tags, "3m ago") shares one object per value.
        intern = memo.setdefault
        start = len(hay)
        for offset, row in enumerate(rows):
            name, uuid, _, group, seen, target, _, tag, _, enabled, address, pending = row
            group = group or ""
            if seen is None:
                online, seen_text, seen_key = NEVER, "never", _NEVER_SEEN
            else:
                age = now - seen
                online = ONLINE if age <= threshold else OFFLINE
                seen_text = relative_age(age)
                seen_key = seen
            vpn = _vpn_code(enabled, address, pending)
            j = old_pos(name)
            if j is not None and old_rows[j] is row:  # unchanged since the last list
                hay.append(old_hay[j])
                k_addr.append(old_addr[j])
            else:
                hay.append(_hay(name, uuid, target, group, tag, address, vpn))
                k_addr.append(address_key(address) if address else _LAST_NUM)
            t_name.append(name)
            t_online.append(ONLINE_TEXT[online])
            t_vpn.append(VPN_TEXT[vpn])
            t_addr.append(address)
            t_target.append(target)
            t_group.append(group)
            t_tag.append(tag)
            t_seen.append(intern(seen_text, seen_text))
            k_online.append(online)
            k_vpn.append(vpn)
            k_target.append(intern("\0k" + target, target.casefold() or _LAST_STR))
            k_group.append(intern("\0k" + group, group.casefold() or _LAST_STR))
            k_tag.append(intern("\0k" + tag, tag.casefold() or _LAST_STR))
            k_seen.append(seen_key)
            pos[name] = start + offset
            counts[0] += 1
            counts[1] += online == ONLINE
            counts[2] += enabled

    def seal(self, rows: Sequence[RowRecord]) -> None:
        """Freeze the columns `add` built from `rows` (all of them, in order)."""
        self.rows = tuple(rows)
        self.text = [tuple(col) for col in self.text]
        self.keys = [tuple(col) for col in self.keys]
        self.hay = tuple(self.hay)

    def set_row(self, i: int, row: RowRecord) -> None:
        """Replace one row (a VPN change) and everything derived from its VPN columns."""
        old = self.rows[i]
        self.counts[2] += int(row[ROW_VPN_ENABLED]) - int(old[ROW_VPN_ENABLED])
        self.rows = _replaced(self.rows, i, row)
        address = row[ROW_VPN_ADDRESS]
        vpn = _vpn_code(row[ROW_VPN_ENABLED], address, row[ROW_VPN_PENDING])
        text, keys = self.text, self.keys
        text[Col.VPN] = _replaced(text[Col.VPN], i, VPN_TEXT[vpn])
        keys[Col.VPN] = _replaced(keys[Col.VPN], i, vpn)
        text[Col.ADDRESS] = _replaced(text[Col.ADDRESS], i, address)
        key = address_key(address) if address else _LAST_NUM
        keys[Col.ADDRESS] = _replaced(keys[Col.ADDRESS], i, key)
        name, uuid, group, target, tag = (row[f] for f in (_NAME, _UUID, _GROUP, _TARGET, _TAG))
        hay = _hay(name, uuid, target, group or "", tag, address, vpn)
        self.hay = _replaced(self.hay, i, hay)


class DeviceTableModel(QAbstractTableModel):
    """All devices of one factory; sorting and filtering over precomputed lists."""

    rowsReplaced = Signal()  # a new device list is in place (after set_rows)
    filterApplied = Signal()  # the visible rows follow the filter text

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._t = _Table(time.time())
        # Tuples, not lists: see _Table.
        self._order: tuple[int, ...] = ()  # every row, in the current sort order
        self._visible: tuple[int, ...] = ()  # the rows matching the filter, in that order
        self._terms: list[str] = []
        self._filter_text = ""
        self._state = "all"  # one of STATE_FILTERS' keys
        self._favourites: frozenset[str] = frozenset()  # this factory's favourite devices
        self._sort: tuple[int, Qt.SortOrder] = (Col.NAME, Qt.SortOrder.AscendingOrder)
        self._generation = 0
        self._icons: tuple[QIcon, QIcon] | None = None
        self._grey = QColor("#8a8a8a")
        self.factory = ""
        self.loaded_at: float | None = None  # time.monotonic() of the data shown
        # Device name -> (word, detail) after a VPN change this app made: "checking",
        # "reachable", "not reachable". Shown after "enabled"; sorting is not affected.
        self._reach: dict[str, tuple[str, str]] = {}

    # -- Qt model API ---------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._visible)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Col)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = DISPLAY) -> Any:
        col = index.column()
        if role == DISPLAY:
            i = self._visible[index.row()]
            if col == Col.VPN and self._reach:
                reach = self._reach_of(i)
                if reach is not None:
                    return f"{self._t.text[col][i]} · {reach[0]}"
            return self._t.text[col][i]
        if role == DECORATION:
            if col == Col.ONLINE:
                icons = self._icons or self._make_icons()
                i = self._visible[index.row()]
                return icons[0] if self._t.keys[Col.ONLINE][i] == ONLINE else icons[1]
            return None
        if role == FOREGROUND:
            i = self._visible[index.row()]
            if col == Col.ONLINE and self._t.keys[Col.ONLINE][i] != ONLINE:
                return self._grey
            if col == Col.VPN and self._t.keys[Col.VPN][i] in (VPN_NONE, VPN_OFF):
                return self._grey
            return None
        if role == TOOLTIP:
            return self._tooltip(self._visible[index.row()], col)
        if role == ROW_ROLE:
            return DeviceRow.from_record(self._t.rows[self._visible[index.row()]])
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == DISPLAY:
            return HEADERS[section]
        if role == TOOLTIP:
            return HEADER_TIPS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(Col):
            return
        self._sort = (column, order)
        if not self._t.rows:
            return

        def change() -> None:
            self._order = self._sorted(self._t, column, order)
            self._visible = self._filter(self._t, self._order, self._terms)

        self._relayout(change)

    # -- what the window uses ------------------------------------------------------------

    @property
    def total(self) -> int:
        return self._t.counts[0]

    @property
    def online(self) -> int:
        return self._t.counts[1]

    @property
    def on_vpn(self) -> int:
        return self._t.counts[2]

    @property
    def filter_text(self) -> str:
        return self._filter_text

    @property
    def state_filter(self) -> str:
        return self._state

    def set_state_filter(self, state: str, favourites: frozenset[str] | None = None) -> None:
        """Show only the rows in `state` (a STATE_FILTERS key), and of them those the search
        text matches; `favourites`: the factory's favourite device names (kept when None)."""
        if state not in STATE_LABELS:
            raise ValueError(state)
        favs = self._favourites if favourites is None else frozenset(favourites)
        if state == self._state and (favs == self._favourites or state != "favourites"):
            self._favourites = favs
            self.filterApplied.emit()
            return

        def change() -> None:
            self._state, self._favourites = state, favs
            self._visible = self._filter(self._t, self._order, self._terms)

        self._relayout(change)
        self.filterApplied.emit()

    def selected_rows(self, rows: Sequence[int]) -> list[DeviceRow]:
        """The devices of table rows `rows` (a selection), in that order."""
        return [self.row(r) for r in rows]

    def rows(self) -> DeviceRows:
        """Every row of the factory shown, in the API's order (what a refresh can reuse)."""
        return DeviceRows(self._t.rows)

    def row(self, row: int) -> DeviceRow:
        return DeviceRow.from_record(self._t.rows[self._visible[row]])

    def row_of(self, name: str) -> int | None:
        """The table row showing device `name`, or None when it is filtered out or unknown."""
        i = self._t.pos.get(name)
        if i is None:
            return None
        try:
            return self._visible.index(i)
        except ValueError:
            return None

    def device(self, name: str) -> DeviceRow | None:
        i = self._t.pos.get(name)
        return None if i is None else DeviceRow.from_record(self._t.rows[i])

    def set_filter(self, text: str) -> None:
        """Show only rows whose name, uuid, target, group, tag or address hold every word."""
        terms = text.casefold().split()
        if terms == self._terms:
            self._filter_text = text
            self.filterApplied.emit()
            return
        # Typing on extends the text: only the rows shown now can still match.
        narrower = bool(self._terms) and text.casefold().startswith(self._filter_text.casefold())
        base = self._visible if narrower else self._order
        self._filter_text = text

        def change() -> None:
            self._terms = terms
            self._visible = self._filter(self._t, base, terms)

        self._relayout(change)
        self.filterApplied.emit()

    def set_reach(self, device: str, reach: tuple[str, str] | None) -> None:
        """Show (or stop showing) how far a device got after a VPN change: the VPN cell
        reads "enabled · reachable", its tooltip says more."""
        if reach is None:
            if self._reach.pop(device, None) is None:
                return
        else:
            self._reach[device] = reach
        if self._visible:
            last = len(self._visible) - 1
            self.dataChanged.emit(self.index(0, Col.VPN), self.index(last, Col.VPN), [])

    def _reach_of(self, i: int) -> tuple[str, str] | None:
        """The device's reach word, while its VPN column says enabled (not pending)."""
        if self._t.keys[Col.VPN][i] != VPN_ON:
            return None
        return self._reach.get(self._t.rows[i][0])

    def clear(self, factory: str = "") -> None:
        """Forget every row (another factory, or signed out)."""
        if factory != self.factory:
            self._reach = {}
        self._generation += 1
        self.beginResetModel()
        self._t = _Table(time.time())
        self._order, self._visible = (), ()
        self.factory = factory
        self.loaded_at = None
        self.endResetModel()
        self.rowsReplaced.emit()

    async def set_rows(
        self, factory: str, rows: Sequence[DeviceRow], *, now: float | None = None
    ) -> bool:
        """Prepare `rows` a chunk at a time, then show them in one step.

        Until that step the old rows stay on screen. False when a newer call
        (or clear) overtook this one before it finished.
        """
        self._generation += 1
        generation = self._generation
        # What the load decoded is freed by now: return it before the new table grows.
        await asyncio.to_thread(_trim_heap)
        if generation != self._generation:
            return False
        table = _Table(time.time() if now is None else now)
        memo: dict[str, str] = {}
        records = DeviceRows.of(rows).records
        reuse = self._t if factory == self.factory else _Table(0)
        for start in range(0, len(records), CHUNK):
            table.add(records[start : start + CHUNK], memo, reuse)
            await asyncio.sleep(0)
            if generation != self._generation:
                return False
        table.seal(records)
        # The haystack starts with the name and a newline, which sorts before any name
        # character: its order is name order. The API sends devices sorted by name,
        # so this sort of a near-sorted list is close to linear.
        table.name_order = tuple(sorted(range(len(table.hay)), key=table.hay.__getitem__))
        await asyncio.sleep(0)
        if generation != self._generation:
            return False
        sort = self._sort
        new_order = self._sorted(table, *sort)
        await asyncio.sleep(0)
        if generation != self._generation:
            return False
        if sort != self._sort:  # the user sorted meanwhile
            new_order = self._sorted(table, *self._sort)
        new_visible = self._filter(table, new_order, self._terms)
        same_factory = factory == self.factory
        old = self._t

        def change() -> None:
            self._t, self._order, self._visible = table, new_order, new_visible
            if factory != self.factory:
                self._reach = {}
            self.factory = factory

        if same_factory:
            # Map what the view holds (current row, selection) by device name.
            self._relayout(change, old=old)
        else:
            self.beginResetModel()
            change()
            self.endResetModel()
        self.loaded_at = time.monotonic()
        # Signalled once the old table is gone too: "replaced" means the memory as well.
        await self._release(old)
        self.rowsReplaced.emit()
        return True

    @staticmethod
    async def _release(table: _Table) -> None:
        # When this holds the last reference, freeing 50,000 rows at once is a ~15 ms stall;
        # after a refresh the new table shares most of them, and it takes ~1 ms.
        rows, hay = list(table.rows), list(table.hay)
        table.rows, table.hay, table.text, table.keys = (), (), [], []
        table.pos.clear()
        started = time.perf_counter()
        while rows:
            del rows[-CHUNK:]
            del hay[-CHUNK:]
            if time.perf_counter() - started > 0.004:
                await asyncio.sleep(0)
                started = time.perf_counter()
        await asyncio.to_thread(_trim_heap)

    def apply_vpn(self, state: VpnState) -> bool:
        """Show a VPN change at once (as pending) until the next refresh tells the truth."""
        i = self._t.pos.get(state.device)
        if i is None:
            return False
        row = self._t.rows[i]
        enabled = state.enabled and bool(state.address)
        new: RowRecord = (
            *row[:LISTED],
            enabled,
            state.address or row[ROW_VPN_ADDRESS],
            state.pending,
        )
        self._t.set_row(i, new)
        try:
            visible_row = self._visible.index(i)
        except ValueError:
            return True
        self.dataChanged.emit(self.index(visible_row, 0), self.index(visible_row, len(Col) - 1), [])
        return True

    # -- internals ------------------------------------------------------------------------

    def _make_icons(self) -> tuple[QIcon, QIcon]:
        self._icons = (_dot("#2e9d4f", True), _dot("#8a8a8a", False))
        return self._icons

    @staticmethod
    def _sorted(table: _Table, column: int, order: Qt.SortOrder) -> tuple[int, ...]:
        descending = order == Qt.SortOrder.DescendingOrder
        if column == Col.NAME:
            return table.name_order[::-1] if descending else table.name_order
        # Stable, from name order: equal keys stay by name, in either direction.
        key = table.keys[column].__getitem__
        reverse = descending != (column in _REVERSED)
        return tuple(sorted(table.name_order, key=key, reverse=reverse))

    def _filter(self, table: _Table, base: tuple[int, ...], terms: list[str]) -> tuple[int, ...]:
        """Of `base`, the rows in the state filter holding every term: one pass per check,
        each an index into a precomputed column (O(rows), no Python call per row)."""
        rows, state = base, self._state
        if state == "online":
            k = table.keys[Col.ONLINE]
            rows = tuple([i for i in rows if k[i] == ONLINE])
        elif state in ("enabled", "pending", "disabled"):
            k = table.keys[Col.VPN]
            if state == "disabled":  # disabled, or never enabled
                rows = tuple([i for i in rows if k[i] >= VPN_OFF])
            else:
                code = VPN_ON if state == "enabled" else VPN_PENDING
                rows = tuple([i for i in rows if k[i] == code])
        elif state == "favourites":
            names, favs = table.text[Col.NAME], self._favourites
            rows = tuple([i for i in rows if names[i] in favs])
        if not terms:
            return rows
        hay = table.hay
        for term in terms:
            rows = tuple([i for i in rows if term in hay[i]])
        return rows

    def _relayout(self, change: Callable[[], None], old: _Table | None = None) -> None:
        """Run `change` as a layout change, keeping persistent indexes on their device."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        before = old or self._t
        names = [
            before.rows[self._visible[p.row()]][_NAME] if p.row() < len(self._visible) else ""
            for p in persistent
        ]
        change()
        if persistent:
            where: dict[int, int] = {}
            if len(persistent) > 8:
                where = {i: r for r, i in enumerate(self._visible)}
            new: list[QModelIndex] = []
            for p, name in zip(persistent, names, strict=True):
                i = self._t.pos.get(name)
                r: int | None = None
                if i is not None:
                    if where:
                        r = where.get(i)
                    else:
                        try:
                            r = self._visible.index(i)
                        except ValueError:
                            r = None
                new.append(self.index(r, p.column()) if r is not None else QModelIndex())
            self.changePersistentIndexList(persistent, new)
        self.layoutChanged.emit()

    def _tooltip(self, i: int, col: int) -> str | None:
        row = DeviceRow.from_record(self._t.rows[i])
        d = row.device
        if col == Col.LAST_SEEN or col == Col.ONLINE:
            if d.last_seen is None:
                return "Never seen by the service"
            local = d.last_seen.astimezone()
            return f"Last seen {local:%Y-%m-%d %H:%M:%S %Z}"
        if col == Col.VPN:
            code = self._t.keys[Col.VPN][i]
            reach = self._reach_of(i) if self._reach else None
            if reach is not None:
                return f"VPN enabled; {reach[1]}"
            if code == VPN_PENDING:
                goal = "enabled" if row.vpn_enabled else "disabled"
                return f"VPN {goal}; the device has not applied the change yet"
            if code == VPN_NONE:
                return "VPN never enabled for this device"
            return f"VPN {VPN_TEXT[code]}"
        if col == Col.NAME:
            return f"{d.name}\nuuid {d.uuid}" if d.uuid else d.name
        text = self._t.text[col][i]
        return text or None


class DeviceFilterProxy(QSortFilterProxyModel):
    """The proxy API (sort, filter text) over DeviceTableModel's own sort and filter.

    It never calls `lessThan` or `filterAcceptsRow` in Python: `sort` and the
    filter are forwarded to the source, which works on its precomputed lists.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setDynamicSortFilter(False)

    def source(self) -> DeviceTableModel:
        model = self.sourceModel()
        assert isinstance(model, DeviceTableModel)
        return model

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.source().sort(column, order)

    def set_filter_text(self, text: str) -> None:
        self.source().set_filter(text)

    def set_state_filter(self, state: str, favourites: frozenset[str] | None = None) -> None:
        self.source().set_state_filter(state, favourites)

    def row(self, proxy_row: int) -> DeviceRow:
        return self.source().row(self.mapToSource(self.index(proxy_row, 0)).row())

    def row_of(self, name: str) -> int | None:
        source_row = self.source().row_of(name)
        if source_row is None:
            return None
        return self.mapFromSource(self.source().index(source_row, 0)).row()


__all__ = [
    "HEADERS",
    "STATE_FILTERS",
    "Col",
    "DeviceFilterProxy",
    "DeviceTableModel",
    "address_key",
    "relative_age",
]
