"""Every command's --help: what it does, examples that still parse, and its exit codes."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from fiotray.cli.main import build_parser, parse_args
from fiotray.cli.output import ANY_COMMAND_EXIT, EXIT_CODES


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(words, parser) of every command and action, aliases left out (`profiles`)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names = {a.dest for a in action._choices_actions}
            for name, sub in action.choices.items():
                if name in names:
                    found.append(((*prefix, name), sub))
                    found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())
NAMES = [" ".join(words) for words, _ in COMMANDS]


def test_every_command_is_here():
    assert {"login", "devices", "enable", "ssh", "tunnels", "tunnels add-foundries"} <= set(NAMES)
    assert {"tunnels import", "tunnels remove", "tunnels default", "connect"} <= set(NAMES)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_args([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _section(text: str, title: str) -> list[str]:
    """The indented lines under `title:` up to the next blank line."""
    assert f"\n{title}:\n" in text, f"no {title!r} in:\n{text}"
    body = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
    return body.splitlines()


def _codes(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(re.compile(r"  (\d+) +\S").match, lines) if m]


@pytest.fixture(autouse=True)
def _width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps the options to it


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=NAMES)
def test_help_says_what_the_command_does_with_examples_and_exit_codes(capsys, words, parser):
    text = _help(list(words), capsys)
    # A description of its own, beyond the one-line help in the list of commands.
    assert parser.description and len(parser.description) > 60
    assert parser.description in text
    examples = [line.strip() for line in _section(text, "examples")]
    name = "fiotray " + " ".join(words)
    assert any(e == name or e.startswith(name + " ") for e in examples), examples
    assert list(parser.examples) == examples
    codes = _codes(_section(text, "exit status"))
    assert codes == list(parser.exit_codes)
    assert set(codes) <= set(EXIT_CODES)
    assert {0, 1, 2} <= set(codes)  # every command can succeed, fail, be mistyped
    assert not set(codes) & set(ANY_COMMAND_EXIT)  # those are told once, by fiotray --help
    for code in codes:
        assert f"  {code}  {EXIT_CODES[code]}\n" in text
    # Written by hand for 80 columns: no line of the description or epilog is longer.
    for line in [*parser.description.splitlines(), *(parser.epilog or "").splitlines()]:
        assert len(line) <= 80, line


def _example_argv(example: str) -> list[str]:
    """The example's fiotray arguments: after `fiotray`, up to a pipe or redirection."""
    lexer = shlex.shlex(example, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    argv = tokens[tokens.index("fiotray") + 1 :]
    for i, token in enumerate(argv):
        if set(token) <= set("|&;<>()"):
            return argv[:i]
    return argv


EXAMPLES = [(words, e) for words, parser in COMMANDS for e in parser.examples]


@pytest.mark.parametrize(("words", "example"), EXAMPLES, ids=[e for _, e in EXAMPLES])
def test_every_example_parses_as_that_command(words, example):
    args = parse_args(_example_argv(example))  # a stale example exits here (usage error)
    assert args.command == words[0]
    if words[0] == "tunnels" and len(words) > 1:
        assert args.tunnels_command == words[1]


def test_example_argv_stops_at_the_shell():
    assert _example_argv("fiotray login -f acme --api-token-stdin < t.txt") == [
        "login",
        "-f",
        "acme",
        "--api-token-stdin",
    ]
    assert _example_argv("pass show acme | fiotray login --api-token-stdin") == [
        "login",
        "--api-token-stdin",
    ]


def test_a_stale_example_would_be_caught():
    with pytest.raises(SystemExit):
        parse_args(_example_argv("fiotray enable gateway-01 --no-such-option"))


def test_top_level_help_lists_commands_briefly_and_every_exit_code(capsys):
    text = _help([], capsys)
    assert _codes(_section(text, "exit status")) == list(EXIT_CODES)
    assert "fiotray COMMAND --help" in text
    assert "examples:" not in text  # the commands' own help has them
    for words, parser in COMMANDS:
        if len(words) == 1:
            assert parser.description.splitlines()[0] not in text, words


def test_positionals_have_help(capsys):
    for words, parser in COMMANDS:
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, (words, action.dest)


def test_the_route_choices_are_the_cores():
    from fiotray.cli.output import ROUTES
    from fiotray.core.ssh import ROUTES as CORE_ROUTES

    assert ROUTES == CORE_ROUTES
