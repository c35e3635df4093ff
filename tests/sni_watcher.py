"""A fake StatusNotifierWatcher (what KDE's, GNOME's AppIndicator and waybar's panels run)
and a reader for the items that register with it.

`FakeWatcher` owns ``org.kde.StatusNotifierWatcher`` on a given D-Bus bus from a thread
of the test process (jeepney, blocking I/O), answers what Qt asks of a watcher
(``RegisterStatusNotifierItem``, the ``IsStatusNotifierHostRegistered``,
``ProtocolVersion`` and ``RegisteredStatusNotifierItems`` properties, Introspect, since
QDBusInterface introspects) and emits ``StatusNotifierItemRegistered``. It can start
before or after the app under test, as a panel does at login.

`read_item` reads a registered item back over the bus as a panel would: its
``org.kde.StatusNotifierItem`` properties and its ``com.canonical.dbusmenu`` layout.

The bus is the one `tests.xsession` starts for its session (a ``dbus-daemon --session``
of the test's own): Qt's offscreen platform never makes a StatusNotifierItem, so SNI is
tested with xcb on Xvfb, with no XEmbed tray host, so that D-Bus is the only tray.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import new_error, new_method_return, new_signal, unwrap_msg

WATCHER_NAME = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
ITEM_IFACE = "org.kde.StatusNotifierItem"
MENU_IFACE = "com.canonical.dbusmenu"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
NO_MENU = "/NO_DBUSMENU"  # Qt's Menu property for an icon without setContextMenu

_INTROSPECTION = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="{WATCHER_NAME}">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
  <interface name="{PROPS_IFACE}">
    <method name="Get"><arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="v" direction="out"/></method>
    <method name="GetAll"><arg type="s" direction="in"/>
      <arg type="a{{sv}}" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg type="s" direction="out"/></method>
  </interface>
</node>
"""


@dataclass
class Registration:
    service: str  # the bus name the item lives on
    path: str  # its object path
    sender: str  # the unique name that called RegisterStatusNotifierItem


@dataclass
class FakeWatcher:
    """org.kde.StatusNotifierWatcher on `bus_address`, served from a thread until `stop()`."""

    bus_address: str
    registered: list[Registration] = field(default_factory=list)
    _conn: DBusConnection | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    def start(self) -> FakeWatcher:
        conn = open_dbus_connection(self.bus_address)
        reply = conn.send_and_get_reply(message_bus.RequestName(WATCHER_NAME, 4), timeout=5)
        if unwrap_msg(reply) != (1,):  # 1: primary owner; 4 = DO_NOT_QUEUE
            conn.close()
            raise RuntimeError(f"{WATCHER_NAME} is already owned on {self.bus_address}")
        self._conn = conn
        self._thread = threading.Thread(target=self._serve, name="fake-sni-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._conn is not None:
            # Closing the socket ends the blocking receive; the bus drops the name with it.
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(2)
            self._conn.close()
        if self._thread is not None:
            self._thread.join(5)

    def items(self) -> list[Registration]:
        with self._lock:
            return list(self.registered)

    def wait_item(self, timeout: float) -> Registration:
        deadline = time.monotonic() + timeout
        while not (items := self.items()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no StatusNotifierItem registered with the watcher within {timeout:.0f} s"
                )
            time.sleep(0.02)
        return items[0]

    # -- serving --------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._conn is not None
        while True:
            try:
                msg = self._conn.receive()
            except (OSError, ValueError, ConnectionError):
                if not self._stopping:
                    raise
                return
            if msg.header.message_type is MessageType.method_call:
                self._conn.send(self._answer(msg))

    def _props(self) -> dict[str, tuple[str, Any]]:
        with self._lock:
            names = [f"{r.service}{r.path}" for r in self.registered]
        return {
            "RegisteredStatusNotifierItems": ("as", names),
            "IsStatusNotifierHostRegistered": ("b", True),
            "ProtocolVersion": ("i", 0),
        }

    def _answer(self, msg: Any) -> Any:
        fields = msg.header.fields
        iface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        sender = fields.get(HeaderFields.sender, "")
        if member == "Introspect":
            return new_method_return(msg, "s", (_INTROSPECTION,))
        if iface == PROPS_IFACE and member == "GetAll":
            return new_method_return(msg, "a{sv}", (self._props(),))
        if iface == PROPS_IFACE and member == "Get":
            _iface, name = msg.body
            props = self._props()
            if name not in props:
                return new_error(msg, "org.freedesktop.DBus.Error.UnknownProperty")
            return new_method_return(msg, "v", (props[name],))
        if member == "RegisterStatusNotifierItem":
            (arg,) = msg.body
            # The spec allows a bus name (object at /StatusNotifierItem) or an object path
            # on the caller's own connection.
            if arg.startswith("/"):
                reg = Registration(service=sender, path=arg, sender=sender)
            else:
                reg = Registration(service=arg, path="/StatusNotifierItem", sender=sender)
            with self._lock:
                self.registered.append(reg)
            assert self._conn is not None
            emitter = DBusAddress(WATCHER_PATH, interface=WATCHER_NAME)
            self._conn.send(
                new_signal(emitter, "StatusNotifierItemRegistered", "s", (reg.service + reg.path,))
            )
            return new_method_return(msg)
        if member == "RegisterStatusNotifierHost":
            return new_method_return(msg)
        return new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")


# -- reading an item back, as a panel does --------------------------------------------------


@dataclass
class Item:
    properties: dict[str, Any]  # org.kde.StatusNotifierItem's, variants unwrapped
    menu: list[str]  # labels of the menu's top-level entries (separators left out)


def _unwrap(value: Any) -> Any:
    # jeepney gives a variant as (signature, value).
    return value[1] if isinstance(value, tuple) and len(value) == 2 else value


def read_item(bus_address: str, reg: Registration, timeout: float = 5.0) -> Item:
    with contextlib.closing(open_dbus_connection(bus_address)) as conn:
        item = DBusAddress(reg.path, bus_name=reg.service, interface=PROPS_IFACE)
        reply = conn.send_and_get_reply(
            new_method_call(item, "GetAll", "s", (ITEM_IFACE,)), timeout=timeout
        )
        props = {k: _unwrap(v) for k, v in unwrap_msg(reply)[0].items()}
        if props.get("Menu", NO_MENU) == NO_MENU:
            return Item(properties=props, menu=[])
        menu = DBusAddress(props["Menu"], bus_name=reg.service, interface=MENU_IFACE)
        # GetLayout(parentId 0, depth -1, all properties) -> (revision, (id, props, children))
        reply = conn.send_and_get_reply(
            new_method_call(menu, "GetLayout", "iias", (0, -1, [])), timeout=timeout
        )
        _revision, (_id, _props, children) = unwrap_msg(reply)
        labels = []
        for child in children:
            _cid, cprops, _sub = _unwrap(child)
            cprops = {k: _unwrap(v) for k, v in cprops.items()}
            if cprops.get("type") != "separator" and cprops.get("visible", True):
                labels.append(cprops.get("label", ""))
        return Item(properties=props, menu=labels)
