"""`fiotray mcp`: a Model Context Protocol server over `fiotray.ops`, for assistants
(Claude Desktop, VS Code, any MCP client) to drive what the CLI and the tray do.

Optional: it needs the MCP Python SDK (`pip install 'fiotray[mcp]'`). `server` imports
the SDK; `results` and `guide` do not.
"""
