"""The packaging scripts' rules, without building anything (tests/packaging builds the .deb)."""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
    # Each command's description, examples and exit codes, as its --help has them.
    assert "fioctl devices config wireguard DEVICE enable".replace("-", "\\-") in page
    assert "fiotray ssh gateway\\-01 \\-\\-factory acme \\-\\- uptime\n" in page
    assert "Exit status: 0, 1, 2 or 4 (see EXIT STATUS)." in page  # connect's
    # The exit codes are fiotray's own list, the one its help texts are made from.
    from fiotray.cli.output import EXIT_CODES

    section = page.split(".SH EXIT STATUS\n")[1].split(".SH ")[0]
    assert re.findall(r"\\fB(\d+)\\fR", section) == [str(c) for c in EXIT_CODES]
    # No line may start with a dot unless it is a request the page means.
    requests = {".TH", ".SH", ".SS", ".TP", ".PP", ".RS", ".RE", ".B", ".BR", ".IR", ".br"}
    requests |= {".nf", ".fi"}
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


# -- fiotray-server's package ------------------------------------------------------------------

DEBIAN = PACKAGING / "debian"
EXEC_START = "/usr/bin/fiotray-server $FIOTRAY_SERVER_OPTIONS daemon $FIOTRAY_DAEMON_OPTIONS"


def server_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string((DEBIAN / "fiotray-server.service").read_text())
    return unit


def options_file() -> tuple[dict[str, str], list[str]]:
    """(the assignments, the comment lines) of /etc/default/fiotray-server as shipped."""
    values: dict[str, str] = {}
    comments = []
    for line in (DEBIAN / "fiotray-server.default").read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        # NAME="value", nothing else: systemd's EnvironmentFile= and sh read it alike.
        match = re.fullmatch(r'([A-Z_]+)="([^"$`\\]*)"', line)
        assert match, line
        values[match[1]] = match[2]
    return values, comments


def exec_start_argv(environment: dict[str, str]) -> list[str]:
    """ExecStart's words as systemd makes them: an unbraced $VAR word becomes the variable's
    value split at whitespace (zero or more words)."""
    argv: list[str] = []
    for word in server_unit()["Service"]["ExecStart"].split():
        if word.startswith("$"):
            argv += environment.get(word[1:], "").split()
        else:
            argv.append(word)
    return argv


def test_server_unit_runs_the_daemon_from_the_options_file() -> None:
    unit = server_unit()
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["EnvironmentFile"] == "/etc/default/fiotray-server"
    assert service["ExecStart"] == EXEC_START
    assert "User" not in service  # root: wg, ip, iptables, /etc/hosts
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    for key in ("After", "Wants"):
        assert "network-online.target" in unit["Unit"][key].split(), key


def test_server_unit_gives_up_on_a_config_that_fails_at_once() -> None:
    unit = server_unit()
    assert unit["Service"]["Restart"] == "on-failure"
    restart_sec = int(unit["Service"]["RestartSec"])
    burst = int(unit["Unit"]["StartLimitBurst"])
    interval = int(unit["Unit"]["StartLimitIntervalSec"])
    # The start limit only trips if `burst` failed starts, RestartSec apart, fit in the
    # interval; otherwise a unit that exits 1 at every start restarts forever.
    assert restart_sec >= 5
    assert burst >= 2 and (burst - 1) * restart_sec < interval


def test_server_unit_hardening_leaves_what_the_daemon_writes_writable() -> None:
    service = server_unit()["Service"]
    # /etc/hosts, the admin's creds file (anywhere, /root too) and /proc/sys/net (ip_forward).
    assert service.get("ProtectSystem", "no") in ("no", "true", "yes")
    for key in ("ProtectHome", "ProtectKernelTunables", "ReadOnlyPaths", "InaccessiblePaths"):
        assert key not in service, key
    assert service.get("PrivateNetwork", "no") == "no"  # the interface is the host's


def test_options_file_as_shipped_and_its_examples_parse_with_the_server() -> None:
    from fiotray.server.cli import build_parser

    values, comments = options_file()
    assert values == {"FIOTRAY_SERVER_OPTIONS": "", "FIOTRAY_DAEMON_OPTIONS": "--interval 300"}
    # As shipped the unit's command has no factory: it fails at once (the install test runs it).
    assert exec_start_argv(values) == ["/usr/bin/fiotray-server", "daemon", "--interval", "300"]
    # The documented example of the global options, with the shipped daemon options.
    example = next(
        re.fullmatch(r'# FIOTRAY_SERVER_OPTIONS="([^"]*)"', c)
        for c in comments
        if c.startswith("# FIOTRAY_SERVER_OPTIONS=")
    )
    assert example
    argv = exec_start_argv({**values, "FIOTRAY_SERVER_OPTIONS": example[1]})
    args = build_parser().parse_args(argv[1:])
    assert args.command == "daemon" and args.factory == "myfactory"
    assert args.oauthcreds == "/etc/fiotray-server/oauthcreds.json"
    assert args.privatekey == "/etc/fiotray-server/private.key"
    assert args.interval == 300.0 and args.apitoken is None
    text = "\n".join(comments)
    for step in (
        "systemctl cat factory-vpn-<factory>",
        "systemctl disable --now factory-vpn-<factory>",
        "systemctl enable --now fiotray-server",
        "--apitoken-file",
    ):
        assert step in text, step


def control_template(name: str) -> dict[str, str]:
    text = "".join(
        line
        for line in (DEBIAN / name).read_text().splitlines(keepends=True)
        if not line.startswith("#")
    )
    return dict(re.findall(r"^(\S+): (.*(?:\n .*)*)", text, re.M))


def test_server_control_depends_on_the_tools_it_runs_and_nothing_of_the_desktop() -> None:
    fields = control_template("server-control.in")
    assert fields["Package"] == "fiotray-server"
    assert fields["Section"] == "net"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert depends[0] == "@SHLIBS@"
    # wg and wg-quick, ip, and iptables for --forward (forward.py runs no nft).
    assert {"wireguard-tools", "iproute2", "iptables"} <= set(depends)
    assert not any(d.startswith(("python3", "pkexec", "fonts-")) for d in depends), depends
    assert "Recommends" not in fields
    laptop = control_template("control.in")
    assert laptop["Package"] == "fiotray" and laptop["Version"] == fields["Version"]


def test_server_maintainer_scripts_enable_and_start_nothing() -> None:
    verbs = {}
    for name in ("postinst", "prerm", "postrm"):
        path = DEBIAN / f"fiotray-server.{name}"
        # POSIX sh syntax (dpkg runs them with /bin/sh, dash on Debian).
        subprocess.run(["sh", "-n", str(path)], check=True)
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text
        code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        found = re.findall(r"(?:systemctl(?: --system)?|deb-systemd-\w+) ([a-z-]+)", code)
        verbs[name] = set(found)
    # An install starts nothing; an upgrade restarts only a daemon that runs.
    assert verbs == {
        "postinst": {"daemon-reload", "try-restart"},
        "prerm": {"stop"},
        "postrm": {"daemon-reload"},
    }
    postrm = (DEBIAN / "fiotray-server.postrm").read_text()
    assert "rm -rf /var/lib/fiotray-server /etc/fiotray-server" in postrm


# -- installable on Debian 12 and 13, Ubuntu 22.04 and 24.04 ---------------------------------

# `readelf -V -W` of a library, cut down: what it defines, what it needs (the GLIBC_PRIVATE
# and other libraries' versions among them), and the per-symbol table that names them again.
READELF_V = """
Version symbols section '.gnu.version' contains 5 entries:
 Addr: 0x0000000000001000  Offset: 0x00001000  Link: 3 (.dynsym)
  000:   0 (*local*)       2 (GLIBC_2.2.5)   3 (GLIBC_2.38)    4 (FOO_1.0)

Version definition section '.gnu.version_d' contains 2 entries:
 Addr: 0x0000000000001100  Offset: 0x00001100  Link: 4 (.dynstr)
  000000: Rev: 1  Flags: BASE  Index: 1  Cnt: 1  Name: libfoo.so.1
  0x001c: Rev: 1  Flags: none  Index: 4  Cnt: 1  Name: GLIBC_2.99

Version needs section '.gnu.version_r' contains 3 entries:
 Addr: 0x0000000000001200  Offset: 0x00001200  Link: 4 (.dynstr)
  000000: Version: 1  File: libz.so.1  Cnt: 1
  0x0010:   Name: ZLIB_1.2.9  Flags: none  Version: 6
  0x0020: Version: 1  File: libm.so.6  Cnt: 1
  0x0030:   Name: GLIBC_2.29  Flags: none  Version: 5
  0x0040: Version: 1  File: libc.so.6  Cnt: 4
  0x0050:   Name: GLIBC_2.3.4  Flags: none  Version: 7
  0x0060:   Name: GLIBC_2.35  Flags: none  Version: 3
  0x0070:   Name: GLIBC_PRIVATE  Flags: none  Version: 8
  0x0080:   Name: GLIBC_2.2.5  Flags: none  Version: 2
"""


def test_glibc_versions_are_read_from_what_a_binary_needs_only() -> None:
    check = load("bundle_check")
    # Not GLIBC_2.38 of the symbol table, nor 2.99 that it defines, nor GLIBC_PRIVATE.
    assert check.glibc_needed(READELF_V) == {(2, 29), (2, 3, 4), (2, 35), (2, 2, 5)}
    assert check.glibc_needed(READELF_V.replace("GLIBC_2.35", "GLIBC_2.36")) >= {(2, 36)}
    assert check.glibc_needed("") == set()
    # Compared as numbers: 2.4 is older than 2.35, 2.3.4 than 2.4.
    assert (2, 4) < (2, 35) and (2, 3, 4) < (2, 4)
    assert check.parse_version("2.35") == (2, 35)
    for bad in ("2", "2.35a", "GLIBC_2.35", ""):
        try:
            check.parse_version(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_glibc_check_names_the_file_and_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = load("bundle_check")
    old, new = tmp_path / "_internal/old.so", tmp_path / "_internal/new.so"
    old.parent.mkdir()
    old.write_bytes(b"\x7fELF")
    new.write_bytes(b"\x7fELF")
    outputs = {str(old): READELF_V, str(new): READELF_V.replace("GLIBC_2.35", "GLIBC_2.39")}
    monkeypatch.setattr(check, "readelf", lambda *args: outputs[args[-1]])
    elves = check.elf_files(tmp_path)
    assert elves == [new, old]
    assert check.glibc_problems(tmp_path, elves, (2, 39)) == []
    assert check.glibc_problems(tmp_path, elves, (2, 35)) == [
        "_internal/new.so: needs GLIBC_2.39, newer than GLIBC_2.35 (the oldest glibc the "
        "package is for)"
    ]
    assert check.highest_glibc(elves) == ((2, 39), [new])


def test_depends_names_every_systems_package_and_floors_ubuntu_22_04_meets() -> None:
    depends = load("depends")
    shlibs = (
        "libc6 (>= 2.35), libglib2.0-0 (>= 2.26.0), libssl3 (>= 3.0.0), "
        "libx11-xcb1 (>= 2:1.8.4), libzstd1 (>= 1.5.2), zlib1g (>= 1:1.2.3.4)"
    )
    assert depends.rewrite(shlibs) == (
        "libc6 (>= 2.35), libglib2.0-0t64 (>= 2.26.0) | libglib2.0-0 (>= 2.26.0), "
        "libssl3t64 (>= 3.0.0) | libssl3 (>= 3.0.0), libx11-xcb1, libzstd1 (>= 1.3.0), "
        "zlib1g (>= 1:1.2.3.4)"
    )
    assert depends.unchecked(depends.rewrite(shlibs)) == []
    assert depends.unchecked("libc6, libnew7 (>= 1) | libc6") == ["libnew7"]
    # Every name the control templates give by hand is checked too.
    for template in ("control.in", "server-control.in"):
        field = control_template(template)["Depends"]
        assert field.startswith("@SHLIBS@, ")
        assert depends.unchecked(field) == [], template
    # No python3: the helper is a bundle of its own.
    assert "python3" not in control_template("control.in")["Depends"]


def test_depends_script_fails_the_build_on_an_unchecked_name() -> None:
    script = PACKAGING / "depends.py"
    ok = subprocess.run(
        [sys.executable, str(script)],
        input="shlibs:Depends=libc6 (>= 2.34), libssl3 (>= 3.0.0)\n",
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "libc6 (>= 2.34), libssl3t64 (>= 3.0.0) | libssl3 (>= 3.0.0)\n"
    bad = subprocess.run(
        [sys.executable, str(script)], input="libc6, libfoo1\n", capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert "libfoo1 is not known to exist" in bad.stderr


def test_helper_staged_from_its_bundle_without_python_from_the_system(tmp_path: Path) -> None:
    from fiotray.helper import install

    bundle = tmp_path / "dist/fiotray-helper"
    (bundle / "_internal/python3.11/lib-dynload").mkdir(parents=True)
    (bundle / "fiotray-helper").write_bytes(b"\x7fELF bootloader")
    (bundle / "fiotray-helper").chmod(0o755)
    (bundle / "_internal/libpython3.11.so.1.0").write_bytes(b"\x7fELF")
    (bundle / "_internal/libpython3.11.so.1.0").chmod(0o755)
    (bundle / "_internal/base_library.zip").write_bytes(b"PK")
    (bundle / "_internal/python3.11/lib-dynload/_json.so").write_bytes(b"\x7fELF")
    root = tmp_path / "stage"
    done = install.install(root, group_rule=True, package=True, helper_bundle=bundle)
    rels = {p.relative_to(root).as_posix() for p in done}
    assert rels == {
        "usr/libexec/fiotray/fiotray-helper",
        "usr/libexec/fiotray/_internal/libpython3.11.so.1.0",
        "usr/libexec/fiotray/_internal/base_library.zip",
        "usr/libexec/fiotray/_internal/python3.11/lib-dynload/_json.so",
        "usr/share/polkit-1/actions/io.foundries.fiotray.policy",
        "usr/share/fiotray/polkit/49-fiotray-group.rules",
    }
    # The executable at the polkit actions' exec.path; no launcher, no module tree.
    helper = root / install.HELPER_REL
    assert helper.read_bytes() == b"\x7fELF bootloader"
    assert not (root / "usr/libexec/fiotray/fiotray").exists()
    policy = (root / install.POLICY_REL).read_text()
    exec_path = f'"org.freedesktop.policykit.exec.path">/{install.HELPER_REL}<'
    assert policy.count(exec_path) == 3
    modes = {
        p.relative_to(root / "usr/libexec/fiotray").as_posix(): p.stat().st_mode & 0o777
        for p in (root / "usr/libexec/fiotray").rglob("*")
    }
    assert modes == {
        "fiotray-helper": 0o755,
        "_internal": 0o755,
        "_internal/libpython3.11.so.1.0": 0o755,
        "_internal/base_library.zip": 0o644,
        "_internal/python3.11": 0o755,
        "_internal/python3.11/lib-dynload": 0o755,
        "_internal/python3.11/lib-dynload/_json.so": 0o644,
    }
    # A symlink in the bundle is refused: every file root runs is a plain one dpkg checks.
    (bundle / "_internal/link.so").symlink_to("libpython3.11.so.1.0")
    try:
        install.install(tmp_path / "again", package=True, helper_bundle=bundle)
    except install.InstallError as exc:
        assert "symlink" in str(exc)
    else:
        raise AssertionError("a symlink in the helper's bundle was installed")
