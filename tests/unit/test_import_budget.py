"""What each entry point may load, read off a fresh interpreter's sys.modules.

* the tray, up to its icon: none of the heavy libraries, no asyncio (and so no ssl),
  no dialog and no window: the icon shows as soon as a bare Qt tray's would;
* the tray idling after start-up (demo and real): still none of the heavy libraries,
  nor the demo's fake factory; but ssl, which asyncio imports (see IDLE_EXCEPT);
* the command line module alone: no Qt;
* a command that needs neither the API nor a secret (--version, factories, status,
  tunnels list, tunnels ssh): none of the heavy libraries, nor PyYAML (tests/integration/
  test_cli_imports.py holds `fiotray devices` to what it needs);
* fiotray.core and fiotray.wg, module by module: no Qt;
* the root helper, and fiotray.wg which it shares: the standard library only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# httpx (with httpcore, h11, certifi), keyring (and its D-Bus stack) and cryptography come
# with the first network call, keyring read or key made: never merely by starting.
HEAVY = ("httpx", "httpcore", "keyring", "secretstorage", "jeepney", "cryptography")
# asyncio.base_events imports ssl (OpenSSL, ~4 MiB resident) at import time, and the app
# runs on asyncio from its first second: no plain code keeps ssl out of an idling tray.
# (It once did by hiding ssl from asyncio's modules and patching it back in on first use;
# that reached into asyncio's private module attributes and held only for the CPython
# versions it was checked on.) The icon still shows before asyncio, and so before ssl.
IDLE_EXCEPT = ("ssl", "_ssl")
DEMO_HEAVY = ("fiotray.demo.fakeapi", "http.server", "hashlib")
# The MCP SDK and what it brings: `fiotray mcp` alone loads them (the `mcp` extra).
MCP_SDK = ("mcp", "pydantic", "pydantic_core", "starlette", "fiotray.mcp")


def modules_after(code: str, *, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()):
    """sys.modules of a fresh interpreter after `code`, which prints them as JSON last."""
    run_env = dict(env if env is not None else os.environ)
    run_env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=run_env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def app_env(tmp_path: Path) -> dict[str, str]:
    """Offscreen, with every directory the app writes to in `tmp_path`."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(run)
    env["TMPDIR"] = str(tmp_path)
    return env


# The real start (fiotray.cli's main, as `fiotray --demo --hidden` runs it), stopped where
# the icon has just been shown: the next step opens the log file.
TO_THE_ICON = """
    import json, os, sys
    from PySide6.QtWidgets import QSystemTrayIcon
    QSystemTrayIcon.isSystemTrayAvailable = staticmethod(lambda: True)  # offscreen has none
    import fiotray.gui.app as app_mod
    from fiotray.gui.tray import TrayIcon

    shown = []
    show = TrayIcon.show
    TrayIcon.show = lambda self: shown.append(self) or show(self)

    def stop(directory):
        assert shown, "the icon was not shown before the log opened"
        print(json.dumps(sorted(sys.modules)), flush=True)
        os._exit(0)

    app_mod.setup_logging = stop
    import fiotray.cli
    fiotray.cli.main(["--demo", "--hidden"])
    raise SystemExit("the start never reached the log file")
"""

# The whole start, then a moment of idling after the first tunnel check.
TO_IDLE = """
    import json, sys
    import fiotray.gui.app as app_mod

    real_main = app_mod.main

    async def main(**kw):
        import asyncio

        def on_app(app):
            async def idle():
                while app.watcher.full_checks < 1:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                print(json.dumps(sorted(sys.modules)), flush=True)
                app.quit()

            asyncio.ensure_future(idle())

        return await real_main(on_app=on_app, **kw)

    app_mod.main = main
    import fiotray.cli
    sys.exit(fiotray.cli.main(sys.argv[1:]))
"""


def test_the_tray_icon_shows_before_anything_heavy(tmp_path):
    modules = modules_after(TO_THE_ICON, env=app_env(tmp_path))
    assert "fiotray.gui.tray" in modules
    assert loaded(modules, (*HEAVY, *IDLE_EXCEPT, "asyncio", "qasync")) == []
    # Dialogs and the devices window load when first opened.
    assert loaded(modules, ("fiotray.gui.devices_window",)) == []
    assert [m for m in modules if m.startswith("fiotray.gui.dialogs.")] == []


@pytest.mark.parametrize("real", [False, True], ids=["demo", "real"])
def test_the_idle_tray_loads_nothing_heavy(tmp_path, real):
    env = app_env(tmp_path)
    if real:
        from tests.user_config import write_user_config

        write_user_config(Path(env["XDG_CONFIG_HOME"]))
    argv = "--hidden" if real else "--demo --hidden"
    code = TO_IDLE.replace("sys.argv[1:]", repr(argv.split()))
    modules = modules_after(code, env=env)
    assert "qasync" in modules and "fiotray.gui.backend" in modules  # it did start
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, DEMO_HEAVY) == []  # the demo's fake factory starts when asked
    assert loaded(modules, MCP_SDK) == []
    assert loaded(modules, ("fiotray.gui.devices_window",)) == []
    assert [m for m in modules if m.startswith("fiotray.gui.dialogs.")] == []


def test_the_command_line_module_loads_no_qt():
    modules = modules_after("import json, sys, fiotray.cli; print(json.dumps(list(sys.modules)))")
    assert loaded(modules, ("PySide6", "shiboken6", *HEAVY)) == []


# A command run as `fiotray ARGV` runs it (fiotray.cli.main), then its modules, as JSON.
COMMAND = """
    import json, sys
    import fiotray.cli

    try:
        code = fiotray.cli.main(ARGV)
    except SystemExit as exc:  # --version: argparse exits after printing it
        code = exc.code
    assert code == 0, code
    print(json.dumps(sorted(sys.modules)), flush=True)
"""

# What a command that makes no API call and reads no secret never needs: the HTTP stack,
# keyring (every backend), cryptography, PyYAML (only `login --from-fioctl` reads YAML).
NOT_FOR_LOCAL_COMMANDS = (*HEAVY, "h11", "anyio", "certifi", "yaml", *MCP_SDK)


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["factories"],
        ["status"],
        ["tunnels", "list"],
        ["tunnels", "default"],
        ["tunnels", "ssh", "acme"],
    ],
    ids=" ".join,
)
def test_a_local_command_loads_nothing_it_does_not_use(tmp_path, argv):
    from tests.user_config import write_user_config

    env = app_env(tmp_path)
    write_user_config(Path(env["XDG_CONFIG_HOME"]))
    modules = modules_after(COMMAND.replace("ARGV", repr(argv)), env=env)
    assert "fiotray.cli.main" in modules
    assert loaded(modules, NOT_FOR_LOCAL_COMMANDS) == []
    assert loaded(modules, ("PySide6", "shiboken6", "fiotray.gui", "fiotray.demo")) == []


def _here(name: str) -> bool:
    """Whether this checkout has module `name` (fiotray.wg is being added)."""
    spec = importlib.util.find_spec(name)
    # Under ROOT only: an editable install of another checkout answers for what this one lacks.
    return spec is not None and spec.origin is not None and Path(spec.origin).is_relative_to(ROOT)


def _packages_without_qt() -> list[str]:
    return ["fiotray.core", *(["fiotray.wg"] if _here("fiotray.wg") else [])]


@pytest.mark.parametrize("package", _packages_without_qt())
def test_the_core_loads_no_qt(package):
    # Each module after the last, in one interpreter: the first to load Qt is named.
    code = f"""
        import importlib, json, pkgutil, sys
        import {package} as package
        culprit = []
        for info in sorted(pkgutil.walk_packages(package.__path__, "{package}."), key=str):
            importlib.import_module(info.name)
            if not culprit and ("PySide6" in sys.modules or "shiboken6" in sys.modules):
                culprit.append(info.name)
        print(json.dumps(culprit))
    """
    assert modules_after(code) == set(), "this module loads Qt"


def _stdlib_only_modules() -> list[str]:
    return ["fiotray.helper.fiotray_helper", *(["fiotray.wg"] if _here("fiotray.wg") else [])]


@pytest.mark.parametrize("module", _stdlib_only_modules())
def test_the_helper_loads_only_the_standard_library(module):
    # -S: no site-packages at all, as a root helper should need none; fiotray from ROOT.
    code = f"""
        import importlib, json, pkgutil, sys
        sys.path.insert(0, {str(ROOT)!r})
        root = importlib.import_module({module!r})
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), root.__name__ + "."):
            importlib.import_module(info.name)
        print(json.dumps(list(sys.modules)))
    """
    modules = modules_after(code, flags=("-S",))
    assert module in modules
    foreign = sorted(
        m
        for m in modules
        if m.split(".")[0] not in (*sys.stdlib_module_names, "fiotray", "__main__")
    )
    assert foreign == []
