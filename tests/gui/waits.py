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
