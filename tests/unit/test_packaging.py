"""The packaging scripts' rules, without building anything (tests/packaging builds the .deb)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fiotray.cli import build_parser

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(PACKAGING))
    try:
        spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        # Registered first, as importlib's recipe does: dataclasses look their module up.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(PACKAGING))


def test_bundle_keeps_only_the_qt_plugins_fiotray_uses() -> None:
    rules = load("bundle_rules")
    keep = rules.keep_qt_file
    plugins = "PySide6/Qt/plugins/"
    for wanted in (
        "platforms/libqxcb.so",
        "platforms/libqwayland.so",
        "platforms/libqoffscreen.so",
        "iconengines/libqsvgicon.so",
        "imageformats/libqsvg.so",
        "wayland-shell-integration/libxdg-shell.so",
        "platforminputcontexts/libcomposeplatforminputcontextplugin.so",
    ):
        assert keep(plugins + wanted), wanted
    for unwanted in (
        "platformthemes/libqgtk3.so",
        "platforms/libqvnc.so",
        "platforms/libqeglfs.so",
        "imageformats/libqjpeg.so",
        "tls/libqopensslbackend.so",
        "generic/libqevdevmouseplugin.so",
        "xcbglintegrations/libqxcb-glx-integration.so",
    ):
        assert not keep(plugins + unwanted), unwanted
    assert not keep("PySide6/Qt/translations/qtbase_de.qm")
    assert keep("PySide6/Qt/lib/libQt6Core.so.6")
    assert keep("fiotray/gui/svg/fiotray.svg")


def test_system_libraries_are_left_to_debian_but_libpython_is_bundled() -> None:
    rules = load("bundle_rules")
    system = rules.is_system_library
    assert system("/usr/lib/x86_64-linux-gnu/libssl.so.3", "libssl.so.3")
    assert system("/lib/x86_64-linux-gnu/libglib-2.0.so.0", "libglib-2.0.so.0")
    assert not system("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "libpython3.11.so.1.0")
    wheel = "/usr/lib/python3/dist-packages/PySide6/Qt/lib/libQt6Core.so.6"
    assert not system(wheel, "PySide6/Qt/lib/libQt6Core.so.6")
    assert not system("/work/build/venv/lib/libQt6Gui.so.6", "libQt6Gui.so.6")


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names = {a.dest for a in action._choices_actions}  # aliases left out
            for name, sub in action.choices.items():
                if name not in names:
                    continue
                found.append(prefix + name)
                found += _commands(sub, prefix + name + " ")
    return found


def test_man_page_documents_every_command_and_option() -> None:
    page = load("manpage").render()
    assert page.startswith(".TH FIOTRAY 1 ")
    commands = _commands(build_parser())
    assert {"login", "devices", "connect", "status", "ssh", "tunnels import"} <= set(commands)
    for command in commands:
        assert f".SS {command.replace('-', chr(92) + '-')}\n" in page, command
    for option in ("--demo", "--hidden", "--version", "--api-token-stdin", "--route"):
        assert option.replace("-", "\\-") in page, option
    # No line may start with a dot unless it is a request the page means.
    requests = {".TH", ".SH", ".SS", ".TP", ".PP", ".RS", ".RE", ".B", ".BR", ".IR", ".br"}
    for line in page.splitlines():
        if line.startswith("."):
            assert line.split()[0] in requests, line


def test_helper_staged_for_the_package_like_a_source_install(tmp_path: Path) -> None:
    from fiotray.helper import install

    # An upgrade from the layout before fiotray.wg (one module beside the launcher).
    old = tmp_path / "usr/libexec/fiotray/fiotray_helper.py"
    old_cache = old.parent / f"__pycache__/fiotray_helper.{sys.implementation.cache_tag}.pyc"
    old_cache.parent.mkdir(parents=True)
    old.write_text("")
    old_cache.write_bytes(b"")
    done = install.install(tmp_path, group_rule=True, package=True)
    assert not old.exists() and not old_cache.parent.exists()
    rels = {p.relative_to(tmp_path).as_posix() for p in done}
    tag = sys.implementation.cache_tag
    modules = [
        "fiotray/__init__.py",
        "fiotray/helper/__init__.py",
        "fiotray/helper/fiotray_helper.py",
        "fiotray/wg/__init__.py",
        "fiotray/wg/config.py",
        "fiotray/wg/dump.py",
        "fiotray/wg/errors.py",
        "fiotray/wg/tools.py",
    ]
    caches = [
        f"{m.rpartition('/')[0]}/__pycache__/{m.rpartition('/')[2][:-3]}.{tag}.pyc" for m in modules
    ]
    assert rels == {
        "usr/libexec/fiotray/fiotray-helper",
        *(f"usr/libexec/fiotray/{m}" for m in modules + caches),
        "usr/share/polkit-1/actions/io.foundries.fiotray.policy",
        # Off by default: polkit does not read /usr/share/fiotray.
        "usr/share/fiotray/polkit/49-fiotray-group.rules",
    }
    launcher = tmp_path / install.HELPER_REL
    assert launcher.stat().st_mode & 0o777 == 0o755
    text = launcher.read_text()
    assert text.startswith("#!/usr/bin/python3 -IS\n")
    # Root never writes a cache for another Python version next to the module.
    assert "sys.dont_write_bytecode = True" in text
    assert not (tmp_path / "etc").exists()
    # The app's own package __init__ is not root's to run: the installed ones are empty.
    assert (tmp_path / "usr/libexec/fiotray/fiotray/__init__.py").read_bytes() == b""
    assert "sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))" in text


# -- fiotray-server's bundle ----------------------------------------------------------------


def test_bundle_check_finds_any_gui_file_in_the_servers_bundle(tmp_path: Path) -> None:
    gui_files = load("bundle_check").gui_files
    internal = tmp_path / "_internal"
    for rel in ("fiotray/server/cli.pyc", "httpx/__init__.pyc", "libpython3.11.so.1.0"):
        (internal / rel).parent.mkdir(parents=True, exist_ok=True)
        (internal / rel).write_bytes(b"")
    assert gui_files(tmp_path) == []
    for rel in (
        "PySide6/__init__.pyc",
        "shiboken6/Shiboken.abi3.so",
        "qasync/__init__.pyc",
        "fiotray/gui/app.pyc",
        "libQt6Core.so.6",
    ):
        (internal / rel).parent.mkdir(parents=True, exist_ok=True)
        (internal / rel).write_bytes(b"")
    found = set(gui_files(tmp_path))
    for rel in (
        "_internal/PySide6/__init__.pyc",
        "_internal/shiboken6/Shiboken.abi3.so",
        "_internal/qasync/__init__.pyc",
        "_internal/fiotray/gui/app.pyc",
        "_internal/libQt6Core.so.6",
    ):
        assert rel in found, rel
    assert not any(f.startswith(("_internal/fiotray/server", "_internal/httpx")) for f in found)


# -- fiotray-server's man page and copyright --------------------------------------------------


def test_server_man_page_documents_every_command_and_option() -> None:
    from fiotray.server.cli import build_parser as server_parser

    manpage = load("manpage")
    page = manpage.render(manpage.SERVER)
    assert page.startswith(".TH FIOTRAY-SERVER 8 ")
    commands = _commands(server_parser())
    assert {"daemon", "peers list", "peers add", "status", "login"} <= set(commands)
    for command in commands:
        assert f".SS {command.replace('-', chr(92) + '-')}\n" in page, command
    for option in ("--oauthcreds", "--privatekey", "--apitoken-file", "--forward", "--state-dir"):
        assert option.replace("-", "\\-") in page, option
    assert "/etc/default/fiotray\\-server" in page
    # The laptop's page is still the laptop's.
    assert manpage.render().startswith(".TH FIOTRAY 1 ")


def test_server_copyright_lists_only_what_its_bundle_holds(tmp_path: Path) -> None:
    from importlib import metadata

    copyright_ = load("copyright")
    for name in ("httpx", "yaml"):
        (tmp_path / "_internal" / name).mkdir(parents=True)
    (tmp_path / "_internal" / "typing_extensions.pyc").write_bytes(b"")
    lines = copyright_.package_lines(metadata.distributions(), tmp_path)
    names = {line.split()[0] for line in lines}
    # This venv has PySide6, keyring and pytest too: not in this bundle, not listed.
    assert names == {"httpx", "PyYAML", "typing_extensions"}, names
    everything = {
        line.split()[0] for line in copyright_.package_lines(metadata.distributions(), None)
    }
    assert {"httpx", "keyring"} <= everything
