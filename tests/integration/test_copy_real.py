"""`fiotray cp` and ops.transfer through the real parts, as an engineer at a laptop uses them.

The unprivileged user runs fiotray in the laptop namespace of the VPN world, with a
tunnel brought up by the real helper; scp reaches the devices' real sshd through the
jump route and, with the server's NAT, the direct route. Devices share this machine's
file system (their namespaces are network and UTS only), so what arrived on a device
is read straight from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engineer import WITH_KEYRING, Engineer, add_foundries_tunnel

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

# ops.transfer run by the engineer, printing each progress event and the result as JSON:
# the events are what the GUI's progress dialog gets. "cancel" cancels on the first event.
PROBE = """
import asyncio, dataclasses, json, sys
from fiotray.core.services import user_services
from fiotray.core.transfer import CopyJob
from fiotray.ops import transfer

async def main():
    mode, device, src, dest, route, cancel = sys.argv[1:7]
    services = user_services()
    try:
        if mode == "to":
            plan = await transfer.plan_to(services, None, device, [src], dest, route=route)
        else:
            plan = await transfer.plan_from(services, None, device, src, dest, route=route)
        job = CopyJob(plan)
        def progress(event):
            print(json.dumps({"event": dataclasses.asdict(event)}), flush=True)
            if cancel == "cancel":
                job.cancel()
        result = await transfer.run(plan, progress, job)
        print(json.dumps({"result": {
            "ok": result.ok, "cancelled": result.cancelled, "copied": result.copied,
            "total": result.total, "message": result.summary(),
        }}))
    finally:
        await services.aclose()

asyncio.run(main())
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random_file(path: Path, size: int, owner: Engineer) -> Path:
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            fh.write(chunk)
            left -= len(chunk)
    shutil.chown(path, owner.user.uid, owner.user.gid)
    return path


@pytest.fixture
def connected(engineer: Engineer) -> Engineer:
    """The engineer's tunnel up and admitted; `cp` is this worktree's (python -m, cwd)."""
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)
    out = engineer.fiotray("connect").stdout
    assert ": connected" in out, out
    return engineer


@pytest.fixture
def local_dir(engineer: Engineer) -> Path:
    """A directory of the engineer's (under their private home) for local files."""
    path = engineer.home / "files"
    path.mkdir(mode=0o700)
    shutil.chown(path, engineer.user.uid, engineer.user.gid)
    return path


@pytest.fixture
def device_dir(device_user) -> Iterator[Path]:
    """A directory of the device user: what a device's sshd writes lands here."""
    path = Path(tempfile.mkdtemp(prefix="fiotray-copy-"))
    shutil.chown(path, device_user.uid, device_user.gid)
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _probe(person: Engineer, *args: str, timeout: float = 60) -> tuple[list[dict], dict]:
    script = person.home / "probe.py"
    if not script.exists():
        script.write_text(PROBE)
        shutil.chown(script, person.user.uid, person.user.gid)
    argv = ["dbus-run-session", "--", "sh", "-c", WITH_KEYRING, "sh"]
    argv += [sys.executable, str(script), *args]
    proc = person.world.exec(
        person.world.laptop_ns,
        argv,
        user=person.user,
        env={**person.env(), "PYTHONPATH": str(ROOT)},
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines if "event" in line]
    (result,) = [line["result"] for line in lines if "result" in line]
    return events, result


def _round_trip(person: Engineer, local: Path, device_dir: Path, route: str) -> None:
    device = person.world.devices[0]
    name = local.name
    out = person.fiotray("cp", str(local), f"{device.name}:{device_dir}/", "--route", route).stdout
    assert "Copied 1 file, " in out and f"({local.stat().st_size} bytes)" in out, out
    assert _sha256(device_dir / name) == _sha256(local)
    back = local.with_name(f"{name}.back")
    person.fiotray("cp", f"{device.name}:{device_dir}/{name}", str(back), "--route", route)
    assert _sha256(back) == _sha256(local)
    back.unlink()


def test_copy_round_trip_jump_and_direct(connected, local_dir, device_dir) -> None:
    person = connected
    world = person.world
    local = _random_file(local_dir / "payload.bin", 3 * 1024 * 1024 + 12345, person)
    _round_trip(person, local, device_dir, "jump")
    (device_dir / local.name).unlink()
    world.set_nat(True)  # devices answer the laptop's own address only through the NAT
    _round_trip(person, local, device_dir, "direct")


def test_progress_events_and_errors(connected, local_dir, device_dir) -> None:
    person = connected
    device = person.world.devices[0]
    size = 5 * 1024 * 1024 + 7
    local = _random_file(local_dir / "big.bin", size, person)

    events, result = _probe(person, "to", device.name, str(local), f"{device_dir}/", "jump", "")
    assert result["ok"] and result["copied"] == size, result
    assert len(events) > 1, events  # scp's first reading and its last, at least
    percents = [e["percent"] for e in events]
    copied = [e["copied"] for e in events]
    assert percents == sorted(percents) and copied == sorted(copied), events
    assert events[-1]["percent"] == 100 and events[-1]["copied"] == size, events[-1]
    assert {e["name"] for e in events} == {"big.bin"}

    dest = local_dir / "down.bin"
    events, result = _probe(
        person, "from", device.name, f"{device_dir}/big.bin", str(dest), "jump", ""
    )
    assert result["ok"], result
    assert len(events) > 1 and events[-1]["copied"] == size, events
    assert _sha256(dest) == _sha256(local)

    # A missing remote file: one clear line, exit 1, nothing written.
    proc = person.fiotray("cp", f"{device.name}:{device_dir}/nope.bin", str(local_dir), code=1)
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"fiotray: Copy from {device.name} failed: {device_dir}/nope.bin: "
        "no such file or directory."
    ], proc.stderr
    assert not (local_dir / "nope.bin").exists()
    # A missing local file: refused before scp runs.
    proc = person.fiotray("cp", str(local_dir / "absent"), f"{device.name}:/tmp/", code=1)
    assert "No such file or directory" in proc.stderr
    # Not on the VPN: the same refusal as ssh's.
    proc = person.fiotray("cp", str(local), "not-on-vpn:/tmp/", code=1)
    assert "not-on-vpn has no VPN address" in proc.stderr


def test_hostile_remote_paths_only_name_files(connected, local_dir, device_user) -> None:
    person = connected
    device = person.world.devices[0]
    home = device_user.home
    local = _random_file(local_dir / "small.bin", 4096, person)
    decoy = home / "keep"
    decoy.mkdir()
    (decoy / "file").write_text("still here")
    made = []
    try:
        for name in ("$(touch pwned)", ";rm -rf keep", "`touch pwned2`", "a b'c\"d&&touch e"):
            made.append(home / name)
            # Relative paths are in the device user's home, where a shell would run them.
            person.fiotray("cp", str(local), f"{device.name}:{name}")
            assert (home / name).read_bytes() == local.read_bytes(), name
            back = local_dir / "back.bin"
            person.fiotray("cp", f"{device.name}:{name}", str(back))
            assert back.read_bytes() == local.read_bytes()
            back.unlink()
        for trace in ("pwned", "pwned2", "e"):
            assert not (home / trace).exists(), trace
        assert (decoy / "file").read_text() == "still here"
    finally:
        for path in made:
            path.unlink(missing_ok=True)
        shutil.rmtree(decoy, ignore_errors=True)


def test_cancelled_copies_report_partial(connected, local_dir, device_dir) -> None:
    person = connected
    device = person.world.devices[0]
    size = 64 * 1024 * 1024
    local = _random_file(local_dir / "large.bin", size, person)

    events, result = _probe(
        person, "to", device.name, str(local), f"{device_dir}/", "jump", "cancel"
    )
    assert events, "no progress event before the cancel"
    assert result["cancelled"] and not result["ok"], result
    assert result["total"] == size and result["copied"] < size, result
    assert result["message"] == (
        f"Partial copy: {result['copied']} of {size} bytes; "
        f"{device.name}:{device_dir}/ may be incomplete (kept)."
    )
    remote = device_dir / "large.bin"
    assert not remote.exists() or remote.stat().st_size < size

    shutil.copy(local, remote)
    dest = local_dir / "partial.bin"
    events, result = _probe(person, "from", device.name, str(remote), str(dest), "jump", "cancel")
    assert events and result["cancelled"], result
    kept = dest.stat().st_size if dest.exists() else 0
    assert kept < size and result["copied"] == kept, result
    assert result["message"] == (f"Partial copy: {kept} bytes; {dest} may be incomplete (kept).")
    # No scp or ssh of the cancelled copies is left.
    left = person.world.exec(person.world.laptop_ns, ["pgrep", "-u", person.user.name, "-l", "scp"])
    assert left.stdout.strip() == "", left.stdout


def test_ctrl_c_stops_cp_and_says_what_arrived(connected, local_dir, device_dir) -> None:
    person = connected
    world = person.world
    device = world.devices[0]
    size = 256 * 1024 * 1024
    local = _random_file(local_dir / "huge.bin", size, person)
    log = person.home / "cp.log"
    proc = person.spawn("cp", str(local), f"{device.name}:{device_dir}/", log=log)
    remote = device_dir / "huge.bin"
    try:
        # Bounded wait for the copy to be under way: its first bytes on the device.
        deadline = time.monotonic() + 30
        while not (remote.exists() and remote.stat().st_size > 0):
            assert proc.poll() is None, f"fiotray cp ended early: {log.read_text()}"
            assert time.monotonic() < deadline, f"no byte arrived in 30 s: {log.read_text()}"
            time.sleep(0.02)
        # fiotray's own Python, not the wrappers whose command lines also hold "fiotray cp".
        pattern = f"^{sys.executable} -m fiotray cp "
        found = world.exec(world.laptop_ns, ["pgrep", "-u", person.user.name, "-f", pattern])
        (pid,) = found.stdout.split()
        os.kill(int(pid), signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert proc.wait(timeout=20) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "fiotray: interrupted. Partial copy: " in text, text
    assert f" of {size} bytes; {device.name}:{device_dir}/ may be incomplete (kept)." in text
    assert remote.stat().st_size < size
    left = world.exec(world.laptop_ns, ["pgrep", "-u", person.user.name, "scp"])
    assert left.stdout.strip() == "", left.stdout


def test_cp_on_a_terminal_shows_one_updating_line(connected, local_dir, device_dir) -> None:
    person = connected
    device = person.world.devices[0]
    local = _random_file(local_dir / "shown.bin", 2 * 1024 * 1024, person)
    # util-linux script gives fiotray a terminal; its output is what a person would see.
    inner = shlex.join(
        [sys.executable, "-m", "fiotray", "cp", str(local), f"{device.name}:{device_dir}/"]
    )
    argv = ["dbus-run-session", "--", "sh", "-c", WITH_KEYRING, "sh"]
    # The terminal's bytes from script's own log: the captured stdout is text-mode,
    # where '\r' reads as '\n'.
    typescript = person.home / "typescript"
    argv += ["script", "-qec", inner, str(typescript)]
    proc = person.world.exec(
        person.world.laptop_ns, argv, user=person.user, env=person.env(), timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = typescript.read_bytes().decode()
    # Readings rewrite one line ('\r', erase to its end); the summary follows on its own.
    assert "\rshown.bin  100%  2.0 MiB of 2.0 MiB" in out, repr(out)
    summary = (
        f"\x1b[K\r\nCopied 1 file, 2.0 MiB (2097152 bytes), to {device.name}:{device_dir}/.\r\n"
    )
    assert summary in out, repr(out)
    readings = out[out.index("\rshown.bin") : out.index(summary)]
    assert "\n" not in readings and readings.count("\rshown.bin") >= 2, repr(readings)


# -- a key with a passphrase and no agent -------------------------------------------

PASSPHRASE = "correct horse 7"


@pytest.fixture
def locked_key(engineer: Engineer) -> Iterator[Path]:
    """The engineer's only key, now with a passphrase (no agent runs), authorized on the
    server and the devices (their sshd share one authorized_keys)."""
    person = engineer
    world = person.world
    key = person.user.home / ".ssh" / "id_ed25519"
    key.unlink()
    key.with_suffix(".pub").unlink(missing_ok=True)
    # The passphrase goes to ssh-keygen on its argv: a test key, in a test's own home.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "locked", "-f", str(key)],
        check=True,
        timeout=30,
    )
    for path in (key, key.with_suffix(".pub")):
        shutil.chown(path, person.user.uid, person.user.gid)
    key.chmod(0o600)
    authorized = world.root / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + key.with_suffix(".pub").read_text())
    try:
        yield key
    finally:
        authorized.write_text(before)


def test_a_locked_key_without_a_terminal_says_to_add_it_to_the_agent(
    connected, locked_key, local_dir, device_dir
) -> None:
    person = connected
    device = person.world.devices[0]
    local = _random_file(local_dir / "locked.bin", 1000, person)
    proc = person.fiotray("cp", str(local), f"{device.name}:{device_dir}/", code=1, timeout=60)
    assert proc.stderr.strip().splitlines() == [
        f"fiotray: Copy to {device.name} failed: the SSH key {locked_key} needs its "
        f"passphrase and there is no terminal to ask for it on. Add the key to your SSH "
        f"agent (ssh-add {locked_key}) and copy again."
    ], proc.stderr
    assert not (device_dir / local.name).exists()


def _read_until(fd: int, data: bytearray, needle: bytes, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no {what} in {timeout:.0f} s: {bytes(data)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended before {what}: {bytes(data)!r}"
            data.extend(chunk)


def test_a_locked_keys_passphrase_is_asked_once_on_the_terminal(
    connected, locked_key, local_dir, device_dir
) -> None:
    """On a terminal, cp asks as ssh would, once for both hops of the jump route, with
    echo off; the copy then runs and shows its meter."""
    person = connected
    world = person.world
    device = world.devices[0]
    local = _random_file(local_dir / "asked.bin", 2 * 1024 * 1024, person)
    inner = shlex.join(
        [sys.executable, "-m", "fiotray", "cp", str(local), f"{device.name}:{device_dir}/"]
    )
    # util-linux script gives fiotray a terminal; what it writes there is its stdout.
    argv = ["ip", "netns", "exec", world.laptop_ns, "runuser", "-u", person.user.name, "--"]
    argv += ["dbus-run-session", "--", "sh", "-c", WITH_KEYRING, "sh"]
    argv += ["script", "-qec", inner, "/dev/null"]
    proc = subprocess.Popen(
        argv,
        env={**person.user.env(), **person.env(), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = bytearray()
    prompt = f"Enter passphrase for key '{locked_key}': ".encode()
    try:
        _read_until(proc.stdout.fileno(), out, prompt, "passphrase prompt", 30)
        proc.stdin.write(f"{PASSPHRASE}\n".encode())
        proc.stdin.flush()
        _read_until(proc.stdout.fileno(), out, b"Copied 1 file", "summary", 60)
        out.extend(proc.stdout.read())
        assert proc.wait(timeout=30) == 0, bytes(out)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    # What the person saw, to look at (the terminal's bytes, escapes and all).
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cp-passphrase-terminal.txt").write_text(repr(text))
    assert text.count("Enter passphrase for key") == 1, text  # the jump hop's ssh too
    assert PASSPHRASE not in text, "the passphrase was echoed"
    assert "asked.bin  100%" in text, text
    assert _sha256(device_dir / local.name) == _sha256(local)
