"""fiotray's log file: where it is and how it is opened, for the tray app and the MCP
server alike (both run for long without a terminal to write to)."""

from __future__ import annotations

import logging
import os
import tempfile
from logging.handlers import RotatingFileHandler
from pathlib import Path

APP_NAME = "fiotray"
LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
# Request lines and loop chatter are noise, and a URL is one step from a secret.
QUIET_LOGGERS = ("httpx", "httpcore", "qasync", "asyncio")


def log_dir(demo: bool) -> Path:
    # The demo writes nothing outside a temp dir, its log included.
    if demo:
        return Path(tempfile.gettempdir()) / f"fiotray-demo-{os.getuid()}"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME))


def log_file(demo: bool) -> Path:
    """Where this process logs: the file setup_logging opened (the automatic demo logs
    with the user's, and a --demo that signed in keeps its own), else `log_dir`'s."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler):
            return Path(handler.baseFilename)
    return log_dir(demo) / "fiotray.log"


def setup_logging(
    directory: Path, *, max_bytes: int = LOG_BYTES, quiet: tuple[str, ...] = ()
) -> RotatingFileHandler:
    """fiotray.log in `directory`, rotated; the core never logs secrets, nor do we.
    `quiet`: more loggers kept to warnings (a library's per-request lines)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = RotatingFileHandler(
        directory / "fiotray.log", maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    if root.getEffectiveLevel() > logging.INFO:
        # The file wants INFO; stderr keeps what -v asked for.
        for h in root.handlers:
            if h.level == logging.NOTSET:
                h.setLevel(root.getEffectiveLevel())
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    for name in (*QUIET_LOGGERS, *quiet):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    return handler
