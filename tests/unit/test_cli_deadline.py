"""A command that only talks to the API has a deadline of its own, over all its requests."""

from __future__ import annotations

import argparse
import asyncio
import importlib

# The module, not the `main` function that fiotray.cli exports under the same name.
main = importlib.import_module("fiotray.cli.main")


async def forever(args: argparse.Namespace, ctx: object) -> int:
    await asyncio.Event().wait()  # a server that never lets the command finish
    return 0


def test_api_command_gives_up_at_its_deadline(monkeypatch, capsys):
    monkeypatch.setattr(main, "COMMAND_DEADLINE", 0.2)
    args = argparse.Namespace(command="devices", func=forever, demo=True, verbose=0)
    assert main.run_command(args) == 1
    assert (
        capsys.readouterr().err
        == "fiotray: fiotray devices did not finish within 0.2 s; giving up.\n"
    )
