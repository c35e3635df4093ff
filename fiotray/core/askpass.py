"""The askpass program of a copy: ssh runs it with its prompt; it asks fiotray, which asks
the person (core.transfer's `CopyJob`), and prints the answer for ssh.

ssh runs ``$SSH_ASKPASS PROMPT`` and reads the answer from its stdout (a failing exit
means no answer). This program sends the pid of the ssh that asks and the prompt over the
copy's private Unix socket, and gets back ``+`` and the answer, or ``-``.

Standard library only, and nothing imported at start but what it uses: it runs as
``python -I -S askpass.py SOCKET PROMPT`` from source (no site, no user environment), or,
in the bundled app where there is no python, as the fiotray executable itself with
``FIOTRAY_ASKPASS_SOCKET`` set (fiotray/__main__.py checks that first).
"""

from __future__ import annotations

import os
import socket
import sys

SOCKET_ENV = "FIOTRAY_ASKPASS_SOCKET"


def client(socket_path: str, prompt: str) -> int:
    """Ask over `socket_path`; the answer on stdout and 0, or 1 for none."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        sock.sendall(f"{os.getppid()}\n{prompt}".encode("utf-8", "surrogateescape"))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data.startswith(b"+"):
        return 1
    sys.stdout.buffer.write(data[1:] + b"\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    """``askpass.py SOCKET [PROMPT]``, as the program ssh runs from source."""
    if len(argv) < 2:
        return 1
    try:
        return client(argv[1], argv[2] if len(argv) > 2 else "")
    except OSError:
        return 1  # fiotray is gone (the copy ended): no answer


def bundled_main(argv: list[str]) -> int:
    """The bundled executable run by ssh: the socket from the environment."""
    try:
        return client(os.environ[SOCKET_ENV], argv[1] if len(argv) > 1 else "")
    except (OSError, KeyError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
