"""How fiotray words things, the same in the CLI, the tray and the devices window.

Ages, byte counts, a device's VPN label and text from a server made safe to show.
Plain functions over plain values: no Qt, no I/O.
"""

from __future__ import annotations

# A device's VPN column: one code per state, so a view can sort on the code and show
# the label. "—": VPN was never set up on the device (no address).
VPN_ON, VPN_PENDING, VPN_OFF, VPN_NONE = range(4)
VPN_LABELS = ("enabled", "pending", "disabled", "—")


def vpn_code(enabled: bool, address: str | None, pending: bool) -> int:
    """Pending first (a change not applied yet), then enabled, disabled, never set up."""
    if pending:
        return VPN_PENDING
    if enabled:
        return VPN_ON
    return VPN_OFF if address else VPN_NONE


def vpn_label(enabled: bool, address: str | None, pending: bool) -> str:
    return VPN_LABELS[vpn_code(enabled, address, pending)]


def ago(seconds: float | None) -> str:
    """ "3m ago": short enough for a narrow column; None (never seen) is "never"."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h ago"
    days = hours // 24
    if days < 60:
        return f"{days}d ago"
    if days < 730:
        return f"{days // 30}mo ago"
    return f"{days // 365}y ago"


def duration(seconds: float) -> str:
    """ "12 s", "4 min", "2 h": how long, in a sentence ("no handshake for 4 min")."""
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


def since(seconds: float) -> str:
    """ "just now", "12 s ago": how long ago a handshake was, in the tray and the CLI."""
    return "just now" if seconds < 5 else f"{duration(seconds)} ago"


def size(n: int) -> str:
    """Bytes as a person reads them: "512 B", "1.5 KiB", up to GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def safe_text(text: str, width: int | None = None) -> str:
    """Text from a server or a file, safe to show: what is not printable written out as an
    escape, cut to `width`.

    Not printable covers what can take over a terminal or reorder what a person reads:
    C0 controls (ESC starts window-title, clear-screen and hyperlink sequences; BEL),
    DEL, C1 controls (CSI, OSC as single bytes), line breaks, and the format characters
    among which are the bidi controls (U+202A-202E, U+2066-2069, U+200E/200F, U+061C).
    An escape is plain ASCII (``\\x1b``), so escaping twice changes nothing more.
    """
    # Nearly every string is printable: str.isprintable is one C loop, the escaping below
    # one Python step per character, and the device list passes 50,000 devices through here.
    if text.isprintable():
        safe = text
    else:
        safe = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if width is not None and len(safe) > width:
        safe = safe[: width - 1] + "…"
    return safe


def safe_lines(text: str) -> str:
    """`safe_text` for text of several lines (a command's output): line breaks and tabs
    stay as they are, everything else `safe_text` escapes is escaped."""
    return "\n".join("\t".join(map(safe_text, line.split("\t"))) for line in text.split("\n"))
