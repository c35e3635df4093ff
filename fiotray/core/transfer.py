"""Copy files to and from a device with scp, over the same route and options as SSH.

The scp argv is made from `core.ssh.ssh_argv`'s own output (scp hands ``-o`` and
``-J`` to the ssh it runs), so the route (jump, direct, public), user, port,
identity, host key alias and known_hosts handling are the ones ``fiotray ssh``
uses, by construction rather than by a second copy of the rules.

No shell anywhere: scp runs from an argv, and ``-s`` makes it use the SFTP
protocol (the default since OpenSSH 9.0; the flag keeps an older scp, or a
user's alias for ``-O``, from falling back to the legacy protocol, which hands the
remote path to the device's login shell). Over SFTP a remote path is a file
name: ``$(touch x)`` or ``;rm -rf x`` name a file and run nothing. SFTP does
expand glob characters (``*?[``) in a download's remote path, as sftp does.

Progress: scp draws its meter only when its stdout is a terminal that has scp's
process group in the foreground, so scp runs in a session of its own with a
pseudo-terminal as its controlling terminal and stdout, and the meter's lines
(name, percent, bytes, rate, ETA) are parsed from it. That was chosen over
watching sizes because it works for both directions with no second connection
(an upload's remote size would need an ``ssh stat`` poll) and reports what scp
itself has sent. Its byte figures are rounded (to 1 KiB up to 9999 KiB, then
MiB, ...): the exact size is used at 100% where it is known (an uploaded
file's size; a downloaded file on disk). stderr stays a pipe, so errors are
read apart from the meter.

Prompts: the pseudo-terminal is scp's controlling terminal, so ssh would ask for a
key's passphrase (or a password) on it, where nobody can type and where the prompt
would be read as meter text. Instead ssh runs with ``SSH_ASKPASS`` set to a small
program of this module's and ``SSH_ASKPASS_REQUIRE=force`` (OpenSSH 8.4+), so every
prompt of scp's ssh, and of the ``-J`` hop's ssh, comes to the `CopyJob`'s ``ask``
callback over a private Unix socket: the CLI asks on the user's terminal, the GUI in
a password dialog. The answer goes back over the socket and never into an argv, the
environment or a log. Without ``ask`` (no terminal) a prompt is answered "no" at
once, and a failed copy says which key needs its passphrase and that ``ssh-add``
puts it in the agent. A passphrase given for a key answers the other hop's prompt
for the same key once, so the jump route asks once, as the agent would. (That is
used instead of ``BatchMode=yes``, which fails the same way but silently: ssh says
only "Permission denied".) An older ssh that prompts on the terminal regardless is
caught by its prompt showing up there: the copy stops and says so.
The ``-J`` hop gets no ``-o`` options (see core.ssh), only the user's own ssh config.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import struct
import sys
import tempfile
import termios
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fiotray.core import askpass
from fiotray.core.errors import FiotrayError
from fiotray.core.format import safe_text, size
from fiotray.core.ssh import SshSettings, SshTarget, ssh_argv

log = logging.getLogger(__name__)

Direction = Literal["upload", "download"]
COPY_FAILED = "copy-failed"

_MAX_PATH = 4096
# Wide enough that scp does not cut file names (it leaves 35 columns for the figures).
_PTY_COLUMNS = 400
# After SIGTERM, how long scp and its ssh get before SIGKILL.
_TERM_GRACE = 3.0


# -- paths --------------------------------------------------------------------------


def validate_remote_path(path: str) -> str:
    """A path on the device, as scp's argument after ``user@host:``.

    Empty means the login directory. Any byte but NUL and controls is allowed: over
    SFTP the path reaches no shell.
    """
    if not isinstance(path, str) or len(path) > _MAX_PATH:
        raise FiotrayError("The path on the device is not text or is too long.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise FiotrayError("The path on the device contains control characters.")
    return path


def _local_arg(path: str | os.PathLike[str]) -> str:
    """An absolute local path: scp takes ``a:b`` for host ``a`` unless a '/' comes before
    the ':', and an absolute path starts with one."""
    text = os.fspath(path)
    if not text or "\0" in text or len(text) > _MAX_PATH:
        raise FiotrayError("A local path is empty, too long or contains a NUL.")
    return os.path.abspath(text)


def _tree_size(path: str) -> int:
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


# -- the plan -----------------------------------------------------------------------


@dataclass(frozen=True)
class CopyPlan:
    """One scp run: its argv and what the result messages name."""

    direction: Direction
    device: str
    argv: list[str]
    sources: tuple[str, ...]  # local absolute paths (upload) or one remote path (download)
    dest: str  # remote path (upload) or local absolute path (download)
    total_bytes: int | None  # an upload's local sizes; None for a download
    # The one local file a single-file download writes, to report a partial copy by.
    local_file: str | None = None

    @property
    def dest_label(self) -> str:
        """DEST as the messages name it: DEVICE:PATH for the device's side."""
        if self.direction == "upload":
            return f"{self.device}:{safe_text(self.dest)}"
        return safe_text(self.dest)


def scp_argv(
    target: SshTarget,
    settings: SshSettings,
    *,
    direction: Direction,
    sources: Sequence[str],
    dest: str,
    recursive: bool = False,
    scp: str = "scp",
    known_hosts: Path | None = None,
) -> list[str]:
    """The scp argv: ssh_argv's options for this target and route, then the paths.

    ``sources`` and ``dest`` are local paths and remote paths as `direction` says;
    local ones are made absolute, remote ones checked with `validate_remote_path`.
    """
    base = ssh_argv(target, settings, ssh=scp, known_hosts=known_hosts)
    # ssh_argv ends with "--", "user@address": keep its options, put the paths after.
    if base[-2] != "--":  # pragma: no cover - ssh_argv's shape
        raise FiotrayError("Internal error: unexpected ssh argv shape.")
    options, remote = base[1:-2], base[-1]
    if not sources:
        raise FiotrayError("Nothing to copy: give at least one source.")
    if direction == "upload":
        paths = [_local_arg(s) for s in sources]
        paths.append(f"{remote}:{validate_remote_path(dest)}")
    elif direction == "download":
        paths = [f"{remote}:{validate_remote_path(s)}" for s in sources]
        paths.append(_local_arg(dest))
    else:
        raise FiotrayError(f"Unknown copy direction {direction!r}.")
    argv = [scp, "-s"]
    if recursive:
        argv.append("-r")
    # No BatchMode: prompts go to the job's askpass program (see the module's notes).
    argv += [*options, "--", *paths]
    return argv


def plan_upload(
    target: SshTarget,
    settings: SshSettings,
    sources: Sequence[str | os.PathLike[str]],
    dest: str,
    *,
    recursive: bool = False,
    scp: str = "scp",
) -> CopyPlan:
    """Copy local ``sources`` to ``dest`` on the device; each source must exist, and a
    directory needs ``recursive``."""
    local = [_local_arg(s) for s in sources]
    for path in local:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise FiotrayError(f"Cannot copy {safe_text(path)}: {exc.strerror}.") from None
        if stat.S_ISDIR(st.st_mode) and not recursive:
            raise FiotrayError(f"{safe_text(path)} is a directory: copy it with --recursive (-r).")
    total = sum(_tree_size(p) for p in local)
    argv = scp_argv(
        target,
        settings,
        direction="upload",
        sources=local,
        dest=dest,
        recursive=recursive,
        scp=scp,
    )
    return CopyPlan("upload", target.device, argv, tuple(local), dest, total)


def plan_download(
    target: SshTarget,
    settings: SshSettings,
    source: str,
    dest: str | os.PathLike[str],
    *,
    recursive: bool = False,
    scp: str = "scp",
) -> CopyPlan:
    """Copy ``source`` on the device to local ``dest`` (a directory it goes into, or a file
    name whose directory exists)."""
    local = _local_arg(dest)
    parent = local if os.path.isdir(local) else os.path.dirname(local)
    if not os.path.isdir(parent):
        raise FiotrayError(f"The local directory {safe_text(parent)} does not exist.")
    argv = scp_argv(
        target,
        settings,
        direction="download",
        sources=[source],
        dest=local,
        recursive=recursive,
        scp=scp,
    )
    local_file = None
    if not recursive and not re.search(r"[*?\[]", source):
        name = source.rstrip("/").rsplit("/", 1)[-1]
        local_file = os.path.join(local, name) if os.path.isdir(local) and name else local
    return CopyPlan("download", target.device, argv, (source,), local, None, local_file)


# -- progress -----------------------------------------------------------------------


@dataclass(frozen=True)
class CopyProgress:
    """One reading of scp's meter."""

    name: str  # the file as scp shows it (a device's file name: pass through safe_text)
    percent: int  # of this file
    bytes: int  # of this file so far (rounded as scp rounds, exact at 100% when known)
    rate: float  # bytes per second, scp's smoothed figure
    eta: str | None  # "00:03", or None when scp shows none
    files: int  # files started so far, this one included
    copied: int  # bytes of every file so far, this one included
    total: int | None  # bytes of the whole copy, when known (uploads)


_UNITS = {" ": 1, "": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# "name   42% 4608KB   4.5MB/s   00:01 ETA": progressmeter.c's line, after its '\r'.
_METER_RE = re.compile(
    r"(?P<name>.*?)\s+(?P<percent>\d{1,3})%\s+(?P<size>\d+)(?:(?P<unit>[KMGT])B)?\s+"
    r"(?P<rate>\d+\.\d)(?P<runit>[KMGT])B/s\s*(?P<eta>.*?)\s*$"
)


# A reading is whole once its ETA field is: "00:01 ETA", "--:-- ETA", "- stalled -", or a
# finished file's elapsed time ("100% ... 00:01", padded with spaces scp has written).
_COMPLETE_RE = re.compile(r"(?:ETA|- stalled -|\s100%\s.*\d\d:\d\d)$")


@dataclass(frozen=True)
class MeterLine:
    name: str
    percent: int
    bytes: int
    rate: float
    eta: str | None


def parse_meter_line(line: str) -> MeterLine | None:
    """One meter line of scp (without its '\\r'), or None for any other text."""
    match = _METER_RE.fullmatch(line.replace("\0", "").strip())
    if match is None:
        return None
    eta = match["eta"].removesuffix("ETA").strip()
    return MeterLine(
        name=match["name"].strip(),
        percent=min(int(match["percent"]), 100),
        bytes=int(match["size"]) * _UNITS[match["unit"] or ""],
        rate=float(match["rate"]) * _UNITS[match["runit"]],
        eta=eta if re.fullmatch(r"[\d:]+", eta) and "ETA" in match["eta"] else None,
    )


@dataclass
class MeterReader:
    """Turns the pseudo-terminal's bytes into `CopyProgress` events: one per meter line,
    a new file counted when the name changes or the percentage goes back."""

    total: int | None = None
    # An exact size for a file at 100%, by its meter name (set by the caller).
    exact_size: Callable[[str], int | None] = lambda _name: None
    files: int = 0
    done_before: int = 0  # bytes of the files finished before the current one
    last: CopyProgress | None = None
    _buffer: str = ""
    _eager: str = ""  # the reading taken before the '\r' that ends it
    _other: list[str] = field(default_factory=list)

    def feed(self, data: bytes) -> list[CopyProgress]:
        self._buffer += data.decode("utf-8", "replace")
        *chunks, self._buffer = re.split(r"[\r\n]", self._buffer)
        events = [event for chunk in chunks if (event := self._line(chunk)) is not None]
        # scp starts each reading with '\r' and ends none: waiting for the next '\r' would
        # show every reading a second late, and the last one before a stall never. A
        # reading whose ETA field is whole is taken now, and skipped when its '\r' comes.
        pending = self._buffer.replace("\0", "").strip()
        if pending and pending != self._eager and _COMPLETE_RE.search(pending):
            event = self._line(self._buffer)
            if event is not None:
                self._eager = pending
                events.append(event)
        return events

    def finish(self) -> list[CopyProgress]:
        rest, self._buffer = self._buffer, ""
        event = self._line(rest)
        return [event] if event is not None else []

    def pending_prompt(self) -> str | None:
        """A prompt waiting for an answer at the end of the output ("...passphrase...: "),
        which no meter line is."""
        text = self._buffer.replace("\0", "").strip()
        # ssh asks before any meter line, and a meter line cut short in the buffer has
        # no '%' yet only when its file name is all there is: "password.txt" is no prompt
        # unless it also ends in ':'.
        if self.last is None and "%" not in text and _TTY_PROMPT_RE.search(self._buffer):
            return text
        return None

    @property
    def other_text(self) -> str:
        """What scp wrote to its stdout that was not a meter line."""
        return "\n".join(self._other)

    def _line(self, chunk: str) -> CopyProgress | None:
        text = chunk.replace("\0", "").strip()
        if not text:
            return None
        if text == self._eager:
            self._eager = ""
            return None  # taken already, before its end came
        meter = parse_meter_line(chunk)
        if meter is None:
            self._other.append(chunk.strip())
            return None
        last = self.last
        if last is None or meter.name != last.name or meter.percent < last.percent:
            if last is not None:
                self.done_before += last.bytes
            self.files += 1
        current = meter.bytes
        if meter.percent == 100:
            exact = self.exact_size(meter.name)
            if exact is not None:
                current = exact
        if last is not None and self.files == last.files:
            current = max(current, last.bytes)  # rounding must not step back
        event = CopyProgress(
            name=meter.name,
            percent=meter.percent,
            bytes=current,
            rate=meter.rate,
            eta=meter.eta,
            files=self.files,
            copied=self.done_before + current,
            total=self.total,
        )
        self.last = event
        return event


# -- errors -------------------------------------------------------------------------

# ssh's login refused, by the device or the jump hop: "user@host: Permission denied (publickey)."
_AUTH_FAILED_RE = re.compile(r"Permission denied \((?:publickey|password|keyboard)")

# scp and ssh messages, and what to say for them. Checked in order: the first wins.
_ERRORS: tuple[tuple[str, str], ...] = (
    (
        r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed",
        "the device's host key does not match the one known for it "
        "(a re-flashed device? remove its old key from known_hosts)",
    ),
    (
        r"Permission denied \((?:publickey|password|keyboard)",
        "the SSH login was refused (permission denied; is your key in the agent or ~/.ssh?)",
    ),
    (r"Connection refused", "the connection was refused (is sshd running there?)"),
    (
        r"Connection timed out|Operation timed out|timed out during banner",
        "the connection timed out (is the device online and the VPN route up?)",
    ),
    (r"No route to host", "no route to the host (is the tunnel up?)"),
    (r"Could not resolve hostname", "a host name could not be resolved"),
    (
        r"Connection closed by|Connection reset by|lost connection",
        "the connection was closed during the copy",
    ),
)


def error_line(stderr: str, plan: CopyPlan) -> str:
    """scp's stderr as one sentence: what failed, with the file named where scp names one."""
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    text = "\n".join(lines)
    prefix = f"Copy {'to' if plan.direction == 'upload' else 'from'} {plan.device} failed"
    # "scp: /path: No such file or directory", "scp: open local "x": Permission denied".
    for line in lines:
        match = re.match(
            r"scp: (.*): (No such file or directory|Permission denied|"
            r"Is a directory|Not a directory|Failure|No space left on device|"
            r"Disk quota exceeded|Read-only file system)$",
            line,
        )
        if match:
            return f"{prefix}: {safe_text(match[1], 200)}: {match[2].lower()}."
    for pattern, message in _ERRORS:
        if re.search(pattern, text):
            return f"{prefix}: {message}."
    last = next((line for line in reversed(lines) if not line.startswith("@")), "")
    return f"{prefix}: {safe_text(last, 200) or 'scp gave no reason'}."


# -- prompts ------------------------------------------------------------------------

# ssh's prompt for a key's passphrase (sshconnect2.c, load_identity_file).
_PASSPHRASE_RE = re.compile(r"Enter passphrase for key '(?P<key>.*)': ?")
# A prompt an older ssh wrote on scp's terminal although SSH_ASKPASS_REQUIRE=force: it
# waits there for an answer nobody can type.
_TTY_PROMPT_RE = re.compile(r"(?:passphrase|password)[^\n]*:\s*$", re.IGNORECASE)

Ask = Callable[[str], Awaitable[str | None]]
"""Ask a person ssh's prompt (a key's passphrase, a password); None when they would not."""


@dataclass
class PromptRecord:
    """What ssh asked during one copy, to explain a failure by (no answers kept)."""

    keys_declined: list[str] = field(default_factory=list)  # passphrases not given
    keys_wrong: list[str] = field(default_factory=list)  # asked again by the same ssh
    others_declined: int = 0  # password or other prompts not answered
    on_terminal: str | None = None  # a prompt an older ssh wrote on scp's terminal


class _Askpass:
    """The private socket and program (core.askpass) that bring ssh's prompts to `ask`.

    One per copy: a 0700 directory of its own holds both, so only this user can connect,
    and it is removed when the copy ends. A passphrase is kept while the copy runs, only
    to answer the other hop's ssh asking for the same key (the jump route's two ssh);
    the same ssh asking again means the passphrase was wrong, and the person is asked.
    """

    def __init__(self, ask: Ask | None, record: PromptRecord) -> None:
        self.ask = ask
        self.record = record
        self._dir = tempfile.mkdtemp(prefix="fiotray-askpass-")
        self.socket_path = os.path.join(self._dir, "s")
        self.program = os.path.join(self._dir, "askpass")
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # key -> (pid of the ssh that got it, the passphrase)
        self._given: dict[str, tuple[int, str]] = {}

    async def start(self) -> dict[str, str]:
        """Listen; the environment scp needs so its ssh asks here."""
        self._server = await asyncio.start_unix_server(self._handle, path=self.socket_path)
        sock = shlex.quote(self.socket_path)
        if getattr(sys, "frozen", False):
            # The bundle has no python to run a script with: its own executable answers
            # when the socket is in its environment (fiotray/__main__.py).
            command = f'{askpass.SOCKET_ENV}={sock} exec {shlex.quote(sys.executable)} "$@"'
        else:
            # -I -S: the program imports nothing of the user's Python set-up.
            program = shlex.quote(askpass.__file__)
            command = f'exec {shlex.quote(sys.executable)} -I -S {program} {sock} "$@"'
        script = f"#!/bin/sh\n{command}\n"
        fd = os.open(self.program, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "w") as fh:
            fh.write(script)
        return {"SSH_ASKPASS": self.program, "SSH_ASKPASS_REQUIRE": "force"}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # A prompt still open (the copy was cancelled, ssh gave up) goes with the copy.
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        self._given.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            async with asyncio.timeout(10):  # the program sends a line and shuts its side
                data = await reader.read(-1)
            pid_text, _, prompt = data.decode("utf-8", "replace").partition("\n")
            try:
                answer = await self._answer(int(pid_text) if pid_text.isdigit() else 0, prompt)
            except Exception:
                # A failing asker must not leave ssh waiting: it gets "no answer".
                log.exception("A prompt of ssh could not be asked")
                answer = None
            writer.write(b"-" if answer is None else b"+" + answer.encode())
            await writer.drain()
        except (OSError, TimeoutError):
            pass  # the program went (ssh was stopped): nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, pid: int, prompt: str) -> str | None:
        match = _PASSPHRASE_RE.fullmatch(prompt)
        key = match["key"] if match else None
        shown = prompt
        if key is not None:
            given = self._given.pop(key, None)
            if given is not None and given[0] != pid:
                self._given[key] = (pid, given[1])
                return given[1]  # the other hop, the same key: asked once already
            if given is not None:  # the same ssh again: ssh did not take it
                self.record.keys_wrong.append(key)
                shown = f"Wrong passphrase, try again. {prompt}"
        answer = await self.ask(shown) if self.ask is not None else None
        if answer is None or (key is not None and not answer):  # ssh: "" is no passphrase
            if key is not None:
                self.record.keys_declined.append(key)
            else:
                self.record.others_declined += 1
            return None
        if key is not None:
            self._given[key] = (pid, answer)
        return answer


def prompt_error(record: PromptRecord, plan: CopyPlan, asked: bool) -> str | None:
    """Why a copy whose login failed did so, when a prompt went unanswered: one
    sentence, or None. `asked`: whether a person could be asked (a terminal, a dialog)."""
    prefix = f"Copy {'to' if plan.direction == 'upload' else 'from'} {plan.device} failed"
    if record.on_terminal is not None:
        return (
            f"{prefix}: ssh asked on scp's terminal ({safe_text(record.on_terminal, 80)}), "
            "where nobody can answer (OpenSSH older than 8.4 ignores SSH_ASKPASS_REQUIRE): "
            "add the key to the agent with ssh-add and copy again."
        )
    if record.keys_wrong:
        key = safe_text(record.keys_wrong[-1], 200)
        return f"{prefix}: the passphrase given for the SSH key {key} was wrong."
    if record.keys_declined:
        key = safe_text(record.keys_declined[0], 200)
        if not asked:
            return (
                f"{prefix}: the SSH key {key} needs its passphrase and there is no terminal "
                f"to ask for it on. Add the key to your SSH agent (ssh-add {key}) and copy "
                "again."
            )
        return (
            f"{prefix}: no passphrase was given for the SSH key {key}. To copy without "
            f"being asked, add the key to your SSH agent: ssh-add {key}"
        )
    if record.others_declined:
        if not asked:
            return (
                f"{prefix}: ssh asked for a password and there is no terminal to ask on: "
                "use a key in the agent (ssh-add), or run the copy in a terminal."
            )
        return f"{prefix}: ssh asked for a password and none was given."
    return None


# -- running ------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyResult:
    plan: CopyPlan
    ok: bool
    cancelled: bool
    copied: int  # bytes, as far as known (a download's file on disk is exact)
    files: int  # files started
    error: str | None = None  # one line, when it failed

    @property
    def total(self) -> int | None:
        return self.plan.total_bytes

    def summary(self) -> str:
        """One line: what was copied, or how far a cancelled or failed copy got."""
        plan = self.plan
        if self.ok:
            what = f"{self.files} file{'s' if self.files != 1 else ''}"
            if self.files == 0:
                what = "nothing (empty source)"
            return (
                f"Copied {what}, {size(self.copied)} ({self.copied} bytes), to {plan.dest_label}."
            )
        if self.cancelled:
            return self.partial_message()
        return self.error or "The copy failed."

    def partial_message(self) -> str:
        of = f" of {self.total}" if self.total is not None else ""
        where = plan_partial_target(self.plan)
        return f"Partial copy: {self.copied}{of} bytes; {where} may be incomplete (kept)."


def plan_partial_target(plan: CopyPlan) -> str:
    if plan.direction == "download" and plan.local_file:
        return safe_text(plan.local_file)
    return plan.dest_label


def _take_terminal() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Make the pseudo-terminal (stdout) the controlling terminal of scp's new session:
    scp's meter only draws when tcgetpgrp(stdout) is scp's own process group.

    No import here: in a forked child of a threaded program (the GUI's executor) the
    import lock may be held by a thread that no longer exists.
    """
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class CopyJob:
    """Runs one `CopyPlan`; `cancel()` stops it (scp and its ssh: their process group).

    ``ask`` answers ssh's prompts (a key's passphrase): set it before `run` where a person
    can be asked; without it a prompt is declined and the failure says what to do.
    """

    def __init__(self, plan: CopyPlan, ask: Ask | None = None) -> None:
        self.plan = plan
        self.ask = ask
        self.cancelled = False
        self.last: CopyProgress | None = None
        self.prompts = PromptRecord()
        self._proc: asyncio.subprocess.Process | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGTERM)

    def _exact_size(self, name: str) -> int | None:
        plan = self.plan
        if plan.direction == "upload":
            for path in plan.sources:
                if os.path.basename(path) == name and os.path.isfile(path):
                    return os.stat(path).st_size
            # One file, named otherwise by scp (cut short): its size is the total. Not so for
            # one folder, whose total is all of its files'.
            single = len(plan.sources) == 1 and os.path.isfile(plan.sources[0])
            return plan.total_bytes if single and plan.total_bytes else None
        if plan.local_file:
            with contextlib.suppress(OSError):
                return os.stat(plan.local_file).st_size
        return None

    async def run(self, progress: Callable[[CopyProgress], None] | None = None) -> CopyResult:
        loop = asyncio.get_running_loop()
        reader = MeterReader(total=self.plan.total_bytes, exact_size=self._exact_size)
        master, slave = os.openpty()
        eof = loop.create_future()

        def emit(events: list[CopyProgress]) -> None:
            for event in events:
                self.last = event
                if progress is not None:
                    progress(event)

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave side closed it
                data = b""
            if not data:
                loop.remove_reader(master)
                if not eof.done():
                    eof.set_result(None)
                return
            emit(reader.feed(data))
            prompt = reader.pending_prompt()
            if prompt is not None and self.prompts.on_terminal is None and self._proc is not None:
                # An ssh that ignored SSH_ASKPASS_REQUIRE waits on the terminal: stop it.
                self.prompts.on_terminal = prompt
                _signal_group(self._proc.pid, signal.SIGTERM)

        prompts = _Askpass(self.ask, self.prompts)
        try:
            try:
                env = {**os.environ, **await prompts.start()}
                winsize = struct.pack("HHHH", 24, _PTY_COLUMNS, 0, 0)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
                self._proc = await asyncio.create_subprocess_exec(
                    *self.plan.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=slave,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    preexec_fn=_take_terminal,
                    env=env,
                )
            except FileNotFoundError:
                raise FiotrayError(
                    "scp is not installed: install OpenSSH's client (openssh-client)."
                ) from None
            finally:
                os.close(slave)
            proc = self._proc
            if self.cancelled:
                _signal_group(proc.pid, signal.SIGTERM)
            loop.add_reader(master, readable)
            assert proc.stderr is not None
            stderr_task = asyncio.ensure_future(proc.stderr.read())
            try:
                await proc.wait()
            except asyncio.CancelledError:
                # The task was cancelled (a window closed, a quit): scp must not outlive it.
                self.cancel()
                stderr_task.cancel()
                await self._reap(proc)
                raise
            # The meter's last line is in the pseudo-terminal once scp has exited; ssh
            # children that outlive it would keep the slave open: bound the wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(eof)
            # The same for stderr: a jump-hop ssh left behind would hold the pipe open.
            try:
                async with asyncio.timeout(2):
                    raw = await stderr_task
            except TimeoutError:
                stderr_task.cancel()
                raw = b""
            stderr = raw.decode("utf-8", "replace")
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(master)
            os.close(master)
            await prompts.close()
        emit(reader.finish())
        copied = self.last.copied if self.last else 0
        if self.plan.local_file and (self.cancelled or proc.returncode != 0):
            # A download's file on disk is the exact measure of what arrived.
            with contextlib.suppress(OSError):
                copied = os.stat(self.plan.local_file).st_size
        files = reader.files
        if self.cancelled:
            return CopyResult(self.plan, False, True, copied, files)
        if proc.returncode != 0:
            error = error_line(stderr, self.plan)
            if self.prompts.on_terminal is not None or _AUTH_FAILED_RE.search(stderr):
                error = prompt_error(self.prompts, self.plan, self.ask is not None) or error
            return CopyResult(self.plan, False, False, copied, files, error)
        if self.plan.direction == "upload" and self.plan.total_bytes is not None:
            copied = self.plan.total_bytes  # all of it arrived: scp said so
        return CopyResult(self.plan, True, False, copied, files)

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        """Wait for scp after SIGTERM; SIGKILL its group if it lingers."""
        try:
            async with asyncio.timeout(_TERM_GRACE):
                await proc.wait()
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()


__all__ = [
    "COPY_FAILED",
    "Ask",
    "CopyJob",
    "CopyPlan",
    "CopyProgress",
    "CopyResult",
    "MeterReader",
    "PromptRecord",
    "error_line",
    "parse_meter_line",
    "plan_download",
    "plan_upload",
    "prompt_error",
    "scp_argv",
    "validate_remote_path",
]
