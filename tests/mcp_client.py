"""The MCP SDK's own client, talking to `fiotray mcp` over stdio as an assistant's does.

`mcp_session(argv, env=..., cwd=..., stderr=...)` starts the server process (`argv`: the
whole command line, so a test can run it as another user in a namespace) and yields a
`Client`: an initialized `ClientSession` whose every tool result is checked for the
secrets the test names, and which says what the server wrote on stderr when a call
fails a test.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

# Bounded: a server that hangs fails the test with its stderr instead of hanging it.
CALL_TIMEOUT = timedelta(seconds=60)


def result_text(result: Any) -> str:
    """Everything a tool result tells a client: its content and its structured part."""
    parts = [getattr(c, "text", "") or "" for c in result.content]
    parts.append(json.dumps(result.structuredContent))
    parts.append(json.dumps(result.meta))
    return "\n".join(parts)


class Client:
    def __init__(self, session: Any, secrets: Sequence[str], stderr: Path) -> None:
        self.session = session
        self.secrets = [s for s in secrets if s]
        self.stderr = stderr
        self.results: list[str] = []

    def server_log(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]

    def scan(self, text: str) -> None:
        self.results.append(text)
        for secret in self.secrets:
            assert secret not in text, "a tool result holds a secret"

    def rescan(self) -> None:
        """Every result so far against every secret known now (some are learnt late: a
        tunnel's private key exists once the tunnel does)."""
        for text in self.results:
            for secret in self.secrets:
                assert secret not in text, "a tool result holds a secret"

    async def call(self, tool: str, **arguments: Any) -> Any:
        """The tool's result; a tool error fails the test (with the server's stderr)."""
        result = await self.session.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
        self.scan(result_text(result))
        assert not result.isError, (
            f"{tool} failed: {result_text(result)}\nserver stderr:\n{self.server_log()}"
        )
        assert result.structuredContent is not None
        return result.structuredContent

    async def error(self, tool: str, **arguments: Any) -> tuple[str, str | None]:
        """The tool error's text and code; a success fails the test."""
        result = await self.session.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
        self.scan(result_text(result))
        assert result.isError, f"{tool} should have failed: {result_text(result)}"
        (content,) = result.content
        code = (result.meta or {}).get("fiotray/code")
        return content.text, code


@contextlib.asynccontextmanager
async def mcp_session(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stderr: Path,
    cwd: str | Path | None = None,
    secrets: Sequence[str] = (),
) -> AsyncIterator[Client]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=env, cwd=cwd)
    with stderr.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session,
        ):
            await session.initialize()
            yield Client(session, secrets, stderr)
