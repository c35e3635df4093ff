"""pytest plugin: a private headless X desktop with a real XEmbed system tray.

Fixtures
--------
``xsession``
    An `XSession`: Xvfb on a display it picked itself (``-displayfd``), a
    private D-Bus session bus, openbox and trayer, all stopped by PID at the
    end. ``session.env`` is the environment for an app under test: DISPLAY,
    the bus, ``QT_QPA_PLATFORM=xcb`` and HOME/XDG/TMPDIR dirs inside the
    session's temp dir, so nothing touches the user's own files.

Helpers on the session: ``shot(path)`` (``import -window root``),
``tray_icon(cls)`` (the X id of CLASS's icon embedded in the tray, or None),
``wait_tray_icon(cls)``, ``click(window, button)``, ``click_at(x, y, button,
repeat)``, ``visible_windows(cls)``, ``geometry(window)``, ``key(name)``,
``type(text)``, ``activate(window)``.

Needs the Debian packages xvfb, openbox, trayer, xdotool, x11-utils,
imagemagick, dbus and libx11-6; when one is missing the fixture fails (a
skip would hide a broken CI set-up) and names them.

``xsession_no_tray``
    The same without trayer: no tray at all until a test starts one, e.g. the fake
    StatusNotifierWatcher of tests/sni_watcher.py on ``session.env``'s bus.

The bus has no StatusNotifierWatcher, so with trayer Qt uses the XEmbed tray; KDE's
and GNOME's D-Bus tray path is tested with ``xsession_no_tray`` and tests/sni_watcher.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import stop

PACKAGES = {
    "Xvfb": "xvfb",
    "openbox": "openbox",
    "trayer": "trayer",
    "xdotool": "xdotool",
    "xwininfo": "x11-utils",
    "import": "imagemagick",
    "dbus-daemon": "dbus",
}
TRAY_HOSTS = ("trayer", "tint2")
TRAYER = [
    "trayer",
    "--edge",
    "top",
    "--align",
    "right",
    "--widthtype",
    "request",
    "--height",
    "28",
    "--transparent",
    "false",
    "--SetDockType",
    "true",
    "--SetPartialStrut",
    "true",
]
START_TIMEOUT = 30.0  # a loaded 2-core machine has taken over 10 s to start all three


def missing_tools() -> list[str]:
    return [tool for tool in PACKAGES if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install "
            + " ".join(sorted({PACKAGES[t] for t in missing}))
        )


# -- a little Xlib through ctypes: walking the window tree is fast enough to poll tightly ----


class _ClassHint(ctypes.Structure):
    _fields_ = [("res_name", ctypes.c_char_p), ("res_class", ctypes.c_char_p)]


_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# A window may vanish between two calls; Xlib's default handler would exit the process.
_ignore_errors = _ERROR_HANDLER(lambda _d, _e: 0)


class XDisplay:
    """A connection to one X display for reading the window tree (no windows of its own)."""

    def __init__(self, display: str) -> None:
        x = ctypes.CDLL("libX11.so.6")
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XQueryTree.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.POINTER(ctypes.c_ulong),
            ctypes.POINTER(ctypes.c_ulong),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
            ctypes.POINTER(ctypes.c_uint),
        ]
        x.XGetClassHint.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_ClassHint)]
        x.XFree.argtypes = [ctypes.c_void_p]
        x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x.XInternAtom.restype = ctypes.c_ulong
        x.XGetSelectionOwner.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x.XGetSelectionOwner.restype = ctypes.c_ulong
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        x.XSetErrorHandler(_ignore_errors)
        self.x = x
        self.dpy = x.XOpenDisplay(display.encode())
        if not self.dpy:
            raise OSError(f"cannot open X display {display}")
        self.root = x.XDefaultRootWindow(self.dpy)

    def close(self) -> None:
        if self.dpy:
            self.x.XCloseDisplay(self.dpy)
            self.dpy = None

    def children(self, window: int) -> list[int]:
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        kids = ctypes.POINTER(ctypes.c_ulong)()
        n = ctypes.c_uint()
        if not self.x.XQueryTree(
            self.dpy, window, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(kids), n
        ):
            return []
        out = [kids[i] for i in range(n.value)]
        if kids:
            self.x.XFree(kids)
        return out

    def wm_class(self, window: int) -> tuple[str, str] | None:
        hint = _ClassHint()
        if not self.x.XGetClassHint(self.dpy, window, ctypes.byref(hint)):
            return None
        name = (hint.res_name or b"").decode(errors="replace")
        cls = (hint.res_class or b"").decode(errors="replace")
        # c_char_p fields were copied into Python strings; free Xlib's buffers via raw pointers.
        for fld in ("res_name", "res_class"):
            ptr = ctypes.c_void_p.from_buffer(hint, getattr(_ClassHint, fld).offset)
            if ptr.value:
                self.x.XFree(ptr)
        return name, cls

    def descendants(self, window: int) -> Iterator[int]:
        stack = list(self.children(window))
        while stack:
            w = stack.pop()
            yield w
            stack.extend(self.children(w))

    def selection_owner(self, atom: str) -> int:
        return self.x.XGetSelectionOwner(self.dpy, self.x.XInternAtom(self.dpy, atom.encode(), 0))

    def tray_icons(self, cls: str) -> list[int]:
        """Windows of class or instance `cls` (any case) inside a tray host's window."""
        want = cls.lower()
        found = []
        for top in self.children(self.root):
            for host in [top, *self.descendants(top)]:
                wc = self.wm_class(host)
                if wc and wc[1].lower() in TRAY_HOSTS:
                    for w in self.descendants(host):
                        c = self.wm_class(w)
                        if c and want in (c[0].lower(), c[1].lower()):
                            found.append(w)
                    break
        return found


# -- the session ---------------------------------------------------------------------------


@dataclass
class XSession:
    display: str
    root: Path
    env: dict[str, str]
    _x: XDisplay | None = None

    @property
    def x(self) -> XDisplay:
        if self._x is None:
            self._x = XDisplay(self.display)
        return self._x

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=30
        )

    def shot(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run("import", "-window", "root", str(path))
        return path

    def tray_icon(self, cls: str) -> str | None:
        icons = self.x.tray_icons(cls)
        return hex(icons[0]) if icons else None

    def wait_tray_icon(self, cls: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while (w := self.tray_icon(cls)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no tray icon of class {cls} after {timeout:.0f} s")
            time.sleep(0.02)
        return w

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        out = self.run("xdotool", "getwindowgeometry", "--shell", window).stdout
        g = dict(line.split("=", 1) for line in out.split())
        return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])

    def click(self, window: str, button: int = 1) -> None:
        _, _, w, h = self.geometry(window)
        self.run(
            "xdotool",
            "mousemove",
            "--window",
            window,
            str(w // 2),
            str(h // 2),
            "click",
            str(button),
        )

    def click_at(self, x: int, y: int, button: int = 1, repeat: int = 1) -> None:
        """A click at root coordinates (a double click with repeat=2)."""
        self.run(
            "xdotool", "mousemove", str(x), str(y), "click", "--repeat", str(repeat), str(button)
        )

    def key(self, name: str) -> None:
        self.run("xdotool", "key", name)

    def type(self, text: str) -> None:
        """Type into the focused window, as a person would (XTEST, not XSendEvent)."""
        self.run("xdotool", "type", "--delay", "20", text)

    def activate(self, window: str) -> None:
        self.run("xdotool", "windowactivate", "--sync", window)

    def visible_windows(self, cls: str) -> list[str]:
        out = self.run("xdotool", "search", "--onlyvisible", "--class", cls, check=False).stdout
        return out.split()

    def close(self) -> None:
        if self._x is not None:
            self._x.close()
            self._x = None


def _wait_file(path: Path, proc: subprocess.Popen[bytes], what: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip().splitlines()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def start_xsession(
    *, tray: bool = True, wm: bool = True, size: str = "1024x600"
) -> Iterator[XSession]:
    """Xvfb + D-Bus session bus (+ openbox) (+ trayer); everything stopped on exit."""
    root = Path(tempfile.mkdtemp(prefix="fiotray-x-"))
    procs: list[subprocess.Popen[bytes]] = []
    logs = root / "logs"
    logs.mkdir()
    session: XSession | None = None

    def spawn(argv: list[str], name: str, env: dict[str, str], **kw: object) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,  # type: ignore[arg-type]
        )
        procs.append(proc)
        return proc

    try:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
        }
        display_file = root / "display"
        with display_file.open("wb") as fh:
            xvfb = spawn(
                [
                    "Xvfb",
                    "-displayfd",
                    str(fh.fileno()),
                    "-screen",
                    "0",
                    f"{size}x24",
                    "-nolisten",
                    "tcp",
                ],
                "xvfb",
                env,
                pass_fds=(fh.fileno(),),
            )
        display = ":" + _wait_file(display_file, xvfb, "Xvfb")
        bus_file = root / "bus"
        with bus_file.open("wb") as fh:
            bus = spawn(
                [
                    "dbus-daemon",
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    f"--print-address={fh.fileno()}",
                ],
                "dbus",
                env,
                pass_fds=(fh.fileno(),),
            )
        bus_address = _wait_file(bus_file, bus, "dbus-daemon")
        home = root / "home"
        runtime = root / "runtime"
        for d in (home, runtime, root / "tmp"):
            d.mkdir(mode=0o700)
        env.update(
            DISPLAY=display,
            DBUS_SESSION_BUS_ADDRESS=bus_address,
            QT_QPA_PLATFORM="xcb",
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            TMPDIR=str(root / "tmp"),
        )
        env.pop("PYTHON_KEYRING_BACKEND", None)
        session = XSession(display=display, root=root, env=env)
        if wm:
            spawn(["openbox"], "openbox", env)
            _until(
                lambda: (
                    "window id"
                    in session.run("xprop", "-root", "_NET_SUPPORTING_WM_CHECK", check=False).stdout
                ),
                "openbox",
            )
        if tray:
            spawn(TRAYER, "trayer", env)
            _until(lambda: session.x.selection_owner("_NET_SYSTEM_TRAY_S0") != 0, "trayer")
        yield session
    finally:
        if session is not None:
            session.close()
        for proc in reversed(procs):
            stop(proc, timeout=3)
        shutil.rmtree(root, ignore_errors=True)


def _until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f} s")
        time.sleep(0.05)


@pytest.fixture
def xsession() -> Iterator[XSession]:
    require_tools()
    with start_xsession() as session:
        yield session


@pytest.fixture
def xsession_no_tray() -> Iterator[XSession]:
    require_tools()
    with start_xsession(tray=False) as session:
        yield session
