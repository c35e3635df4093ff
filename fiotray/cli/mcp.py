"""mcp: the MCP server on standard input and output (an optional extra)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from fiotray.cli.output import Context, command
from fiotray.core.errors import FiotrayError

log = logging.getLogger(__name__)

# The distributions the server needs beyond fiotray's own (the `mcp` extra's).
SDK_MODULES = ("mcp", "pydantic")


def missing_sdk() -> str:
    """How to get the MCP server, for this installation of fiotray."""
    if getattr(sys, "frozen", False):
        # The .deb's bundle: nothing can be added to it, and it leaves the SDK out.
        return (
            "This fiotray (the .deb) has no MCP server: the MCP SDK is an optional extra "
            "the package leaves out. Run `fiotray mcp` from a Python install of fiotray "
            "with the extra instead: in a source checkout, packaging/run-from-source.sh "
            "then `.venv/bin/pip install -e '.[mcp]'`, and register `.venv/bin/fiotray "
            "mcp` with your MCP client."
        )
    return (
        "fiotray mcp needs the MCP Python SDK, an optional extra: pip install "
        f"'fiotray[mcp]' (in a source checkout: {sys.executable} -m pip install -e '.[mcp]')."
    )


async def cmd_mcp(args: argparse.Namespace, ctx: Context) -> int:
    from fiotray.core.logs import log_dir, setup_logging

    try:
        from fiotray.mcp import server
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in SDK_MODULES:
            raise
        raise FiotrayError(missing_sdk()) from None
    # A client starts the server and shows (at most) its stderr: the file keeps the rest.
    handler = setup_logging(log_dir(args.demo), quiet=("mcp",))
    policy = server.Policy(args.allow_commands, tuple(args.devices or ()))
    log.info(
        "MCP server started (commands %s%s)",
        "allowed" if policy.allow_commands else "off",
        f" on {' '.join(policy.devices)}" if policy.devices else "",
    )
    try:
        await server.serve(ctx.services, policy, log_path=handler.baseFilename)
    finally:
        log.info("MCP server stopped")
    return 0


def register(sub: Any, factory_option: Any) -> None:
    p = command(
        sub,
        "mcp",
        help="serve fiotray's tools to an AI assistant (Model Context Protocol)",
        description=(
            "Serve fiotray's operations to an AI assistant (Claude Desktop, VS Code, any\n"
            "MCP client) over the Model Context Protocol on standard input and output:\n"
            "tunnel status, connect and disconnect (through the privileged helper, so\n"
            "polkit may ask for a password on the desktop), the device list, a device's\n"
            "VPN state, enable and disable VPN, and a device's ssh command. Register the\n"
            "command with the client; it runs until the client closes it. Logs go to\n"
            "fiotray's log file. Needs the `mcp` extra (pip install 'fiotray[mcp]').\n\n"
            "--allow-commands adds a tool that runs one command on a device over SSH\n"
            "(host keys checked, no prompts, a timeout and an output cap); --devices\n"
            "limits it to devices whose names match a pattern (repeatable)."
        ),
        examples=(
            "fiotray mcp",
            "fiotray --demo mcp",
            "fiotray mcp --allow-commands --devices 'lab-*'",
        ),
        codes=(0, 1, 2),
    )
    p.add_argument(
        "--allow-commands",
        action="store_true",
        help="offer run_on_foundries_device: one command on a device over SSH",
    )
    p.add_argument(
        "--devices",
        action="append",
        metavar="GLOB",
        help="with --allow-commands: only on devices whose names match GLOB (repeatable)",
    )
    p.set_defaults(func=cmd_mcp)
