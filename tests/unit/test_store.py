"""The JSON store: read-modify-write under a lock, so concurrent writers lose nothing."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fiotray.core.devices import PendingStore
from fiotray.core.errors import SetupError
from fiotray.core.factories import Factory, FactoryStore
from fiotray.core.store import LOCK_TIMEOUT, JsonFile
from fiotray.core.tunnels import Tunnel, TunnelStore

WRITERS = 2
ENTRIES = 100  # per writer: unlocked, about 3 in 100 are lost, so a run loses some


def _add_pending(path: str, writer: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = PendingStore(Path(path))
    barrier.wait()
    for n in range(ENTRIES):
        store.mark("acme", f"w{writer}-{n}")


def _add_factories(path: str, writer: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = FactoryStore(Path(path))
    barrier.wait()
    for n in range(ENTRIES):
        store.save(Factory(factory=f"w{writer}-{n}", auth="token"))


def _add_tunnels(path: str, writer: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = TunnelStore(Path(path))
    barrier.wait()
    for n in range(ENTRIES):
        store.save(Tunnel(f"w{writer}-{n}", "plain", f"w{writer}x{n}", "[Interface]\n", "k"))


def _run_writers(target: Callable[..., None], path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=target, args=(str(path), w, barrier)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * WRITERS


def _expected() -> set[str]:
    return {f"w{w}-{n}" for w in range(WRITERS) for n in range(ENTRIES)}


def _lost(found: set[str]) -> list[str]:
    return sorted(_expected() - found)


def test_concurrent_pending_marks_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "pending-vpn.json"
    _run_writers(_add_pending, path)
    assert _lost(set(PendingStore(path).names("acme"))) == []


def test_concurrent_factory_saves_are_all_kept(tmp_path: Path) -> None:
    _run_writers(_add_factories, tmp_path)
    assert _lost({f.factory for f in FactoryStore(tmp_path).list()}) == []


def test_concurrent_tunnel_saves_are_all_kept(tmp_path: Path) -> None:
    _run_writers(_add_tunnels, tmp_path)
    assert _lost({t.name for t in TunnelStore(tmp_path).list()}) == []


# -- the file itself -------------------------------------------------------------------


def _counter(path: Path, *, timeout: float = LOCK_TIMEOUT) -> JsonFile[dict[str, int]]:
    def parse(data: Any) -> dict[str, int]:
        if not isinstance(data, dict):
            raise SetupError(f"{path} is malformed")
        return data

    def refuse(reason: str) -> dict[str, int]:
        raise SetupError(f"{path}: {reason}")

    return JsonFile(
        path,
        parse=parse,
        dump=lambda d: d,
        default=dict,
        invalid=refuse,
        error=SetupError,
        timeout=timeout,
    )


def _bump(data: dict[str, int]) -> dict[str, int]:
    return {**data, "n": data.get("n", 0) + 1}


def test_read_missing_gives_the_default_and_writes_nothing(tmp_path: Path) -> None:
    file = _counter(tmp_path / "sub" / "c.json")
    assert file.read() == {}
    assert not (tmp_path / "sub").exists()


def test_update_writes_privately_and_returns_the_new_content(tmp_path: Path) -> None:
    file = _counter(tmp_path / "sub" / "c.json")
    assert file.update(_bump) == {"n": 1}
    assert file.update(_bump) == {"n": 2}
    assert json.loads(file.path.read_text()) == {"n": 2}
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.lock_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(("content", "problem"), [("{oops", "not valid JSON"), ("[]", "malformed")])
def test_a_bad_file_is_refused_and_kept(tmp_path: Path, content: str, problem: str) -> None:
    file = _counter(tmp_path / "c.json")
    file.path.write_text(content)
    for action in (file.read, lambda: file.update(_bump)):
        with pytest.raises(SetupError, match=problem):
            action()
    assert file.path.read_text() == content


def test_a_change_that_raises_changes_nothing(tmp_path: Path) -> None:
    file = _counter(tmp_path / "c.json")
    file.update(_bump)

    def refuse(data: dict[str, int]) -> dict[str, int]:
        raise SetupError("no")

    with pytest.raises(SetupError, match="no"):
        file.update(refuse)
    assert file.read() == {"n": 1}
    assert file.update(_bump) == {"n": 2}  # the lock was released


def test_a_lock_held_too_long_is_an_error_not_a_hang(tmp_path: Path) -> None:
    file = _counter(tmp_path / "c.json", timeout=0.3)
    file.update(_bump)
    # A second open file description: flock excludes it even within one process.
    with file.lock_path.open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(SetupError, match="locked by another fiotray process"):
            file.update(_bump)
        assert time.monotonic() - started < 3
        assert file.read() == {"n": 1}  # reading never waits for the lock
    assert file.update(_bump) == {"n": 2}
