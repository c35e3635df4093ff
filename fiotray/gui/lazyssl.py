"""asyncio without `ssl` until something in the app imports `ssl`.

`import asyncio` imports `ssl`, and with it OpenSSL's libraries: 4.4 MiB resident
in a tray app that idles all day and may not make an HTTPS call for hours (a third
of what the tray adds to a bare Qt tray icon). asyncio needs `ssl` only for TLS
it does itself (`create_connection(ssl=...)`, `start_tls`); fiotray's HTTPS goes
through httpx, which does TLS over `ssl.MemoryBIO` itself.

So the tray imports asyncio with `ssl` hidden, and a one-shot import hook hands
`ssl` to asyncio's modules the moment anything imports it, before that import
returns: from then on asyncio is exactly as if `ssl` had been there all along.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

# The asyncio modules that bind `ssl` at import time (CPython 3.10-3.13).
ASYNCIO_SSL_USERS = ("asyncio.base_events", "asyncio.selector_events", "asyncio.sslproto")


def give_asyncio_ssl(ssl: ModuleType) -> None:
    """What asyncio's modules would have set had `ssl` imported with them."""
    for name in ASYNCIO_SSL_USERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "ssl", ssl) is None:
            module.ssl = ssl  # type: ignore[attr-defined]
    sslproto = sys.modules.get("asyncio.sslproto")
    if sslproto is not None and not hasattr(sslproto, "SSLAgainErrors"):
        sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)  # type: ignore[attr-defined]


class _ThenGive(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        give_asyncio_ssl(module)


class _SslHook(importlib.abc.MetaPathFinder):
    """Finds `ssl` the normal way, once, and has its loader hand it to asyncio."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "ssl":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenGive(spec.loader)  # type: ignore[assignment]
        return spec


@contextlib.contextmanager
def asyncio_without_ssl() -> Iterator[None]:
    """Import asyncio (and what sits on it) inside this block to leave `ssl` out for now."""
    if "ssl" in sys.modules or "asyncio" in sys.modules:
        yield  # too late or not needed: asyncio has (or will get) ssl the usual way
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # makes `import ssl` fail
    try:
        yield
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]
        sys.meta_path.insert(0, _SslHook())


__all__ = ["asyncio_without_ssl", "give_asyncio_ssl"]
