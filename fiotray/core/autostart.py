"""Start fiotray at login, hidden in the tray: an XDG autostart entry (Linux desktops)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

from fiotray.core.errors import FiotrayError
from fiotray.core.files import write_private

# Give the panel time to come up so the tray icon has somewhere to go.
DELAY_SECONDS = 5


def autostart_path() -> Path:
    return Path(platformdirs.user_config_dir("autostart", appauthor=False)) / "fiotray.desktop"


def launch_command() -> list[str]:
    """How this installation starts: the installed launcher, else this interpreter."""
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


def is_enabled(path: Path | None = None) -> bool:
    return (path or autostart_path()).is_file()


def enable(command: list[str] | None = None, path: Path | None = None) -> Path:
    path = path or autostart_path()
    # ~/.config/autostart is shared with every other program: not ours to tighten.
    write_private(path, entry_text(command or launch_command()), own_dir=False)
    path.chmod(0o644)  # other tools (session managers) read it; nothing secret in it
    return path


def disable(path: Path | None = None) -> None:
    try:
        (path or autostart_path()).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise FiotrayError(f"Cannot remove the autostart entry: {exc.strerror or exc}.") from None


__all__ = [
    "DELAY_SECONDS",
    "autostart_path",
    "disable",
    "enable",
    "entry_text",
    "is_enabled",
    "launch_command",
]
