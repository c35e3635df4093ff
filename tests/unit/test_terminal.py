"""Terminal resolution order, argv builders per platform, and one real launch."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from fiotray.core.errors import FiotrayError
from fiotray.core.terminal import (
    NO_TERMINAL,
    TerminalChoice,
    applescript_string,
    clean_title,
    launch_in_terminal,
    resolve_terminal,
    terminal_argv,
)

SSH = ["ssh", "-o", "HostKeyAlias=fiotray.acme.dev1", "--", "fio@10.42.42.7"]


def fake_which(available: Iterable[str]) -> Callable[[str], str | None]:
    """`which` that knows only ``available`` (bare names live in /usr/bin)."""
    names = set(available)

    def which(name: str) -> str | None:
        if "/" in name or "\\" in name:
            return name if name in names else None
        return f"/usr/bin/{name}" if name in names else None

    return which


def resolve(
    available: Iterable[str],
    env: dict[str, str] | None = None,
    setting: str | None = None,
    platform: str = "linux",
) -> TerminalChoice:
    return resolve_terminal(setting, env=env or {}, which=fake_which(available), platform=platform)


# -- resolution order (Linux) -------------------------------------------------------

EVERYTHING = [
    "myterm",
    "kitty",
    "xdg-terminal-exec",
    "kgx",
    "gnome-terminal",
    "konsole",
    "xfce4-terminal",
    "x-terminal-emulator",
    "foot",
    "wezterm",
    "alacritty",
    "xterm",
]


def test_order_peeled_one_by_one() -> None:
    env = {"TERMINAL": "kitty", "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}
    available = list(EVERYTHING)
    expected = [
        ("setting", ("/usr/bin/myterm", "-e")),
        ("TERMINAL", ("/usr/bin/kitty",)),
        ("xdg-terminal-exec", ("/usr/bin/xdg-terminal-exec",)),
        ("kgx", ("/usr/bin/kgx", "--")),
        ("gnome-terminal", ("/usr/bin/gnome-terminal", "--")),
        ("x-terminal-emulator", ("/usr/bin/x-terminal-emulator", "-e")),
        ("foot", ("/usr/bin/foot",)),
        ("wezterm", ("/usr/bin/wezterm", "start", "--")),  # kitty is gone with $TERMINAL
        ("alacritty", ("/usr/bin/alacritty", "-e")),
        ("xterm", ("/usr/bin/xterm", "-e")),
    ]
    setting: str | None = "myterm"
    for what, prefix in expected:
        assert resolve(available, env, setting).argv_prefix == prefix, what
        if what == "setting":
            setting = None
        elif what == "TERMINAL":
            del env["TERMINAL"]
            available.remove("kitty")
        else:
            available.remove(what)
    with pytest.raises(FiotrayError) as info:
        resolve([n for n in available if n not in ("konsole", "xfce4-terminal", "myterm")], env)
    assert str(info.value) == NO_TERMINAL


@pytest.mark.parametrize(
    ("desktop", "prefix"),
    [
        ("KDE", ("/usr/bin/konsole", "-e")),
        ("XFCE", ("/usr/bin/xfce4-terminal", "-x")),
        ("GNOME", ("/usr/bin/kgx", "--")),
        ("ubuntu:GNOME", ("/usr/bin/kgx", "--")),
        ("X-Cinnamon", ("/usr/bin/gnome-terminal", "--")),
        ("Unknown", ("/usr/bin/x-terminal-emulator", "-e")),
        ("", ("/usr/bin/x-terminal-emulator", "-e")),
    ],
)
def test_desktop_terminal(desktop: str, prefix: tuple[str, ...]) -> None:
    available = ["kgx", "gnome-terminal", "konsole", "xfce4-terminal", "x-terminal-emulator"]
    choice = resolve(available, {"XDG_CURRENT_DESKTOP": desktop})
    assert choice.argv_prefix == prefix
    assert choice.style == "exec"


def test_known_fallbacks_in_order() -> None:
    order = ["foot", "kitty", "wezterm", "alacritty", "xterm"]
    for i, name in enumerate(order):
        assert resolve(order[i:]).name == name


@pytest.mark.parametrize(
    ("setting", "prefix"),
    [
        ("kitty", ("/usr/bin/kitty",)),
        ("wezterm", ("/usr/bin/wezterm", "start", "--")),
        ("wezterm start --", ("/usr/bin/wezterm", "start", "--")),
        ("gnome-terminal", ("/usr/bin/gnome-terminal", "--")),
        ("myterm", ("/usr/bin/myterm", "-e")),  # unknown: the common -e convention
        ("myterm --exec", ("/usr/bin/myterm", "--exec")),  # several words: as written
        ("'/opt/my term/bin/t' -x", ("/opt/my term/bin/t", "-x")),
    ],
)
def test_user_setting(setting: str, prefix: tuple[str, ...]) -> None:
    available = ["kitty", "wezterm", "gnome-terminal", "myterm", "/opt/my term/bin/t", "xterm"]
    assert resolve(available, {"TERMINAL": "xterm"}, setting).argv_prefix == prefix


def test_user_setting_not_found_is_an_error_not_a_fallback() -> None:
    with pytest.raises(FiotrayError, match="not found"):
        resolve(["xterm"], setting="nosuchterm")
    with pytest.raises(FiotrayError, match="quotes"):
        resolve(["xterm"], setting="'xterm")
    # Blank means "not set".
    assert resolve(["xterm"], setting="  ").name == "xterm"


def test_stale_terminal_variable_is_skipped() -> None:
    assert resolve(["xterm"], {"TERMINAL": "gone"}).name == "xterm"
    assert resolve(["xterm", "wezterm"], {"TERMINAL": "wezterm"}).argv_prefix == (
        "/usr/bin/wezterm",
        "start",
        "--",
    )


def test_macos_and_windows_resolution() -> None:
    mac = resolve(["osascript"], platform="darwin")
    assert (mac.argv_prefix, mac.style) == (("/usr/bin/osascript",), "osascript")
    with pytest.raises(FiotrayError, match="No terminal"):
        resolve([], platform="darwin")

    wt = resolve(["wt.exe", "cmd.exe"], platform="win32")
    assert (wt.argv_prefix, wt.style) == (("/usr/bin/wt.exe", "new-tab"), "wt")
    cmd = resolve(["cmd.exe"], platform="win32")
    assert (cmd.argv_prefix, cmd.style) == (("/usr/bin/cmd.exe", "/c", "start", ""), "cmd")
    comspec = resolve([], {"ComSpec": r"C:\Windows\system32\cmd.exe"}, platform="win32")
    assert comspec.argv_prefix[0] == r"C:\Windows\system32\cmd.exe"
    # A setting wins on every platform.
    assert resolve(["kitty"], setting="kitty", platform="darwin").argv_prefix == ("/usr/bin/kitty",)


# -- argv builders ------------------------------------------------------------------


def test_exec_argv_appends_each_element() -> None:
    choice = TerminalChoice("xterm", ("/usr/bin/xterm", "-e"))
    command = [*SSH, "echo", "$(touch x)", "-e", "a b"]
    assert terminal_argv(choice, command) == ["/usr/bin/xterm", "-e", *command]


@pytest.mark.parametrize(
    ("prefix", "expected_title"),
    [
        (("/usr/bin/xterm", "-e"), ["-T", "fio dev1"]),
        (("/usr/bin/kitty",), ["--title=fio dev1"]),
        (("/usr/bin/gnome-terminal", "--"), ["--title=fio dev1"]),
        (("/usr/bin/wezterm", "start", "--"), []),  # wezterm start has no title option
        (("/usr/bin/myterm", "-e"), []),
    ],
)
def test_exec_titles(prefix: tuple[str, ...], expected_title: list[str]) -> None:
    choice = TerminalChoice(Path(prefix[0]).name, prefix)
    argv = terminal_argv(choice, SSH, title="fio dev1")
    assert argv == [prefix[0], *expected_title, *prefix[1:], *SSH]


def test_title_cleaned() -> None:
    assert clean_title("--dev\u202e1\n\x1b]0;x\x07 ok") == "dev1 ]0;x ok"
    assert clean_title("\u200b") is None
    assert clean_title(None) is None
    assert len(clean_title("x" * 500) or "") == 80


@pytest.mark.parametrize(
    "command",
    [[], ["ssh", "a\nb"], ["ssh", "\x1b[2J"], ["ssh", "a\x00"], "ssh host", ["ssh", 3]],
)
def test_bad_commands_refused(command: object) -> None:
    choice = TerminalChoice("xterm", ("/usr/bin/xterm", "-e"))
    with pytest.raises(FiotrayError):
        terminal_argv(choice, command)  # type: ignore[arg-type]


def parse_applescript_string(literal: str) -> str:
    """The inverse of AppleScript's string-literal escaping (\\\\ and \\")."""
    assert literal.startswith('"') and literal.endswith('"')
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in '\\"', body
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != '"', "unescaped quote ends the literal early"
            out.append(body[i])
            i += 1
    return "".join(out)


def test_applescript_quoting() -> None:
    assert applescript_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    nasty = ['"; do shell script "touch x', "it's", "back\\slash\\", "$(touch x)", "`id`"]
    for text in nasty:
        assert parse_applescript_string(applescript_string(text)) == text


def test_osascript_argv() -> None:
    choice = TerminalChoice("Terminal", ("/usr/bin/osascript",), "osascript")
    command = [*SSH, 'echo "hi" \\ it\'s', "$(touch x)"]
    argv = terminal_argv(choice, command, title='dev "1"')
    assert argv[0] == "/usr/bin/osascript"
    assert argv[1::2] == ["-e"] * 5
    statements = argv[2::2]
    assert statements[:2] == ['tell application "Terminal"', "activate"]
    assert statements[4] == "end tell"
    do_script = re.fullmatch(r"set fiotrayTab to do script (\".*\")", statements[2])
    assert do_script is not None
    # What Terminal's shell gets back is exactly our argv.
    assert shlex.split(parse_applescript_string(do_script.group(1))) == command
    title = re.fullmatch(r"set custom title of fiotrayTab to (\".*\")", statements[3])
    assert title is not None and parse_applescript_string(title.group(1)) == 'dev "1"'


def test_osascript_without_title() -> None:
    choice = TerminalChoice("Terminal", ("osascript",), "osascript")
    argv = terminal_argv(choice, ["ssh", "host"])
    assert argv == [
        "osascript",
        "-e",
        'tell application "Terminal"',
        "-e",
        "activate",
        "-e",
        'set fiotrayTab to do script "ssh host"',
        "-e",
        "end tell",
    ]


def test_windows_terminal_argv() -> None:
    choice = TerminalChoice("Windows Terminal", ("wt.exe", "new-tab"), "wt")
    argv = terminal_argv(choice, ["ssh.exe", "-o", "A=b;c", "--", "fio@10.42.42.7"], title="d1")
    # wt reads ';' as "next tab" unless escaped.
    assert argv == [
        "wt.exe",
        "new-tab",
        "--title",
        "d1",
        "ssh.exe",
        "-o",
        "A=b\\;c",
        "--",
        "fio@10.42.42.7",
    ]


def test_cmd_start_argv_and_refusals() -> None:
    choice = TerminalChoice("Command Prompt", ("cmd.exe", "/c", "start", ""), "cmd")
    argv = terminal_argv(choice, ["ssh.exe", "--", "fio@10.42.42.7"], title="ignored")
    assert argv == ["cmd.exe", "/c", "start", "", "ssh.exe", "--", "fio@10.42.42.7"]
    for bad in ["a&calc", "a|b", "%PATH%", "a>b", '"x"', "a^b", "!x!"]:
        with pytest.raises(FiotrayError, match="Windows Terminal"):
            terminal_argv(choice, ["ssh.exe", bad])


# -- a real launch ------------------------------------------------------------------


def write_recorder(path: Path, record: Path) -> Path:
    """A stand-in terminal that writes its argv, pid and session id to ``record``."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"record = {str(record)!r}\n"
        "data = {'argv': sys.argv[1:], 'pid': os.getpid(), 'sid': os.getsid(0)}\n"
        "with open(record + '.tmp', 'w') as fh:\n"
        "    json.dump(data, fh)\n"
        "os.replace(record + '.tmp', record)\n"
    )
    path.chmod(0o755)
    return path


async def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        await asyncio.sleep(0.02)
    return path.read_text()


async def test_launch_in_terminal_runs_exact_argv(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    terminal = write_recorder(tmp_path / "fake term", record)
    command = [*SSH, "echo", "$(touch pwned)", "a b", "-e", "'"]
    env = {**os.environ, "TERMINAL": "should-not-be-used"}
    pid = await launch_in_terminal(
        command, setting=shlex.quote(str(terminal)), env=env, title="dev1"
    )
    data = json.loads(await wait_for_file(record))
    assert data["argv"] == ["-e", *command]  # unknown terminal: "-e", then each element
    assert data["pid"] == pid
    assert data["sid"] == pid  # its own session: closing fiotray leaves it running
    assert not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()


async def test_launch_without_any_terminal(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "XDG_CURRENT_DESKTOP": "GNOME"}
    with pytest.raises(FiotrayError) as info:
        await launch_in_terminal(["ssh", "host"], env=env)
    assert str(info.value) == NO_TERMINAL


def test_a_failed_command_holds_the_window_with_its_status_and_the_title_is_set():
    import subprocess

    from fiotray.core.terminal import held_on_failure

    failing = held_on_failure(
        ["sh", "-c", "echo 'Connection refused' >&2; exit 255"], "dev-1 — acme (fiotray SSH)"
    )
    proc = subprocess.run(failing, input="\n", capture_output=True, text=True, timeout=10)
    assert proc.returncode == 255
    assert proc.stdout.startswith("\x1b]0;dev-1 — acme (fiotray SSH)\x07")
    assert "sh exited with status 255. Press Enter to close this window." in proc.stdout
    assert "Connection refused" in proc.stderr
    # It waits for Enter: with nothing to read it would end, so a pipe held open keeps it.
    held = subprocess.Popen(failing, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            held.wait(timeout=0.5)  # the point: still open; nothing else to wait for
    finally:
        held.communicate("\n", timeout=5)
    assert held.returncode == 255
    # A command that succeeds closes at once, without asking.
    ok = subprocess.run(held_on_failure(["true"], None), capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0 and ok.stdout == ""
    # And a terminal takes it: its command line allows no control character (a newline
    # in the script once made every terminal refuse it).
    for program in ("xterm", "foot", "gnome-terminal"):
        choice = TerminalChoice(program, (f"/usr/bin/{program}", "-e"), "exec")
        assert terminal_argv(choice, failing, title="t")[-len(failing) :] == failing


def test_the_title_never_becomes_shell_text():
    import subprocess

    from fiotray.core.terminal import held_on_failure

    title = "$(touch /tmp/fiotray-pwned) `id` ; rm -rf x"
    proc = subprocess.run(
        held_on_failure(["true"], title), capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 0 and title in proc.stdout
    assert not __import__("os").path.exists("/tmp/fiotray-pwned")
