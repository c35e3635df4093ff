"""The privileged helper's commands, in-process (no root, no tools), and what it may import."""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fiotray.helper import fiotray_helper as h
from fiotray.helper import install
from fiotray.wg.errors import EXIT_CONFLICT, EXIT_USAGE, WgError
from tests.unit.wgsamples import PRIV, VALID, cfg

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- command line


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize(
    "argv",
    [[], ["up"], ["up", "a", "b"], ["down"], ["status", "x"], ["UP", "wg0"], ["--help"], ["rm"]],
)
def test_usage_errors(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(VALID.encode()))
    assert h.main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "fiotray-helper: " + h.USAGE + "\n"


@pytest.mark.parametrize(
    ("argv", "data", "words"),
    [
        (["up", "../etc"], VALID.encode(), "invalid interface name"),
        (["up", "A" * 16], VALID.encode(), "invalid interface name"),
        (["down", "a;b"], b"", "invalid interface name"),
        (["up", "wg0"], cfg("PostUp = id\n").encode(), "line 4: PostUp is not allowed"),
        (["up", "wg0"], b"\0", "NUL byte"),
        (["up", "wg0"], b"#" * (h.MAX_INPUT + 10), "larger than 64 KiB"),
    ],
)
def test_refused_before_anything_runs(
    argv: list[str],
    data: bytes,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Even as root, nothing may be touched: point the writable places at a temp dir.
    monkeypatch.setattr(h, "RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert h.main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("fiotray-helper: ") and err.count("\n") == 1
    assert words in err
    assert not (tmp_path / "run").exists()


def test_caller_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKEXEC_UID", raising=False)
    assert h.caller_uid() == os.getuid()
    monkeypatch.setenv("PKEXEC_UID", "1000")
    assert h.caller_uid() == 1000
    for bad in ("", "-1", "1e3", " 1000", "4294967295", "99999999999"):
        monkeypatch.setenv("PKEXEC_UID", bad)
        with pytest.raises(WgError) as info:
            h.caller_uid()
        assert info.value.code == EXIT_USAGE


# --------------------------------------------------------------------------- runtime dir, status


def test_runtime_dir_symlink_or_file_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setattr(h, "RUNTIME_DIR", str(link))
    for create in (True, False):
        with pytest.raises(WgError) as info:
            h.open_runtime_dir(create=create)
        assert info.value.code == EXIT_CONFLICT
        assert "not a real directory" in info.value.message
    plain = tmp_path / "file"
    plain.write_text("")
    monkeypatch.setattr(h, "RUNTIME_DIR", str(plain))
    with pytest.raises(WgError):
        h.open_runtime_dir(create=True)


def test_status_without_runtime_dir_is_empty_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(h, "RUNTIME_DIR", str(tmp_path / "run"))
    assert h.status() == {"version": 1, "interfaces": []}
    assert list(tmp_path.iterdir()) == []


def test_error_line_scrubs_key_like_text_and_control_chars() -> None:
    line = h.error_line(f"boom {PRIV} \x1b[31m\u00e9")
    assert line.startswith("fiotray-helper: boom <redacted> ?[31m?")
    assert line.endswith("\n") and line.count("\n") == 1


def test_hint_names_the_missing_package() -> None:
    detail = "exit 127: /usr/bin/wg-quick: line 32: resolvconf: command not found"
    assert "openresolv" in h._hint(detail)


# --------------------------------------------------------------------------- what runs as root


def test_wg_and_the_helper_import_only_the_standard_library() -> None:
    """Root runs these on a Python that has nothing but its standard library: the system's
    python3 in a source install, the helper's own bundle (packaging/fiotray-helper.spec,
    whose Analysis follows these imports) in the .deb."""
    ours = [
        "fiotray.helper.fiotray_helper",
        "fiotray.wg.config",
        "fiotray.wg.dump",
        "fiotray.wg.errors",
        "fiotray.wg.tools",
    ]
    code = (
        "import importlib, sys\n"
        # -I leaves out PYTHONPATH and the current directory: name the checkout by hand.
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "before = set(sys.modules)\n"
        f"for name in {ours!r}:\n"
        "    importlib.import_module(name)\n"
        "for name in sorted(set(sys.modules) - before):\n"
        "    top = name.partition('.')[0]\n"
        "    if top not in sys.stdlib_module_names:\n"
        "        print(name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    # Only the five modules and their packages: no fiotray.core, nothing from site-packages.
    assert proc.stdout.split() == sorted(["fiotray", "fiotray.helper", "fiotray.wg", *ours])


def test_helper_reads_no_environment_but_pkexec_uid() -> None:
    env_reads: set[str] = set()
    for path in [Path(h.__file__), *sorted((ROOT / "fiotray" / "wg").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        env_reads |= {
            node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "getenv")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.isupper()
        }
        assert "environ[" not in path.read_text(), path
    assert env_reads == {"PKEXEC_UID"}
    assert Path(h.__file__).read_text().splitlines()[0] == "#!/usr/bin/python3 -I"


POLICY = install.RESOURCES / install.POLICY_NAME


def test_policy_actions_and_defaults() -> None:
    root = ET.parse(POLICY).getroot()  # noqa: S314 - our own file
    actions = {a.get("id"): a for a in root.findall("action")}
    assert set(actions) == {
        "io.foundries.fiotray.connect",
        "io.foundries.fiotray.disconnect",
        "io.foundries.fiotray.status",
    }
    expected = {
        "io.foundries.fiotray.connect": ("up", ("auth_admin", "auth_admin", "auth_admin_keep")),
        "io.foundries.fiotray.disconnect": (
            "down",
            ("auth_admin", "auth_admin", "auth_admin_keep"),
        ),
        "io.foundries.fiotray.status": ("status", ("no", "no", "yes")),
    }
    for action_id, (argv1, defaults) in expected.items():
        action = actions[action_id]
        notes = {n.get("key"): n.text for n in action.findall("annotate")}
        assert notes == {
            "org.freedesktop.policykit.exec.path": "/" + str(install.HELPER_REL),
            "org.freedesktop.policykit.exec.argv1": argv1,
        }
        got = tuple(
            action.findtext(f"defaults/{k}")
            for k in ("allow_any", "allow_inactive", "allow_active")
        )
        assert got == defaults
        assert action.findtext("description") and action.findtext("message")


def test_group_rule_names_the_three_actions() -> None:
    text = (install.RESOURCES / install.GROUP_RULE_NAME).read_text()
    assert 'subject.isInGroup("fiotray")' in text
    for action in ("connect", "disconnect", "status"):
        assert f'"io.foundries.fiotray.{action}"' in text


# --------------------------------------------------------------------------- running wg-quick


def fake_wg_quick(tmp_path: Path, body: str) -> str:
    path = tmp_path / "wg-quick"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_wg_quick_failure_detail(tmp_path: Path) -> None:
    ok = fake_wg_quick(tmp_path, "exit 0\n")
    assert h._wg_quick(ok, "up", "/run/x.conf", []) is None
    failed = fake_wg_quick(tmp_path, f"echo '[#] ip link add'; echo 'bad key {PRIV}' >&2; exit 1\n")
    assert h._wg_quick(failed, "up", "/run/x.conf", [PRIV]) == "exit 1: bad key <redacted>"


def test_wg_quick_killed_by_a_signal_is_not_called_a_timeout(tmp_path: Path) -> None:
    # The posix_spawn runner returned -N for "killed by signal N" and -1 for a timeout, and
    # the helper read every negative code as "timed out after 30 s".
    killed = fake_wg_quick(tmp_path, "kill -KILL $$\n")
    assert h._wg_quick(killed, "up", "/run/x.conf", []) == "killed by signal 9"


def test_wg_quick_timeout_detail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h, "WG_QUICK_TIMEOUT", 0.3)
    slow = fake_wg_quick(tmp_path, "sleep 30 & wait\n")
    assert h._wg_quick(slow, "up", "/run/x.conf", []) == "timed out after 0.3 s"


# --------------------------------------------------------------------------- records


def test_record_text_reads_back_fast_and_as_json() -> None:
    import json

    key = "A" * 43 + "="
    record = h.Record(1000, 1700000000, 7, key)
    raw = record.text().encode()
    fast = h._parse_own_record(raw)
    assert fast is not None
    got = (fast.uid, fast.created, fast.ifindex, fast.public_key)
    assert got == (1000, 1700000000, 7, key)
    assert json.loads(raw) == {"uid": 1000, "created": 1700000000, "ifindex": 7, "public_key": key}


def test_older_records_read_without_an_identity(tmp_path: Path) -> None:
    # Written by helpers from before identities were recorded: still the owner's.
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "wg0.json").write_text('{"uid": 1000, "created": 5}\n')
        record = h._record(dirfd, "wg0")
        assert (record.uid, record.created, record.ifindex, record.public_key) == (
            1000,
            5,
            0,
            None,
        )
    finally:
        os.close(dirfd)


def test_a_waiting_helper_gives_up_before_the_app_does() -> None:
    from fiotray.core.tunnels import HELPER_TIMEOUT

    # Long enough for the holder's wg-quick to time out and be stopped...
    assert h.LOCK_TIMEOUT > h.WG_QUICK_TIMEOUT + 2 * h.STOP_GRACE
    # ...and short enough that the waiter says why, not the app's bare "did not finish".
    assert h.LOCK_TIMEOUT < HELPER_TIMEOUT
