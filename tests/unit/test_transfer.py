"""core.transfer and ops.transfer's parsing: scp argv per route, hostile paths, scp's meter
read from canned output, scp's errors as one line."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

from fiotray.core import askpass
from fiotray.core.errors import FiotrayError
from fiotray.core.ssh import SshSettings, SshTarget, ssh_argv
from fiotray.core.transfer import (
    CopyJob,
    CopyPlan,
    CopyProgress,
    CopyResult,
    MeterReader,
    error_line,
    parse_meter_line,
    plan_download,
    plan_upload,
    scp_argv,
)
from fiotray.ops.transfer import RemotePath, parse_remote

TARGET = SshTarget("acme", "dev1", "10.42.42.7", "10.42.42.1")


def _options(argv: list[str]) -> list[str]:
    """What precedes "--", without the program and scp's own flags."""
    end = argv.index("--")
    return [a for a in argv[1:end] if a not in ("-s", "-r")]


@pytest.mark.parametrize(
    "settings",
    [
        SshSettings(),
        SshSettings(route="direct"),
        SshSettings(route="public", jump_host="vpn.example.com:2222", user="root"),
        SshSettings(identity_file="/home/me/.ssh/id_dev", extra_options=("Port=2200",)),
    ],
    ids=["jump", "direct", "public", "identity-port"],
)
def test_scp_takes_ssh_s_options_for_every_route(settings: SshSettings) -> None:
    ssh = ssh_argv(TARGET, settings)
    argv = scp_argv(TARGET, settings, direction="upload", sources=["/tmp/a"], dest="/var/tmp/")
    assert argv[:2] == ["scp", "-s"]  # SFTP, whatever this scp's default
    # ssh's own options in ssh's order: route, user, host key alias, known hosts, identity
    # are the same (no BatchMode: prompts go to the job's askpass program).
    assert _options(argv) == ssh[1:-2]
    user_host = ssh[-1]
    assert argv[-3:] == ["--", "/tmp/a", f"{user_host}:/var/tmp/"]


def test_download_argv_and_recursive() -> None:
    argv = scp_argv(
        TARGET,
        SshSettings(),
        direction="download",
        sources=["/var/log"],
        dest="logs",
        recursive=True,
    )
    assert argv[:3] == ["scp", "-s", "-r"]
    assert "-J" in argv and argv[argv.index("-J") + 1] == "fio@10.42.42.1"
    assert argv[-3:] == ["--", "fio@10.42.42.7:/var/log", os.path.abspath("logs")]


@pytest.mark.parametrize(
    "remote",
    ["$(touch /tmp/pwned)", ";rm -rf x", "-oProxyCommand=x", "a b'c\"d", "`id`", "~/x", ""],
)
def test_hostile_remote_paths_stay_one_argument(remote: str) -> None:
    argv = scp_argv(TARGET, SshSettings(), direction="upload", sources=["-f"], dest=remote)
    # After "--", the local path made absolute (so never an option, never "host:path"),
    # then the remote path whole, after user@address:.
    assert argv[-3:] == ["--", os.path.abspath("-f"), f"fio@10.42.42.7:{remote}"]


@pytest.mark.parametrize("remote", ["a\nb", "a\x1b[2J", "x\0y", "a" * 5000])
def test_remote_paths_with_controls_are_refused(remote: str) -> None:
    with pytest.raises(FiotrayError):
        scp_argv(TARGET, SshSettings(), direction="download", sources=[remote], dest="/tmp")


def test_a_local_path_with_a_colon_is_not_a_host() -> None:
    argv = scp_argv(TARGET, SshSettings(), direction="upload", sources=["a:b"], dest="x")
    assert argv[-2] == os.path.abspath("a:b") and argv[-2].startswith("/")


@pytest.mark.parametrize(
    ("arg", "parsed"),
    [
        ("dev1:/tmp/x", RemotePath("dev1", "/tmp/x")),
        ("dev1:", RemotePath("dev1", "")),
        ("dev1:$(id)", RemotePath("dev1", "$(id)")),
        ("./a:b", None),
        ("/abs/a:b", None),
        ("plain", None),
        (":x", None),
    ],
)
def test_parse_remote(arg: str, parsed: RemotePath | None) -> None:
    assert parse_remote(arg) == parsed


@pytest.mark.parametrize("arg", ["-oProxyCommand=x:/tmp", "bad\x1bname:/x", "..:/x"])
def test_parse_remote_refuses_hostile_device_names(arg: str) -> None:
    with pytest.raises(FiotrayError):
        parse_remote(arg)


def test_plan_upload_checks_local_sources(tmp_path: Path) -> None:
    with pytest.raises(FiotrayError, match="No such file"):
        plan_upload(TARGET, SshSettings(), [tmp_path / "absent"], "/tmp/")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 10)
    with pytest.raises(FiotrayError, match="--recursive"):
        plan_upload(TARGET, SshSettings(), [tmp_path / "d"], "/tmp/")
    (tmp_path / "g").write_bytes(b"y" * 5)
    plan = plan_upload(
        TARGET, SshSettings(), [tmp_path / "d", tmp_path / "g"], "/t", recursive=True
    )
    assert plan.total_bytes == 15 and "-r" in plan.argv


def test_plan_download_names_the_file_it_writes(tmp_path: Path) -> None:
    plan = plan_download(TARGET, SshSettings(), "/var/log/messages", tmp_path)
    assert plan.local_file == str(tmp_path / "messages")
    plan = plan_download(TARGET, SshSettings(), "/var/log/messages", tmp_path / "m.txt")
    assert plan.local_file == str(tmp_path / "m.txt")
    assert plan_download(TARGET, SshSettings(), "/var/log/*.log", tmp_path).local_file is None
    with pytest.raises(FiotrayError, match="does not exist"):
        plan_download(TARGET, SshSettings(), "/x", tmp_path / "no" / "such")


# -- the meter ----------------------------------------------------------------------

# Lines in the shape OpenSSH 9.2's progressmeter.c writes them (80 columns here; fiotray
# asks for 400): a '\r' before each, a newline after a file's last.
CANNED = (
    b"\rbig.bin                                         0%    0     0.0KB/s   --:-- ETA"
    b"\rbig.bin                                        37% 1920KB   1.9MB/s   00:01 ETA"
    b"\rbig.bin                                       100% 5120KB   4.6MB/s   00:01    \r\n"
    b"\rsmall.txt                                     100%   12     0.1KB/s   00:00    \r\n"
)


def test_meter_lines_parse() -> None:
    line = parse_meter_line("big.bin      37% 1920KB   1.9MB/s   00:01 ETA")
    assert line is not None
    assert (line.name, line.percent, line.bytes, line.eta) == ("big.bin", 37, 1920 * 1024, "00:01")
    assert line.rate == pytest.approx(1.9 * 1024**2)
    stalled = parse_meter_line("a b.bin   50%  512MB  10.0MB/s - stalled -")
    assert stalled is not None and stalled.name == "a b.bin" and stalled.eta is None
    assert parse_meter_line("scp: /x: No such file or directory") is None
    assert parse_meter_line("Warning: Permanently added 'x' to the list") is None


def test_reader_counts_files_and_bytes_in_chunks() -> None:
    sizes = {"big.bin": 5 * 1024 * 1024 + 7}
    reader = MeterReader(total=sizes["big.bin"] + 12, exact_size=sizes.get)
    events = []
    for i in range(0, len(CANNED), 7):  # the pty hands out arbitrary pieces
        events += reader.feed(CANNED[i : i + 7])
    events += reader.finish()
    assert [(e.name, e.percent, e.files) for e in events] == [
        ("big.bin", 0, 1),
        ("big.bin", 37, 1),
        ("big.bin", 100, 1),
        ("small.txt", 100, 2),
    ]
    assert events[2].bytes == sizes["big.bin"]  # exact at 100%, not scp's 5120KB
    assert [e.copied for e in events] == [0, 1920 * 1024, sizes["big.bin"], sizes["big.bin"] + 12]
    assert all(e.total == sizes["big.bin"] + 12 for e in events)


def test_reader_keeps_other_text_apart() -> None:
    reader = MeterReader()
    assert reader.feed(b"some banner\r\n") == []
    assert reader.other_text == "some banner"


# -- errors and messages ------------------------------------------------------------

DOWN = CopyPlan("download", "dev1", ["scp"], ("/x",), "/home/me/x", None, "/home/me/x")
UP = CopyPlan("upload", "dev1", ["scp"], ("/home/me/a",), "/tmp/", 100)


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (
            "scp: /var/log/nope: No such file or directory\n",
            "Copy from dev1 failed: /var/log/nope: no such file or directory.",
        ),
        (
            "scp: /root/x: Permission denied\n",
            "Copy from dev1 failed: /root/x: permission denied.",
        ),
        (
            "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "Host key verification failed.\r\nscp: Connection closed\n",
            "Copy from dev1 failed: the device's host key does not match the one known for "
            "it (a re-flashed device? remove its old key from known_hosts).",
        ),
        (
            "fio@10.42.42.7: Permission denied (publickey).\r\nscp: Connection closed\n",
            "Copy from dev1 failed: the SSH login was refused (permission denied; is your key "
            "in the agent or ~/.ssh?).",
        ),
        (
            "ssh: connect to host 10.42.42.7 port 22: Connection refused\r\n",
            "Copy from dev1 failed: the connection was refused (is sshd running there?).",
        ),
        ("", "Copy from dev1 failed: scp gave no reason."),
        ("odd \x1b[31mthing\n", "Copy from dev1 failed: odd \\x1b[31mthing."),
    ],
)
def test_errors_become_one_line(stderr: str, line: str) -> None:
    assert error_line(stderr, DOWN) == line


def test_summaries() -> None:
    assert CopyResult(UP, True, False, 100, 1).summary() == (
        "Copied 1 file, 100 B (100 bytes), to dev1:/tmp/."
    )
    assert CopyResult(UP, False, True, 40, 1).summary() == (
        "Partial copy: 40 of 100 bytes; dev1:/tmp/ may be incomplete (kept)."
    )
    assert CopyResult(DOWN, False, True, 7, 1).summary() == (
        "Partial copy: 7 bytes; /home/me/x may be incomplete (kept)."
    )


# -- running: a stand-in for scp that draws the meter on the pty it is given ----------

FAKE_SCP = r"""
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
out = sys.stdout
out.write("\rf.bin   0%    0     0.0KB/s   --:-- ETA"); out.flush()
out.write("\rf.bin  50%   50     0.0KB/s   00:01 ETA"); out.flush()
if sys.argv[2] == "fail":
    sys.stderr.write("scp: /nope: No such file or directory\n")
    sys.exit(1)
time.sleep(60)
"""


def _fake_plan(tmp_path: Path, mode: str) -> CopyPlan:
    argv = [sys.executable, "-c", FAKE_SCP, str(tmp_path / "pid"), mode]
    return CopyPlan("upload", "dev1", argv, (str(tmp_path / "f.bin"),), "/tmp/", 100)


def test_a_cancelled_task_stops_scp(tmp_path: Path) -> None:
    seen: list[int] = []

    async def main() -> None:
        job = CopyJob(_fake_plan(tmp_path, "hang"))
        half = asyncio.Event()

        def progress(event: CopyProgress) -> None:
            seen.append(event.percent)
            if event.percent == 50:
                half.set()

        task = asyncio.ensure_future(job.run(progress))
        await asyncio.wait_for(half.wait(), 10)  # the reading comes without a closing '\r'
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == [0, 50]
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_job_cancel_returns_the_partial_result_and_failures_one_line(tmp_path: Path) -> None:
    async def main() -> tuple[CopyResult, CopyResult]:
        job = CopyJob(_fake_plan(tmp_path, "hang"))
        cancelled = await job.run(lambda e: job.cancel() if e.percent == 50 else None)
        failed = await CopyJob(_fake_plan(tmp_path, "fail")).run()
        return cancelled, failed

    cancelled, failed = asyncio.run(main())
    assert cancelled.cancelled and cancelled.copied == 50
    assert (
        cancelled.summary() == "Partial copy: 50 of 100 bytes; dev1:/tmp/ may be incomplete (kept)."
    )
    assert not failed.ok and not failed.cancelled
    assert failed.error == "Copy to dev1 failed: /nope: no such file or directory."


# -- prompts: ssh's askpass program brings them to the job's `ask` ---------------------

# Runs $SSH_ASKPASS as ssh does (prompt in argv[1], answer on stdout, exit 1 for none):
# "same" asks twice from one process (a wrong passphrase), "hops" from two processes (the
# jump route's two ssh), then it says what it got on stderr, as ssh's refusal would.
ASKING_SCP = r"""
import os, subprocess, sys
mode, want = sys.argv[1], sys.argv[2]
prompt = "Enter passphrase for key '/home/me/.ssh/id_ed25519': "
def ask():
    got = subprocess.run([os.environ["SSH_ASKPASS"], prompt], capture_output=True)
    return got.stdout.decode() if got.returncode == 0 else None
answers = [ask()]
# As ssh: no answer means "try the next key", a wrong one is asked for again.
if mode == "same" and answers[0] not in (None, want + "\n"):
    answers.append(ask())
if mode == "hops":
    answers.append(subprocess.run([sys.executable, "-c", sys.argv[3]] + sys.argv[1:3],
                                  capture_output=True, text=True).stdout or None)
if answers[-1] == want + "\n":
    sys.stdout.write("\rf.bin 100%  100     1.0KB/s   00:00    \n")
    sys.exit(0)
sys.stderr.write("fio@10.42.42.1: Permission denied (publickey).\n")
sys.exit(255)
"""
# The other hop: its own process asking the same prompt.
OTHER_HOP = r"""
import os, subprocess, sys
prompt = "Enter passphrase for key '/home/me/.ssh/id_ed25519': "
got = subprocess.run([os.environ["SSH_ASKPASS"], prompt], capture_output=True, text=True)
print(got.stdout if got.returncode == 0 else "", end="")
"""


def _asking_plan(mode: str, want: str) -> CopyPlan:
    argv = [sys.executable, "-c", ASKING_SCP, mode, want, OTHER_HOP]
    return CopyPlan("upload", "dev1", argv, ("/home/me/f.bin",), "/tmp/", 100)


def test_a_passphrase_prompt_reaches_ask_and_the_answer_reaches_ssh() -> None:
    asked: list[str] = []

    async def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return "wrong" if len(asked) == 1 else "s3cret pass"

    result = asyncio.run(CopyJob(_asking_plan("same", "s3cret pass"), ask).run())
    assert result.ok, result.error
    assert asked == [
        "Enter passphrase for key '/home/me/.ssh/id_ed25519': ",
        "Wrong passphrase, try again. Enter passphrase for key '/home/me/.ssh/id_ed25519': ",
    ]


def test_the_jump_routes_second_ssh_gets_the_same_keys_passphrase_without_asking() -> None:
    asked: list[str] = []

    async def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return "s3cret"

    result = asyncio.run(CopyJob(_asking_plan("hops", "s3cret"), ask).run())
    assert result.ok, result.error
    assert len(asked) == 1


def test_without_ask_a_passphrase_is_declined_and_the_failure_says_ssh_add() -> None:
    job = CopyJob(_asking_plan("same", "s3cret"))
    result = asyncio.run(job.run())
    assert not result.ok and job.prompts.keys_declined == ["/home/me/.ssh/id_ed25519"]
    assert result.error == (
        "Copy to dev1 failed: the SSH key /home/me/.ssh/id_ed25519 needs its passphrase "
        "and there is no terminal to ask for it on. Add the key to your SSH agent "
        "(ssh-add /home/me/.ssh/id_ed25519) and copy again."
    )


def test_a_dismissed_or_wrong_passphrase_is_said_so() -> None:
    async def dismiss(prompt: str) -> str | None:
        return None

    async def wrong(prompt: str) -> str | None:
        return "nope"

    async def empty(prompt: str) -> str | None:
        return ""  # Enter on an empty field: ssh takes it as no passphrase

    dismissed = asyncio.run(CopyJob(_asking_plan("same", "s3cret"), dismiss).run())
    empty_result = asyncio.run(CopyJob(_asking_plan("same", "s3cret"), empty).run())
    assert empty_result.error == dismissed.error
    assert dismissed.error == (
        "Copy to dev1 failed: no passphrase was given for the SSH key "
        "/home/me/.ssh/id_ed25519. To copy without being asked, add the key to your SSH "
        "agent: ssh-add /home/me/.ssh/id_ed25519"
    )
    refused = asyncio.run(CopyJob(_asking_plan("same", "s3cret"), wrong).run())
    assert refused.error == (
        "Copy to dev1 failed: the passphrase given for the SSH key "
        "/home/me/.ssh/id_ed25519 was wrong."
    )


def test_cancel_while_a_prompt_is_open_stops_scp_and_closes_the_prompt() -> None:
    closed: list[bool] = []

    async def main() -> CopyResult:
        job = CopyJob(_asking_plan("same", "s3cret"))
        opened = asyncio.Event()

        async def ask(prompt: str) -> str | None:
            opened.set()
            try:
                await asyncio.Event().wait()  # a person who never answers
            finally:
                closed.append(True)
            return None

        job.ask = ask
        run = asyncio.ensure_future(job.run())
        await asyncio.wait_for(opened.wait(), 10)
        job.cancel()
        return await asyncio.wait_for(run, 10)

    result = asyncio.run(main())
    assert result.cancelled and closed == [True]


# An older ssh that prompts on its terminal whatever SSH_ASKPASS_REQUIRE says.
TTY_PROMPTING_SCP = r"""
import sys, time
sys.stdout.write("Enter passphrase for key '/home/me/.ssh/id_rsa': "); sys.stdout.flush()
time.sleep(60)
"""


def test_a_prompt_on_scps_terminal_stops_the_copy_instead_of_hanging() -> None:
    argv = [sys.executable, "-c", TTY_PROMPTING_SCP]
    plan = CopyPlan("download", "dev1", argv, ("/var/log/x",), "/tmp/x", None)

    async def main() -> CopyResult:
        return await asyncio.wait_for(CopyJob(plan).run(), 15)

    result = asyncio.run(main())
    assert not result.ok and not result.cancelled
    assert result.error == (
        "Copy from dev1 failed: ssh asked on scp's terminal (Enter passphrase for key "
        "'/home/me/.ssh/id_rsa':), where nobody can answer (OpenSSH older than 8.4 "
        "ignores SSH_ASKPASS_REQUIRE): add the key to the agent with ssh-add and copy again."
    )


def test_a_file_named_like_a_prompt_is_progress_not_a_prompt() -> None:
    reader = MeterReader()
    assert reader.feed(b"\rmy password:") == [] and reader.pending_prompt() is not None
    reader = MeterReader()
    events = reader.feed(b"\rpassword.txt   0%    0     0.0KB/s   --:-- ETA")
    assert events and reader.pending_prompt() is None
    reader.feed(b"\rpassword.txt  50%   50     0.0KB/s   00:")  # cut mid-reading
    assert reader.pending_prompt() is None


def test_the_bundled_app_is_its_own_askpass_program(tmp_path: Path, monkeypatch) -> None:
    """A PyInstaller bundle has no python to run core/askpass.py with: ssh runs the
    bundle's executable, which answers through fiotray/__main__.py."""
    bundle = tmp_path / "fiotray"
    bundle.write_text(f'#!/bin/sh\nexec {sys.executable} -m fiotray "$@"\n')
    bundle.chmod(0o755)
    plan = _asking_plan("same", "s3cret")  # the stand-in for scp runs on this python
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    asked: list[str] = []

    async def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return "s3cret"

    result = asyncio.run(CopyJob(plan, ask).run())
    assert result.ok, result.error
    assert len(asked) == 1
    # The socket and the program went with the copy.
    assert not list(tmp_path.glob("fiotray-askpass-*"))
    assert askpass.SOCKET_ENV == "FIOTRAY_ASKPASS_SOCKET"  # as fiotray/__main__.py reads it


FOLDER_SCP = r"""
import sys
for name, size in (("a.log", "68KB"), ("b.bin", "292KB")):
    sys.stdout.write(f"\r{name} 100%  {size}   1.0MB/s   00:00    \n")
"""


def test_a_folders_files_add_up_to_its_total(tmp_path: Path) -> None:
    """Each file of an uploaded folder counts its own bytes, not the folder's total."""
    folder = tmp_path / "logs"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.log").write_bytes(b"a" * 70_000)
    (folder / "deep" / "b.bin").write_bytes(b"b" * 300_000)
    argv = [sys.executable, "-c", FOLDER_SCP]
    plan = CopyPlan("upload", "dev1", argv, (str(folder),), "/tmp/", 370_000)
    events: list[CopyProgress] = []
    result = asyncio.run(CopyJob(plan).run(events.append))
    assert result.ok and result.copied == 370_000 and result.files == 2
    assert [e.files for e in events] == [1, 2]
    assert events[-1].copied == (68 + 292) * 1024  # scp's rounded figures, within the total
    assert all(e.copied <= 370_000 for e in events)
