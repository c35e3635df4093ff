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
