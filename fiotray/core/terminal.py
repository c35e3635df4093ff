"""Start a command (an argv list) in the user's terminal emulator.

Linux order: the user's setting, ``$TERMINAL``, ``xdg-terminal-exec``, the
desktop's own terminal (from ``XDG_CURRENT_DESKTOP``), ``x-terminal-emulator``,
then known terminals. The command is always appended as separate argv elements
after the terminal's "run this" flag; nothing goes through a shell on Linux.
macOS has no argv way into Terminal.app: ``osascript`` types a shell-quoted
line into a new window. Windows: Windows Terminal (``wt.exe new-tab``), else
``cmd /c start``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fiotray.core.errors import FiotrayError

log = logging.getLogger(__name__)

NO_TERMINAL = "No terminal emulator found: install one (e.g. xterm) or set one in the settings."

Style = Literal["exec", "osascript", "wt", "cmd"]

# What each known terminal needs before the command's argv. foot and kitty run
# their trailing arguments as the command; gnome-terminal's "-e" takes one string.
_EXEC_FLAGS: dict[str, tuple[str, ...]] = {
    "alacritty": ("-e",),
    "foot": (),
    "gnome-terminal": ("--",),
    "kgx": ("--",),
    "kitty": (),
    "konsole": ("-e",),
    "lxterminal": ("-e",),
    "mate-terminal": ("-x",),
    "qterminal": ("-e",),
    "wezterm": ("start", "--"),
    "x-terminal-emulator": ("-e",),
    "xdg-terminal-exec": (),
    "xfce4-terminal": ("-x",),
    "xterm": ("-e",),
}
# Window title options. The "--title=" form keeps a title that starts with '-' a value.
_TITLE_OPTION: dict[str, str] = {
    "alacritty": "--title=",
    "foot": "--title=",
    "gnome-terminal": "--title=",
    "kgx": "--title=",
    "kitty": "--title=",
    "lxterminal": "--title=",
    "mate-terminal": "--title=",
    "xfce4-terminal": "--title=",
    "xterm": "-T",
}
# XDG_CURRENT_DESKTOP token (upper case) -> that desktop's terminals, preferred first.
_DESKTOP_TERMINALS: dict[str, tuple[str, ...]] = {
    "GNOME": ("kgx", "gnome-terminal"),
    "UNITY": ("gnome-terminal",),
    "X-CINNAMON": ("gnome-terminal",),
    "KDE": ("konsole",),
    "XFCE": ("xfce4-terminal",),
    "MATE": ("mate-terminal",),
    "LXQT": ("qterminal",),
    "LXDE": ("lxterminal",),
}
_KNOWN_FALLBACKS = ("foot", "kitty", "wezterm", "alacritty", "xterm")
_MAX_TITLE = 80
# cmd.exe interprets these even in arguments that Python quotes for the C runtime.
_CMD_SPECIAL = set('&|<>^%!"()')


@dataclass(frozen=True)
class TerminalChoice:
    name: str
    argv_prefix: tuple[str, ...]  # e.g. ("/usr/bin/xterm", "-e")
    # How the command is handed over: appended argv ("exec"), or through osascript,
    # Windows Terminal or cmd's start, which each need their own quoting.
    style: Style = "exec"


def _program_name(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.lower().endswith(".exe") else name


def _choice(path: str, extra: Sequence[str] | None = None) -> TerminalChoice:
    """``path`` with the given words, or its known flag (``-e`` for an unknown one)."""
    name = _program_name(path)
    flags = tuple(extra) if extra is not None else _EXEC_FLAGS.get(name, ("-e",))
    return TerminalChoice(name, (path, *flags))


def _from_words(text: str, which: Callable[[str], str | None], what: str) -> TerminalChoice:
    """A setting or $TERMINAL: one word gets its flag; several are used as written."""
    try:
        words = shlex.split(text)
    except ValueError:
        raise FiotrayError(f"The {what} is not a valid command line (unbalanced quotes).") from None
    if not words:
        raise FiotrayError(f"The {what} is empty.")
    path = which(words[0])
    if path is None:
        raise FiotrayError(f"The {what} names {words[0][:80]!r}, which was not found.")
    return _choice(path, words[1:] if len(words) > 1 else None)


def resolve_terminal(
    setting: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    platform: str = sys.platform,
) -> TerminalChoice:
    """The terminal to run commands in; FiotrayError when there is none.

    A user setting that cannot be used is an error rather than a silent fallback:
    the user asked for that terminal. A stale ``$TERMINAL`` is skipped.
    """
    env = os.environ if env is None else env
    if setting is not None and setting.strip():
        return _from_words(setting, which, "terminal set in the settings")

    if platform == "darwin":
        path = which("osascript")
        if path is None:
            raise FiotrayError(NO_TERMINAL)
        return TerminalChoice("Terminal", (path,), "osascript")
    if platform == "win32":
        path = which("wt.exe") or which("wt")
        if path is not None:
            return TerminalChoice("Windows Terminal", (path, "new-tab"), "wt")
        path = which("cmd.exe") or env.get("ComSpec") or env.get("COMSPEC")
        if path is None:
            raise FiotrayError(NO_TERMINAL)
        return TerminalChoice("Command Prompt", (path, "/c", "start", ""), "cmd")

    terminal_env = env.get("TERMINAL", "").strip()
    if terminal_env:
        try:
            return _from_words(terminal_env, which, "$TERMINAL")
        except FiotrayError as exc:
            log.info("ignoring $TERMINAL: %s", exc)

    candidates = ["xdg-terminal-exec"]
    for desktop in env.get("XDG_CURRENT_DESKTOP", "").split(":"):
        candidates += _DESKTOP_TERMINALS.get(desktop.strip().upper(), ())
    candidates += ["x-terminal-emulator", *_KNOWN_FALLBACKS]
    for name in candidates:
        path = which(name)
        if path is not None:
            return _choice(path)
    raise FiotrayError(NO_TERMINAL)


# -- argv builders ------------------------------------------------------------------


def _check_command(command: Sequence[str]) -> list[str]:
    if isinstance(command, str):
        raise FiotrayError("The command for the terminal must be a list of arguments.")
    args = list(command)
    if not args:
        raise FiotrayError("There is no command to run in the terminal.")
    for arg in args:
        if not isinstance(arg, str):
            raise FiotrayError("The command for the terminal has an argument that is not text.")
        # Harmless in an argv, but osascript, wt and cmd would turn them into new lines.
        if any(unicodedata.category(c) == "Cc" for c in arg):
            raise FiotrayError("The command for the terminal contains control characters.")
    return args


def clean_title(title: str | None) -> str | None:
    """A window title without control, format (bidi) or unassigned characters."""
    if not title:
        return None
    text = "".join(" " if c.isspace() else c for c in title)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    text = " ".join(text.split())[:_MAX_TITLE].lstrip("-").strip()
    return text or None


def applescript_string(text: str) -> str:
    """``text`` as an AppleScript string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _osascript_argv(program: str, args: list[str], title: str | None) -> list[str]:
    # Terminal runs the line in the user's login shell (zsh or bash): POSIX quoting.
    line = shlex.join(args)
    script = [
        'tell application "Terminal"',
        "activate",
        f"set fiotrayTab to do script {applescript_string(line)}",
    ]
    if title:
        script.append(f"set custom title of fiotrayTab to {applescript_string(title)}")
    script.append("end tell")
    argv = [program]
    for statement in script:
        argv += ["-e", statement]
    return argv


def terminal_argv(
    choice: TerminalChoice, command: Sequence[str], *, title: str | None = None
) -> list[str]:
    """The argv that opens ``choice`` running ``command``."""
    args = _check_command(command)
    title = clean_title(title)
    program, *rest = choice.argv_prefix
    if choice.style == "osascript":
        return _osascript_argv(program, args, title)
    if choice.style == "wt":
        # wt splits its own command line on ';' (a new tab per part) unless escaped.
        wt_title = ["--title", title] if title else []
        return [program, *rest, *wt_title, *(a.replace(";", "\\;") for a in args)]
    if choice.style == "cmd":
        if any(c in _CMD_SPECIAL for a in args for c in a):
            raise FiotrayError(
                "This command cannot be passed through cmd.exe safely; "
                "install Windows Terminal or set a terminal in the settings."
            )
        return [program, *rest, *args]
    title_args: list[str] = []
    option = _TITLE_OPTION.get(_program_name(program))
    if title and option:
        title_args = [option + title] if option.endswith("=") else [option, title]
    return [program, *title_args, *rest, *args]


# -- launching ----------------------------------------------------------------------


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        code = proc.wait()
    except OSError as exc:  # nothing to do about it; the terminal is independent of us
        log.debug("waiting for terminal %d failed: %s", proc.pid, exc)
        return
    log.debug("terminal process %d exited with %d", proc.pid, code)


def _spawn(argv: list[str], env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    extra: dict[str, bool] = {"start_new_session": True} if os.name == "posix" else {}
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        close_fds=True,
        **extra,
    )


# Runs the command, sets the window title by escape sequence whatever the emulator (the
# title given on its command line is lost through x-terminal-emulator and others), and on
# failure keeps the window open with the exit status until Enter: ssh's own message
# (tunnel down, unknown host key, refused login) is then still there to read. The title
# and the command arrive as arguments, never inside the script's text.
HOLD_SCRIPT = (
    # One line: a terminal's command line takes no control characters (newlines either).
    'title=$1; shift; [ -n "$title" ] && printf "\\033]0;%s\\007" "$title"; "$@"; '
    'status=$?; if [ "$status" -ne 0 ]; then '
    "printf '\\n%s exited with status %s. Press Enter to close this window.\\n' "
    '"$1" "$status"; read -r _; fi; exit "$status"'
)


def held_on_failure(command: Sequence[str], title: str | None = None) -> list[str]:
    """`command` run through /bin/sh with HOLD_SCRIPT (POSIX systems)."""
    return ["/bin/sh", "-c", HOLD_SCRIPT, "fiotray", clean_title(title) or "", *command]


async def launch_in_terminal(
    command: Sequence[str],
    *,
    setting: str | None = None,
    env: Mapping[str, str] | None = None,
    title: str | None = None,
) -> int:
    """Open a terminal running ``command``, detached from us; returns its pid.

    The terminal gets its own session so closing fiotray does not close it. A
    daemon thread reaps it, so no zombie is left and the event loop holds no
    handle that would outlive it.
    """
    if env is None:
        choice = resolve_terminal(setting)
    else:
        # Search the PATH the terminal will be started with, not ours.
        path = env.get("PATH", "")
        choice = resolve_terminal(setting, env=env, which=lambda n: shutil.which(n, path=path))
    argv = terminal_argv(choice, command, title=title)
    try:
        proc = await asyncio.to_thread(_spawn, argv, env)
    except OSError as exc:
        raise FiotrayError(
            f"Cannot start the terminal {choice.name}: {exc.strerror or exc}."
        ) from None
    threading.Thread(
        target=_reap, args=(proc,), name="fiotray-terminal-reaper", daemon=True
    ).start()
    log.info("started %s (pid %d)", choice.name, proc.pid)
    return proc.pid


__all__ = [
    "NO_TERMINAL",
    "TerminalChoice",
    "applescript_string",
    "clean_title",
    "launch_in_terminal",
    "resolve_terminal",
    "terminal_argv",
]
