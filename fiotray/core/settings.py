"""The user's own settings (not secrets): terminal, SSH defaults, autostart, notifications.

The default tunnel is not here: it lives in tunnels.json (``TunnelStore``), the one
place the CLI and the GUI both read. A ``default_tunnel`` an older version wrote here
stays in ``extra``; ``TunnelStore`` moves it once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from fiotray.core.errors import FiotrayError, SetupError
from fiotray.core.store import JsonFile

log = logging.getLogger(__name__)

MAX_RECENT = 8
LEFT_CLICK = ("menu", "window", "toggle")


@dataclass(frozen=True)
class Settings:
    terminal: str = ""  # a program (and flag), e.g. "kitty" or "wezterm start --"; "" = detect
    ssh_user: str = "fio"
    ssh_route: str = "jump"
    autostart: bool = False
    notifications: bool = True
    # What a left click on the tray icon does: "menu", "window" or "toggle" (the
    # default tunnel). Not "toggle" by default: a stray click would prompt for a password.
    left_click: str = "menu"
    # [factory, device] pairs, newest first / as the user ordered them.
    recent: tuple[tuple[str, str], ...] = ()
    favourites: tuple[tuple[str, str], ...] = ()
    last_factory: str = ""
    # Seconds the app follows a device after Enable VPN until it answers over the VPN
    # before it says it is not reachable, and why (Settings shows minutes).
    reach_wait: float = 900.0
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer version wrote

    def remember(self, factory: str, device: str) -> Settings:
        recent = [(factory, device), *(r for r in self.recent if r != (factory, device))]
        return dataclasses.replace(self, recent=tuple(recent[:MAX_RECENT]))

    def changes(self, new: Settings) -> dict[str, Any]:
        """The fields `new` sets differently from these settings, for ``replace``.

        Applying only these to the saved settings keeps what another process changed
        in the fields this one did not touch.
        """
        return {
            f.name: getattr(new, f.name)
            for f in dataclasses.fields(Settings)
            if getattr(new, f.name) != getattr(self, f.name)
        }


def _parse(data: Any) -> Settings:
    """Defaults for anything missing or of the wrong type: settings are a convenience."""
    if not isinstance(data, dict):
        return Settings()
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name == "extra" or f.name not in data:
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        if isinstance(default, tuple):
            if isinstance(value, list):
                pairs = [
                    tuple(v)
                    for v in value
                    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
                ]
                values[f.name] = tuple(pairs)
        elif f.name == "left_click":
            if value in LEFT_CLICK:
                values[f.name] = value
        elif f.name == "reach_wait":
            # JSON has no float type of its own: 600 and 600.0 both mean seconds.
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                values[f.name] = float(min(value, 24 * 3600))
        elif isinstance(value, type(default)):
            values[f.name] = value
    known = {f.name for f in dataclasses.fields(Settings)}
    values["extra"] = {k: v for k, v in data.items() if k not in known}
    return Settings(**values)


def _dump(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    extra = data.pop("extra")
    return {**extra, **data}


class SettingsStore:
    def __init__(self, config_dir: Path | None = None) -> None:
        self.path = (config_dir or Path(platformdirs.user_config_dir("fiotray"))) / "settings.json"
        self._file: JsonFile[Settings] = JsonFile(
            self.path,
            parse=_parse,
            dump=_dump,
            default=Settings,
            invalid=self._invalid,
            error=SetupError,
        )

    def _invalid(self, reason: str) -> Settings:
        # Start with defaults; the next change replaces the broken file.
        log.warning("cannot read %s (%s); using defaults", self.path, reason)
        return Settings()

    def load(self) -> Settings:
        """The saved settings; defaults for anything missing or of the wrong type."""
        try:
            return self._file.read()
        except FiotrayError as exc:
            log.warning("%s; using defaults", exc)
            return Settings()

    def update(self, change: Callable[[Settings], Settings]) -> Settings:
        """Apply `change` to the saved settings under the file's lock; the new settings."""
        return self._file.update(change)

    def save(self, settings: Settings) -> None:
        """Replace every setting, also those another process changed: prefer ``update``."""
        self._file.update(lambda _saved: settings)
