"""fiotray's command line: every tray action, scriptable.

`main` parses (with a fast path for the tray app's own command lines) and runs one
command; each command group lives in its own module and only adapts `fiotray.ops`
to text, JSON and exit codes.
"""

from fiotray.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
