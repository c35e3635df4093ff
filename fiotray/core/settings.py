"""The user's own settings (not secrets): terminal, SSH defaults, autostart, notifications."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from fiotray.core.errors import ProfileError
from fiotray.core.files import write_private

log = logging.getLogger(__name__)

MAX_RECENT = 8


@dataclass(frozen=True)
class Settings:
    terminal: str = ""  # a program (and flag), e.g. "kitty" or "wezterm start --"; "" = detect
    ssh_user: str = "fio"
    ssh_route: str = "jump"
    autostart: bool = False
    notifications: bool = True
    default_tunnel: str = ""
    # [factory, device] pairs, newest first / as the user ordered them.
    recent: tuple[tuple[str, str], ...] = ()
    favourites: tuple[tuple[str, str], ...] = ()
    last_factory: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer version wrote

    def remember(self, factory: str, device: str) -> Settings:
        recent = [(factory, device), *(r for r in self.recent if r != (factory, device))]
        return dataclasses.replace(self, recent=tuple(recent[:MAX_RECENT]))


class SettingsStore:
    def __init__(self, config_dir: Path | None = None) -> None:
        self.path = (config_dir or Path(platformdirs.user_config_dir("fiotray"))) / "settings.json"

    def load(self) -> Settings:
        """The saved settings; defaults for anything missing or of the wrong type."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Settings()
        except (OSError, ValueError) as exc:
            # Settings are a convenience: start with defaults, keep the file for the user.
            log.warning("cannot read %s (%s); using defaults", self.path, type(exc).__name__)
            return Settings()
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
                        if isinstance(v, list)
                        and len(v) == 2
                        and all(isinstance(x, str) for x in v)
                    ]
                    values[f.name] = tuple(pairs)
            elif isinstance(value, type(default)):
                values[f.name] = value
        known = {f.name for f in dataclasses.fields(Settings)}
        values["extra"] = {k: v for k, v in data.items() if k not in known}
        return Settings(**values)

    def update(self, change: Callable[[Settings], Settings]) -> Settings:
        """Apply `change` to the settings as saved now and save the result."""
        settings = change(self.load())
        self.save(settings)
        return settings

    def save(self, settings: Settings) -> None:
        data = dataclasses.asdict(settings)
        extra = data.pop("extra")
        data = {**extra, **data}
        write_private(self.path, json.dumps(data, indent=2) + "\n", error=ProfileError)
