"""Bounded waits for GUI tests that run on the qasync loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll on the running loop (never a nested Qt loop) until `cond()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := cond()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)
    return value


def signal_future(signal: Any, check: Callable[..., bool] = lambda *a: True) -> asyncio.Future:
    """A future set by the first emission of `signal` whose arguments pass `check`.

    What to await instead of qtbot.waitSignal, which would run a nested Qt loop.
    """
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def fire(*args: Any) -> None:
        if not future.done() and check(*args):
            future.set_result(args)

    signal.connect(fire)
    future.add_done_callback(lambda _: signal.disconnect(fire))
    return future
