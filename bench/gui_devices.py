#!/usr/bin/env python3
"""The devices window with 50,000 devices: event-loop stalls, filter, sort, memory.

Runs the real window (offscreen) on a qasync loop against the fake
FoundriesFactory API. By default the API runs in its own process, as a real
server would be elsewhere: in this process its threads would take the GIL from
the event loop and their time would be counted as the window's. `--in-process`
uses `demo_services(N)` (the fake API on threads here) instead.

A 1 ms QTimer heartbeat measures stalls: the longest gap between two ticks is
the longest time the GUI could not react. Figures, each with its target:
  * longest stall while the list loads, and while it refreshes
  * the same load without any window (what the core itself costs) for reference
  * a filter keystroke: the handling (filter + repaint) and the end-to-end time
    from setText to a repainted table (this one includes the typing debounce)
  * a sort, per column and direction, through the view (and one header click)
  * extra RSS once the list is shown, and the peak during a refresh
  * device-list requests while the window is hidden (timer shortened), counted
    by the fake API, next to the count while shown as a control
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import qasync
from PySide6.QtCore import QPoint, QSignalBlocker, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from fiotray.core import devices as core_devices
from fiotray.core.factories import Factory
from fiotray.core.secrets import factory_key
from fiotray.demo.fakeapi import start_process
from fiotray.gui.backend import Backend, Services, demo_services
from fiotray.gui.device_model import HEADERS
from fiotray.gui.devices_window import DevicesWindow
from tests.gui.waits import signal_future

TARGET_STALL_MS = 50
TARGET_FILTER_MS = 50
TARGET_SORT_MS = 100
TARGET_RSS_MB = 80


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Heartbeat:
    """A 1 ms timer; the longest gap between ticks is the longest event-loop stall."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.max_gap = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.max_gap = max(self.max_gap, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.max_gap = 0.0
        GC.reset()

    def stall_ms(self) -> float:
        # A stall still going on when the phase ends counts too.
        return 1000 * max(self.max_gap, time.perf_counter() - self.last)


class GcWatch:
    """The longest garbage-collector pause: stalls the GUI cannot avoid by itself."""

    def __init__(self) -> None:
        self.started = 0.0
        self.max_pause = 0.0
        self.full = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        self.max_pause = max(self.max_pause, time.perf_counter() - self.started)
        self.full += info["generation"] == 2

    def reset(self) -> None:
        self.max_pause = 0.0
        self.full = 0


GC = GcWatch()


def start_fake_api(devices: int, token: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    # A token may start with "-": hence --api-token=.
    return start_process(["--devices", str(devices), f"--api-token={token}", "--seed", "7"])


def services_for(devices: int, in_process: bool) -> tuple[Services, subprocess.Popen[str] | None]:
    if in_process:
        return demo_services(devices), None
    # The demo's tunnel, settings and stores, with the factory served by another process.
    services = demo_services(1)
    token = secrets.token_urlsafe(24)
    proc, info = start_fake_api(devices, token)
    factory = services.demo.factory.factory
    assert info["factory"] == factory
    services.factories.save(
        Factory(factory=factory, auth="token", api_url=info["url"], oauth_url=info["oauth_url"]),
        make_default=True,
    )
    services.secrets.set(factory_key(factory, "api_token"), token)
    return services, proc


GC_PAUSES: dict[str, tuple[float, int]] = {}


async def phase(
    hb: Heartbeat, work: Callable[[], Awaitable[Any]], name: str = ""
) -> tuple[float, float]:
    """(longest stall in ms, wall time in s) of `work`; its GC pauses go to GC_PAUSES."""
    await asyncio.sleep(0.05)
    hb.reset()
    start = time.perf_counter()
    await work()
    wall = time.perf_counter() - start
    stall = hb.stall_ms()
    if name:
        GC_PAUSES[name] = (1000 * GC.max_pause, GC.full)
    return stall, wall


async def settle() -> None:
    """Let queued events (paints, deferred layouts) run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def hidden_requests(seconds: float, interval_ms: int) -> tuple[int, int]:
    """Device-list GETs the fake API saw while the window was hidden, and while shown."""
    backend = Backend(demo_services())
    server = backend.services.demo.server
    window = DevicesWindow(backend)
    try:
        window.refresh_interval_ms = interval_ms
        loaded = signal_future(window.model.rowsReplaced, lambda: window.model.total > 0)
        window.show_factory()
        await asyncio.wait_for(loaded, 30)

        def count() -> int:
            return sum(
                1 for r in server.requests if r.method == "GET" and r.path == "/ota/devices/"
            )

        window.hide()
        await settle()
        server.clear_requests()
        await asyncio.sleep(seconds)
        hidden = count()
        window.show()
        server.clear_requests()
        await asyncio.sleep(seconds)
        shown = count()
        window.hide()
        return hidden, shown
    finally:
        window.deleteLater()
        await backend.shutdown()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "devices": args.devices,
        "fake_api": "in-process",
        "gc_freeze": args.gc_freeze,
    }
    services, proc = services_for(args.devices, args.in_process)
    if args.gc_freeze:
        # What an app-level policy would do: keep long-lived objects out of collections.
        gc.freeze()
    if proc is not None:
        figures["fake_api"] = "own process"
    backend = Backend(services)
    window = DevicesWindow(backend)
    window.resize(1200, 800)
    if args.gc_freeze:
        window.model.rowsReplaced.connect(gc.freeze)
    factory = services.demo.factory.factory
    hb = Heartbeat()
    try:
        gc.collect()
        await asyncio.sleep(0.1)
        rss0 = rss_mb()

        def shown_all() -> bool:
            return window.model.total == args.devices

        async def load() -> None:
            done = signal_future(window.model.rowsReplaced, shown_all)
            window.show_factory(factory)
            await asyncio.wait_for(done, 120)
            await settle()

        figures["load_stall_ms"], figures["load_s"] = await phase(hb, load, "load")
        gc.collect()
        figures["rss_after_load_extra_mb"] = rss_mb() - rss0

        window.table.selectRow(10)  # a current row to carry through refresh, sort, filter

        async def refresh() -> None:
            done = signal_future(window.model.rowsReplaced, shown_all)
            window.refresh()
            await asyncio.wait_for(done, 120)
            await settle()

        figures["refresh_stall_ms"], figures["refresh_s"] = await phase(hb, refresh, "refresh")
        gc.collect()
        figures["rss_after_refresh_extra_mb"] = rss_mb() - rss0
        figures["rss_peak_extra_mb"] = rss_mb("VmHWM") - rss0

        # Filter: keystrokes as typed, then cleared.
        keystrokes = ["l", "la", "lab", "lab ", "lab 1", "lab 12", "", "10.42.4", "main-lmp-5"]
        handling, end_to_end = [], []
        hb.reset()
        for text in keystrokes:
            start = time.perf_counter()
            applied = signal_future(window.model.filterApplied)
            window.search.setText(text)
            await asyncio.wait_for(applied, 5)
            window.table.viewport().repaint()
            end_to_end.append(1000 * (time.perf_counter() - start))
            # The handling alone, without the debounce wait: filter again from all rows.
            with QSignalBlocker(window.search):
                window.search.setText("")
            window.proxy.set_filter_text("")
            await settle()
            start = time.perf_counter()
            with QSignalBlocker(window.search):
                window.search.setText(text)
            window._apply_filter()
            window.table.viewport().repaint()
            handling.append(1000 * (time.perf_counter() - start))
            await settle()
        figures["filter_stall_ms"] = hb.stall_ms()
        figures["filter_keystroke_ms_max"] = max(handling)
        figures["filter_keystroke_ms"] = dict(
            zip(keystrokes, (round(h, 1) for h in handling), strict=True)
        )
        figures["filter_end_to_end_ms_max"] = max(end_to_end)
        window.search.clear()
        window._apply_filter()

        # Sort: every column both ways through the view, then a real header click.
        sorts: dict[str, float] = {}
        for col, title in enumerate(HEADERS):
            for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
                start = time.perf_counter()
                window.table.sortByColumn(col, order)
                window.table.viewport().repaint()
                sorts[f"{title} {'asc' if order == Qt.SortOrder.AscendingOrder else 'desc'}"] = (
                    1000 * (time.perf_counter() - start)
                )
                await settle()
        header = window.table.horizontalHeader()
        section = HEADERS.index("Last seen")
        x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
        start = time.perf_counter()
        QTest.mouseClick(
            header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2)
        )
        window.table.viewport().repaint()
        sorts["header click (Last seen)"] = 1000 * (time.perf_counter() - start)
        figures["sort_ms_max"] = max(sorts.values())
        figures["sort_ms"] = {k: round(v, 1) for k, v in sorts.items()}

        # Reference: the same load with no window at all (core and HTTP only).
        api = await backend.client(factory)

        async def core_load() -> None:
            await core_devices.list_rows(api)

        figures["core_only_load_stall_ms"], _ = await phase(hb, core_load, "core")

        # The model build alone (no network): rows already in memory.
        rows_now = await core_devices.list_rows(api)

        async def build_only(rows: list[Any] = rows_now) -> None:
            await window.model.set_rows(factory, rows)
            await settle()

        figures["model_build_stall_ms"], figures["model_build_s"] = await phase(
            hb, build_only, "build"
        )
        del rows_now, build_only

        # Who holds the memory: Python allocations still held, by owner (tracemalloc).
        window.model.clear()
        gc.collect()
        tracemalloc.start()
        rows_held = await core_devices.list_rows(api)
        gc.collect()
        core_bytes = tracemalloc.get_traced_memory()[0]
        await window.model.set_rows(factory, rows_held)
        gc.collect()
        figures["held_core_rows_mb"] = core_bytes / 1e6
        figures["held_window_tables_mb"] = (tracemalloc.get_traced_memory()[0] - core_bytes) / 1e6
        tracemalloc.stop()
        del rows_held
    finally:
        hb.timer.stop()
        window.hide()
        await backend.shutdown()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)

    figures["gc_pauses_ms"] = {k: round(v[0], 1) for k, v in GC_PAUSES.items()}
    figures["gc_full_collections"] = {k: v[1] for k, v in GC_PAUSES.items()}
    hidden, shown = await hidden_requests(args.hidden_seconds, args.hidden_interval_ms)
    figures["hidden_seconds"] = args.hidden_seconds
    figures["hidden_interval_ms"] = args.hidden_interval_ms
    figures["device_list_requests_hidden"] = hidden
    figures["device_list_requests_shown_control"] = shown
    return figures


def report(f: dict[str, Any]) -> None:
    def line(what: str, value: float, unit: str, target: float | None = None) -> None:
        mark = ""
        if target is not None:
            mark = f"  (target <= {target:g} {unit}: {'ok' if value <= target else 'OVER'})"
        print(f"{what:<52} {value:8.1f} {unit}{mark}")

    policy = ", gc.freeze() after each list" if f["gc_freeze"] else ""
    print(f"{f['devices']:,} devices, fake API in {f['fake_api']}{policy}")
    line("load: wall time", f["load_s"], "s")
    line("load: longest event-loop stall", f["load_stall_ms"], "ms", TARGET_STALL_MS)
    line("refresh: wall time", f["refresh_s"], "s")
    line("refresh: longest event-loop stall", f["refresh_stall_ms"], "ms", TARGET_STALL_MS)
    line("  reference: same load, no window (core only)", f["core_only_load_stall_ms"], "ms")
    line("  model build alone (rows in memory): stall", f["model_build_stall_ms"], "ms")
    print(
        f"{'  longest garbage-collector pause per phase':<52} {f['gc_pauses_ms']} ms,"
        f" full collections {f['gc_full_collections']}"
    )
    line("filter keystroke: handling (filter + repaint), max", f["filter_keystroke_ms_max"], "ms")
    print(f"{'':<52} per keystroke {f['filter_keystroke_ms']}")
    line(
        "filter keystroke: longest stall while typing", f["filter_stall_ms"], "ms", TARGET_FILTER_MS
    )
    line("filter keystroke: end to end incl. debounce, max", f["filter_end_to_end_ms_max"], "ms")
    line("sort (view sortByColumn + repaint), max", f["sort_ms_max"], "ms", TARGET_SORT_MS)
    for k, v in f["sort_ms"].items():
        print(f"    {k:<48} {v:8.1f} ms")
    line("extra RSS with the list shown", f["rss_after_load_extra_mb"], "MB", TARGET_RSS_MB)
    line("extra RSS after a refresh", f["rss_after_refresh_extra_mb"], "MB", TARGET_RSS_MB)
    line("extra peak RSS (VmHWM) incl. refresh", f["rss_peak_extra_mb"], "MB")
    line("  held by the core's 50k DeviceRows (tracemalloc)", f["held_core_rows_mb"], "MB")
    line("  held by the window's model tables (tracemalloc)", f["held_window_tables_mb"], "MB")
    print(
        f"{'device-list requests while hidden':<52} {f['device_list_requests_hidden']:8d}"
        f"      over {f['hidden_seconds']:g} s, refresh every {f['hidden_interval_ms']} ms"
        f" (target 0: {'ok' if f['device_list_requests_hidden'] == 0 else 'OVER'});"
        f" shown, same time: {f['device_list_requests_shown_control']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--in-process", action="store_true", help="fake API on threads here")
    parser.add_argument("--hidden-seconds", type=float, default=3.0)
    parser.add_argument("--hidden-interval-ms", type=int, default=200)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() at start and whenever a list is shown (an app-level policy to try)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        figures = loop.run_until_complete(run(args))
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
