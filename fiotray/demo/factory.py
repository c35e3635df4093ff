"""The embedded demo factory: the fake API with a few dozen varied devices.

The tray's demo makes its session at start but serves the factory only once
something talks to it: the fake API (an HTTP server, the factory's devices, their
keys) stays out of a tray that idles in the background until the devices window or
a sign-in asks for it. Its address is known from the start: the listening socket is
opened at once, and a client connecting early waits in its queue.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from typing import TYPE_CHECKING

from fiotray.core.factories import Factory
from fiotray.core.secrets import MemorySecretStore, factory_key

if TYPE_CHECKING:
    from fiotray.demo.fakeapi import FakeApiServer

DEMO_FACTORY = "demo-factory"
DEMO_DEVICES = 36
# A demo device "checks in" and applies a VPN change this long after it was written.
DEMO_APPLY_SECONDS = 15.0
# The demo's VPN server, as its factory's `wireguard-server` file says.
DEMO_SERVER_ENDPOINT = "vpn.example.test:5555"
DEMO_SERVER_ADDRESS = "10.42.42.1"
# Key pairs from RFC 7748's X25519 test vectors (section 6.1): public by design, for a
# tunnel that is only simulated. Making one would load cryptography (~7 MiB resident)
# into a tray process that may never connect.
DEMO_LAPTOP_PRIVATE_KEY = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
DEMO_LAPTOP_PUBLIC_KEY = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
DEMO_SERVER_PUBLIC_KEY = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="


class DemoSession:
    """The demo factory's sign-in and secrets now; its API server on first use."""

    def __init__(self, devices: int = DEMO_DEVICES, latency: float = 0.0) -> None:
        self.devices = devices
        self.latency = latency
        self._sock: socket.socket | None = socket.create_server(("127.0.0.1", 0), backlog=128)
        url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.factory = Factory(
            factory=DEMO_FACTORY, auth="token", api_url=url, oauth_url=url + "/oauth"
        )
        # Not secrets.token_urlsafe: `secrets` loads hashlib and with it OpenSSL.
        self._token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self.secrets = MemorySecretStore()
        self.secrets.set(factory_key(DEMO_FACTORY, "api_token"), self._token)
        self._server: FakeApiServer | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def server(self) -> FakeApiServer:
        """The running fake API (started here on first use; safe from any thread)."""
        with self._lock:
            if self._server is None:
                if self._closed:
                    raise RuntimeError("the demo session is closed")
                self._server = self._start()
            return self._server

    def _start(self) -> FakeApiServer:
        from fiotray.demo.fakeapi import FakeApiServer, FakeFactory

        factory = FakeFactory(DEMO_FACTORY)
        factory.populate(self.devices, seed=7)
        factory.set_wireguard_server(
            endpoint=DEMO_SERVER_ENDPOINT,
            server_address=DEMO_SERVER_ADDRESS,
            pubkey=DEMO_SERVER_PUBLIC_KEY,
        )
        factory.auto_apply_after = DEMO_APPLY_SECONDS
        factory.add_api_token(self._token)
        sock, self._sock = self._sock, None
        return FakeApiServer(factory, latency=self.latency, sock=sock).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
            sock, self._sock = self._sock, None
        if server is not None:
            server.stop()
        if sock is not None:
            sock.close()


def start_demo(devices: int = DEMO_DEVICES, latency: float = 0.0) -> DemoSession:
    """A demo session with its API already serving (the CLI's --demo, the tests)."""
    session = DemoSession(devices, latency)
    session.server  # noqa: B018 - starts it
    return session
