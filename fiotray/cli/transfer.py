"""cp: files to and from a device."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fiotray.cli.output import ROUTES, Context, command

if TYPE_CHECKING:
    from fiotray.core.transfer import CopyProgress


class _Meter:
    """One updating line on stderr (a terminal only): file, percent, bytes, rate, ETA."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, event: CopyProgress) -> None:
        from fiotray.core.format import safe_text, size

        eta = f"  ETA {event.eta}" if event.eta else ""
        of = f" of {size(event.total)}" if event.total else ""
        line = (
            f"{safe_text(event.name, 40)}  {event.percent:3d}%  {size(event.copied)}{of}"
            f"  {size(int(event.rate))}/s{eta}"
        )
        # \r and erase-to-end-of-line: a shorter line leaves nothing of the longer one.
        sys.stderr.write(f"\r{line}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


class _TerminalAsk:
    """ssh's prompts (a key's passphrase) asked on the controlling terminal, echo off, as
    ssh itself asks: scp's own terminal is the pseudo-terminal its meter is read from.

    Read on the event loop, not in a thread: Ctrl-C during the prompt stops the copy
    and the terminal gets its echo back, with no thread left blocked in a read.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls) -> _TerminalAsk | None:
        """The terminal's asker, or None without a controlling terminal (cron, a pipe
        from a program in a session of its own): prompts are then declined."""
        import os

        try:
            return cls(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            return None

    def close(self) -> None:
        import os

        os.close(self.fd)

    async def __call__(self, prompt: str) -> str | None:
        import asyncio
        import os
        import termios

        from fiotray.core.format import safe_text

        loop = asyncio.get_running_loop()
        saved = termios.tcgetattr(self.fd)
        quiet = termios.tcgetattr(self.fd)
        quiet[3] &= ~termios.ECHO
        answer: asyncio.Future[bytes | None] = loop.create_future()
        line = bytearray()

        def readable() -> None:
            try:
                data = os.read(self.fd, 1024)
            except OSError:
                data = b""
            line.extend(data)
            if not answer.done() and (not data or b"\n" in line):
                answer.set_result(bytes(line).split(b"\n", 1)[0] if data else None)

        # TCSAFLUSH, as ssh's readpassphrase: keys typed before the prompt are not taken;
        # so the echo goes off before the prompt shows, and nothing typed after it is lost.
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, quiet)
        # The start of the line, erased: a prompt after a meter reading would run into it.
        os.write(self.fd, f"\r\x1b[K{safe_text(prompt)}".encode())
        loop.add_reader(self.fd, readable)
        try:
            got = await answer
        finally:
            line[:] = bytes(len(line))  # the typed passphrase, not left in this buffer
            loop.remove_reader(self.fd)
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            os.write(self.fd, b"\n")  # the Enter that was not echoed
        return got.decode("utf-8", "replace").rstrip("\r") if got is not None else None


async def cmd_cp(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio
    import signal

    from fiotray.core.transfer import CopyJob
    from fiotray.ops import transfer

    sources = [transfer.parse_remote(a) for a in args.sources]
    dest = transfer.parse_remote(args.dest)
    remote_sources = [s for s in sources if s is not None]
    if dest is not None and not remote_sources:
        plan = await transfer.plan_to(
            ctx.services,
            args.factory,
            dest.device,
            args.sources,
            dest.path,
            route=args.route,
            recursive=args.recursive,
        )
    elif dest is None and len(sources) == 1 and remote_sources:
        (src,) = remote_sources
        plan = await transfer.plan_from(
            ctx.services,
            args.factory,
            src.device,
            src.path,
            args.dest,
            route=args.route,
            recursive=args.recursive,
        )
    else:
        print(
            "fiotray cp: give local sources and a DEVICE:PATH destination, or one "
            "DEVICE:PATH source and a local destination (a local path with ':' is "
            "written ./a:b).",
            file=sys.stderr,
        )
        return 2

    # A key's passphrase is asked on the terminal, as ssh would (--quiet too: it is no
    # output); without one the failure says to add the key to the agent.
    ask = _TerminalAsk.open()
    job = CopyJob(plan, ask)
    meter = _Meter() if not args.quiet and sys.stderr.isatty() else None
    loop = asyncio.get_running_loop()
    # Ctrl-C stops scp (in a session of its own, it does not get the terminal's SIGINT)
    # and the partial copy is reported, instead of asyncio's bare KeyboardInterrupt.
    loop.add_signal_handler(signal.SIGINT, job.cancel)
    try:
        result = await transfer.run(plan, meter, job)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if ask is not None:
            ask.close()
        if meter is not None:
            meter.end()
    if result.cancelled:
        print(f"fiotray: interrupted. {result.partial_message()}", file=sys.stderr)
        return 130
    if not args.quiet:
        ctx.out(result.summary())
    return 0


def register(sub: Any, factory_option: Any) -> None:
    p = command(
        sub,
        "cp",
        help="copy files to or from a device through the VPN",
        usage="fiotray cp [options] SRC... DEVICE:PATH | fiotray cp [options] DEVICE:PATH DEST",
        description=(
            "Copy local files to a device, or a file from a device, with scp over the\n"
            "same route and SSH settings as `fiotray ssh` (host key checks included).\n"
            "One side is DEVICE:PATH; a path on the device is a file name, never shell\n"
            "text. A local path with ':' is written ./a:b. A route through the tunnel\n"
            "is refused while the tunnel is down. Progress shows on standard error when\n"
            "it is a terminal; Ctrl-C stops the copy and says how much arrived (the\n"
            "partial file is kept). A key's passphrase is asked on the terminal (once\n"
            "for both hops of the jump route); with no terminal, the key must be in\n"
            "the agent (ssh-add) or unencrypted."
        ),
        examples=(
            "fiotray cp image.wic.gz gateway-01:/var/tmp/",
            "fiotray cp -r logs/ gateway-01:/tmp/logs --factory acme",
            "fiotray cp gateway-01:/var/log/messages .",
            "fiotray cp gateway-01:/etc/os-release ./os-release --route public --quiet",
        ),
        codes=(0, 1, 2, 3),
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="local files, or one DEVICE:PATH")
    p.add_argument("dest", metavar="DEST", help="DEVICE:PATH, or a local file or directory")
    factory_option(p)
    p.add_argument(
        "--route",
        choices=ROUTES,
        help="as for `fiotray ssh`: jump (default), direct or public",
    )
    p.add_argument(
        "--recursive", "-r", action="store_true", help="copy directories and their contents"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary line")
    p.set_defaults(func=cmd_cp)
