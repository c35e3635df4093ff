"""Start fiotray at login, hidden in the tray: an XDG autostart entry (Linux desktops).

Two places hold an entry named fiotray.desktop: the user's ($XDG_CONFIG_HOME/autostart),
which fiotray writes, and the system's ($XDG_CONFIG_DIRS, i.e. /etc/xdg/autostart), which
the .deb installs. The user's file overrides the system's entirely (XDG Autostart spec).
So with a system entry, turning autostart off writes a user entry with ``Hidden=true``,
and turning it on again removes that override; without one, the user's entry is written
and removed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import platformdirs

from fiotray.core.errors import FiotrayError
from fiotray.core.files import write_private

# Give the panel time to come up so the tray icon has somewhere to go.
DELAY_SECONDS = 5


ENTRY_NAME = "fiotray.desktop"


def autostart_path() -> Path:
    return Path(platformdirs.user_config_dir("autostart", appauthor=False)) / ENTRY_NAME


def system_entry() -> Path | None:
    """The system-wide autostart entry (a package's), the first in $XDG_CONFIG_DIRS."""
    dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    for directory in dirs.split(os.pathsep):
        # The spec says relative paths are invalid here: skip them, never resolve from cwd.
        if directory and os.path.isabs(directory):
            path = Path(directory) / "autostart" / ENTRY_NAME
            if path.is_file():
                return path
    return None


def _starts(path: Path) -> bool:
    """Whether a desktop session starts this entry: not Hidden, not switched off by GNOME."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    keys: dict[str, str] = {}
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            group = line
        elif group == "[Desktop Entry]" and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return (
        keys.get("Hidden", "false") != "true"
        and keys.get("X-GNOME-Autostart-enabled", "true") != "false"
    )


def launch_command() -> list[str]:
    """How this installation starts: the installed launcher, else this interpreter."""
    if getattr(sys, "frozen", False):
        # A PyInstaller bundle is its own executable: `-m fiotray` would be a CLI argument.
        on_path = shutil.which("fiotray")
        if on_path and Path(on_path).resolve() == Path(sys.executable).resolve():
            return [on_path]
        return [sys.executable]
    exe = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if exe and exe.name == "fiotray" and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "fiotray"]


def entry_text(command: list[str]) -> str:
    exec_line = " ".join(_desktop_quote(a) for a in [*command, "--hidden"])
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Name=fiotray",
            "Comment=FoundriesFactory devices over the factory VPN",
            f"Exec={exec_line}",
            # Nothing happens at login once the program is gone (a package removed but not
            # purged keeps its /etc entry; a deleted checkout leaves the user's entry).
            f"TryExec={command[0]}",  # a plain string: no Exec-style quoting
            "Icon=fiotray",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
            f"X-GNOME-Autostart-Delay={DELAY_SECONDS}",
            "X-KDE-autostart-after=panel",
            "",
        ]
    )


def _desktop_quote(arg: str) -> str:
    # Desktop Entry spec: reserved characters need double quotes, with \\ " ` $ escaped.
    if any(ch in arg for ch in ("\n", "\r", "\t")):
        raise FiotrayError("The launch command contains control characters.")
    if arg and all(ch.isalnum() or ch in "/._-+=:," for ch in arg):
        return arg
    escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'.replace("%", "%%")


HIDDEN_ENTRY = "\n".join(
    [
        "[Desktop Entry]",
        "Type=Application",
        "Name=fiotray",
        "Comment=Turned off in fiotray's settings: hides the system-wide autostart entry",
        "Hidden=true",
        "",
    ]
)


def is_enabled(path: Path | None = None) -> bool:
    """Whether fiotray starts at login: the user's entry if there is one, else the system's."""
    path = path or autostart_path()
    if path.is_file():
        return _starts(path)
    system = system_entry()
    return system is not None and _starts(system)


def _write(path: Path, text: str) -> None:
    # ~/.config/autostart is shared with every other program: not ours to tighten.
    write_private(path, text, own_dir=False)
    path.chmod(0o644)  # other tools (session managers) read it; nothing secret in it


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise FiotrayError(f"Cannot remove the autostart entry: {exc.strerror or exc}.") from None


def enable(command: list[str] | None = None, path: Path | None = None) -> Path:
    """Start at login; the entry that now applies."""
    path = path or autostart_path()
    system = system_entry()
    if system is not None and _starts(system):
        # The package's entry does it (and follows the package): drop a user override.
        _remove(path)
        return system
    _write(path, entry_text(command or launch_command()))
    return path


def disable(path: Path | None = None) -> None:
    path = path or autostart_path()
    system = system_entry()
    if system is not None and _starts(system):
        _write(path, HIDDEN_ENTRY)  # a user cannot delete /etc/xdg's entry: hide it
    else:
        _remove(path)


__all__ = [
    "DELAY_SECONDS",
    "ENTRY_NAME",
    "autostart_path",
    "disable",
    "enable",
    "entry_text",
    "is_enabled",
    "launch_command",
    "system_entry",
]
