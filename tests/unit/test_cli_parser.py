"""The command line's parser: no option taken from a prefix, the closest command named."""

from __future__ import annotations

import pytest

from fiotray.cli.main import parse_args


def test_an_option_is_never_taken_from_a_prefix_of_its_name(capsys):
    # `--api-token abc` once became `--api-token-stdin` (and `abc` an extra argument).
    with pytest.raises(SystemExit) as exited:
        parse_args(["login", "--factory", "acme", "--api-token", "abc"])
    assert exited.value.code == 2
    assert "--api-token-stdin" in capsys.readouterr().err  # what it does accept
    args = parse_args(["login", "--factory", "acme", "--api-token-stdin"])
    assert args.api_token_stdin is True


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["logn"], "did you mean 'login' or 'logout'?"),
        (["devcies"], "did you mean 'devices'?"),
        (["tunnels", "lsit"], "did you mean 'list'?"),
    ],
)
def test_a_mistyped_command_gets_the_closest_ones(capsys, argv, suggestion):
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith(suggestion), err


def test_nothing_close_suggests_nothing(capsys):
    with pytest.raises(SystemExit):
        parse_args(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_demo_may_follow_the_command():
    assert parse_args(["devices", "--demo"]).demo is True
    assert parse_args(["--demo", "devices"]).demo is True
    # After `--`, words belong to the command run on the device.
    args = parse_args(["ssh", "dev", "--", "echo", "--demo"])
    assert args.demo is False and args.remote == ["echo", "--demo"]


@pytest.mark.parametrize("argv", [["forward", "stop"], ["forward", "stop", "abc", "--all"]])
def test_forward_stop_without_exactly_one_target_is_a_usage_error(tmp_path, argv):
    import os
    import subprocess
    import sys

    # A whole process: the exit code is the command line's, not a function's. Its own
    # config and runtime dirs: nothing of the user's is read.
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fiotray", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "fiotray forward stop: give a forward's ID or --all (not both)."
