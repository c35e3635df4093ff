"""asyncio imported without ssl gets it back, complete, when anything imports ssl."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fiotray.demo.tlsca import make_tls_files

CHILD = textwrap.dedent(
    """
    import sys
    from fiotray.gui.lazyssl import asyncio_without_ssl

    with asyncio_without_ssl():
        import asyncio
        import qasync  # noqa: F401 - what the tray imports there
    assert "ssl" not in sys.modules, "ssl was loaded with asyncio"
    import asyncio.base_events as be, asyncio.selector_events as se, asyncio.sslproto as sp
    assert be.ssl is None and se.ssl is None and sp.ssl is None

    import ssl  # as httpx does, at the first HTTPS client

    assert be.ssl is ssl and se.ssl is ssl and sp.ssl is ssl
    assert sp.SSLAgainErrors == (ssl.SSLWantReadError, ssl.SSLSyscallError)

    # asyncio's own TLS (create_server/open_connection with ssl=) works as usual.
    ca, cert, key = sys.argv[1:4]

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)

        async def echo(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client_ctx = ssl.create_default_context(cafile=ca)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
        )
        writer.write(b"over tls\\n")
        line = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return line

    assert asyncio.run(main()) == b"over tls\\n"
    print("ok")
    """
)


def test_asyncio_gets_ssl_back_and_its_tls_works(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(files.ca_cert),
            str(files.server_cert),
            str(files.server_key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_no_effect_once_ssl_is_loaded() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ssl, sys\n"
            "from fiotray.gui.lazyssl import asyncio_without_ssl\n"
            "with asyncio_without_ssl():\n"
            "    import asyncio.sslproto as sp\n"
            "assert sp.ssl is ssl and sys.modules['ssl'] is ssl\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
