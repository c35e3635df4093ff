"""Exit codes, the error they travel with, and text that is safe to show.

The helper exits with these codes and fiotray's core maps them to its own error codes
(fiotray.core.tunnels): both import them from here, so the two cannot drift apart.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2  # usage or refused input (nothing run, nothing written), or not root
EXIT_CONFLICT = 3  # state conflict: the interface exists, or is not fiotray's / the caller's
EXIT_MISSING_TOOL = 4  # wg-quick, wg or ip is not installed
EXIT_WG_QUICK = 5  # wg-quick (or another tool) failed or timed out

MAX_ERROR_DETAIL = 200

# ASCII only, spelled out: str.isalnum() would take any Unicode letter or digit.
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class WgError(Exception):
    """A failure with an exit code and a one-line, secret-free message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def scrub_keylike(text: str) -> str:
    """Every run that looks like a WireGuard key, [A-Za-z0-9+/]{40,}={0,2}, as <redacted>."""
    out: list[str] = []
    copied = i = 0
    n = len(text)
    while i < n:
        if text[i] not in _BASE64_CHARS:
            i += 1
            continue
        end = i
        while end < n and text[end] in _BASE64_CHARS:
            end += 1
        if end - i >= 40:
            run_end = end
            while end < n and end - run_end < 2 and text[end] == "=":
                end += 1
            out += (text[copied:i], "<redacted>")
            copied = end
        i = end
    out.append(text[copied:])
    return "".join(out)


def sanitize(text: str, limit: int = MAX_ERROR_DETAIL, secrets: list[str] | None = None) -> str:
    """One printable-ASCII line, key-like runs and known secrets scrubbed, cut to `limit`."""
    for secret in secrets or ():
        text = text.replace(secret, "<redacted>")
    text = scrub_keylike(text)
    text = "".join(c if " " <= c <= "~" else "?" for c in text).strip()
    return text[:limit]
