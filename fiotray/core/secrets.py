"""The one place where fiotray keeps secrets: the system keyring, never a file.

Client secrets, OAuth token sets and API tokens live in a secure keyring
backend (Secret Service, libsecret, KWallet, macOS Keychain, Windows Credential
Locker). Plain-text or "encrypted file" backends are refused on purpose: fioctl
already keeps secrets in a world-readable YAML file and fiotray exists partly to
avoid that.

The backend is chosen lazily per ``SecretStore`` instance instead of through
keyring's process-wide cache (``keyring.get_keyring()``): a Secret Service that
comes up after the app started (or a test that starts a private one) is then
seen, and ``PYTHON_KEYRING_BACKEND`` is still honoured.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiotray.core.errors import SecretsUnavailable

# keyring (with its entry-point scan, ~8 MiB) is imported on first use of the keyring,
# not by creating a SecretStore: the tray app starts without it.
if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

SERVICE = "fiotray"

SECRET_KINDS = frozenset({"client_secret", "oauth_token", "api_token"})

# (module, class) of keyring's own backends that keep secrets in an OS secret
# store. Matched exactly: a subclass or a third-party plugin could store anywhere.
_SECURE_BACKENDS: tuple[tuple[str, str], ...] = (
    ("keyring.backends.SecretService", "Keyring"),
    ("keyring.backends.libsecret", "Keyring"),
    ("keyring.backends.kwallet", "DBusKeyring"),
    ("keyring.backends.kwallet", "DBusKeyringKWallet4"),
    ("keyring.backends.macOS", "Keyring"),
    ("keyring.backends.Windows", "WinVaultKeyring"),
)
_CHAINER = ("keyring.backends.chainer", "ChainerBackend")
_NO_STORAGE = {("keyring.backends.fail", "Keyring"), ("keyring.backends.null", "Keyring")}

_NO_BACKEND_HELP = (
    "install and start a Secret Service provider (for example gnome-keyring, or KeePassXC "
    "with Secret Service integration enabled) and log in to a desktop session"
)
_LOCKED_MSG = "The system keyring is locked: unlock your keyring (login collection) and try again."
_NO_COLLECTION_MSG = (
    "The system keyring has no default collection that can be opened: create a keyring and "
    "make it the default (for example a 'login' keyring in GNOME Passwords and Keys, or a "
    "KeePassXC database exposed through Secret Service), unlock it and try again."
)


def factory_key(factory: str, what: str) -> str:
    """Keyring entry name of one secret of a factory sign-in."""
    if what not in SECRET_KINDS:
        raise ValueError(f"unknown secret kind {what!r}")
    if not factory:
        raise ValueError("empty factory name")
    # The "profile/" prefix is the key users' secrets are already stored under: never change it.
    return f"profile/{factory}/{what}"


def tunnel_key(tunnel: str) -> str:
    """Keyring entry name of a tunnel's WireGuard private key."""
    if not tunnel:
        raise ValueError("empty tunnel name")
    return f"tunnel/{tunnel}/private_key"


def _ident(obj: Any) -> tuple[str, str]:
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__module__, cls.__qualname__


def _dotted(obj: Any) -> str:
    return ".".join(_ident(obj))


def _display_name(backend: KeyringBackend) -> str:
    return str(getattr(type(backend), "name", type(backend).__name__))


def _is_secure(backend: KeyringBackend) -> bool:
    return _ident(backend) in _SECURE_BACKENDS


def _on_linux_like() -> bool:
    return sys.platform not in ("darwin", "win32", "cygwin")


def _no_backend_message() -> str:
    if _on_linux_like() and not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return (
            "No secure secret storage is available because DBUS_SESSION_BUS_ADDRESS is unset "
            f"(no desktop session bus): {_NO_BACKEND_HELP}, then try again."
        )
    return f"No secure secret storage is available: {_NO_BACKEND_HELP}, then try again."


def _viable_priority(cls: type[KeyringBackend]) -> float | None:
    """The backend's priority, or None when it cannot work here.

    keyring's priority property raises when the backend is unusable (no D-Bus,
    no daemon, missing library); that is the documented viability test.
    """
    try:
        return float(cls.priority)
    except Exception:  # any failure just means "not this one"
        return None


def _could_work_here(module_name: str) -> bool:
    """False for a backend that keyring itself reports unviable on this platform.

    Importing is what costs: keyring's macOS module looks for the Security framework with
    ctypes.util.find_library, which on Linux runs ldconfig and a compiler (~25 ms), only for
    its priority to raise "macOS required"; the Windows module tries pywin32. Skipping them
    where they cannot work chooses the same backend, without the cost.
    """
    if module_name == "keyring.backends.macOS":
        return sys.platform == "darwin"  # its priority: platform.system() == "Darwin"
    if module_name == "keyring.backends.Windows":
        # Its priority needs the Windows API through pywin32 or pywin32-ctypes, which
        # load no DLL on Linux or macOS.
        return not sys.platform.startswith(("linux", "darwin"))
    return True


def _detect_secure_backend() -> KeyringBackend | None:
    """Best viable secure backend, checked now (not keyring's once-per-process list)."""
    best: tuple[float, KeyringBackend] | None = None
    for module_name, class_name in _SECURE_BACKENDS:
        if not _could_work_here(module_name):
            continue
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:
            log.debug("secrets: %s.%s not importable: %s", module_name, class_name, exc)
            continue
        priority = _viable_priority(cls)
        if priority is None or priority <= 0:
            continue
        try:
            instance = cls()
        except Exception as exc:
            log.debug("secrets: %s.%s unusable: %s", module_name, class_name, exc)
            continue
        if best is None or priority > best[0]:
            best = (priority, instance)
    return best[1] if best else None


def _explicit_backend() -> tuple[KeyringBackend | None, str]:
    """The backend the user configured for keyring, and where it was configured.

    Goes through keyring's own loaders so ``PYTHON_KEYRING_BACKEND`` and
    ``keyringrc.cfg`` mean exactly what they mean for every other keyring user.
    """
    import keyring.core

    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        source = "PYTHON_KEYRING_BACKEND"
        name = os.environ["PYTHON_KEYRING_BACKEND"][:120]
        try:
            return keyring.core.load_env(), source
        except Exception as exc:
            raise SecretsUnavailable(
                f"The keyring backend {name} chosen by {source} cannot be used here "
                f"({type(exc).__name__}): unset {source} and {_NO_BACKEND_HELP}."
            ) from None
    source = "keyringrc.cfg"
    try:
        return keyring.core.load_config(), source
    except Exception as exc:
        raise SecretsUnavailable(
            f"The keyring backend chosen in keyring's {source} cannot be used here "
            f"({type(exc).__name__}): fix or remove that setting and {_NO_BACKEND_HELP}."
        ) from None


def _choose_backend() -> KeyringBackend:
    explicit, source = _explicit_backend()
    if explicit is None:
        found = _detect_secure_backend()
        if found is None:
            raise SecretsUnavailable(_no_backend_message())
        return found
    ident = _ident(explicit)
    if ident == _CHAINER:
        # The chainer reads from every viable backend, insecure ones included,
        # and keeps its member list from the first call in the process: use the
        # best secure backend viable now, directly.
        found = _detect_secure_backend()
        if found is None:
            raise SecretsUnavailable(_no_backend_message())
        return found
    if ident in _NO_STORAGE:
        raise SecretsUnavailable(
            f"{source} selects {_dotted(explicit)}, which cannot store secrets: "
            f"remove that setting and {_NO_BACKEND_HELP}."
        )
    if not _is_secure(explicit):
        kind = (
            "keeps secrets in a file"
            if ident[0].startswith("keyrings.alt")
            else "is not a known secure system keyring"
        )
        raise SecretsUnavailable(
            f"{source} selects {_dotted(explicit)}, which {kind}: fiotray stores secrets only in "
            "the Secret Service, KWallet, macOS Keychain or Windows Credential Locker, so remove "
            "that setting or choose one of those."
        )
    return explicit


class SecretStore:
    """Secrets of fiotray in the system keyring, under one keyring service name.

    The blocking methods may wait for an unlock prompt on a desktop: call the
    ``a*`` variants from the event loop, they run in a worker thread.
    """

    def __init__(self, service: str = SERVICE, *, index: Path | None = None) -> None:
        """`index`: a file naming (never holding) every entry this store made, because a
        keyring cannot be listed: it is how an entry left without its factory or tunnel
        (a crash, a hand-edited file) is found and removed."""
        self.service = service
        self._backend: KeyringBackend | None = None
        self._init_lock = threading.Lock()
        self._index = _Index(index) if index is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service={self.service!r})"

    def _get_backend(self) -> KeyringBackend:
        # Only a success is cached: a keyring started later is found on the next call.
        with self._init_lock:
            if self._backend is None:
                self._backend = _choose_backend()
                log.debug("secrets: using keyring backend %s", _dotted(self._backend))
            return self._backend

    @property
    def backend_name(self) -> str:
        """Display name of the keyring in use, or "unavailable" (never raises)."""
        try:
            return _display_name(self._get_backend())
        except SecretsUnavailable:
            return "unavailable"

    def check(self) -> None:
        """Raise SecretsUnavailable unless a secure keyring answers a lookup now."""
        self.get("check/availability")

    def _call(self, op: str, key: str, *args: str) -> Any:
        import keyring.errors

        backend = self._get_backend()
        method = getattr(backend, f"{op}_password")
        try:
            return method(self.service, key, *args)
        except keyring.errors.PasswordDeleteError:
            # Only delete raises this, and a missing entry is what delete wants.
            return None
        except keyring.errors.KeyringLocked:
            raise SecretsUnavailable(_LOCKED_MSG) from None
        except keyring.errors.InitError:
            raise SecretsUnavailable(_NO_COLLECTION_MSG) from None
        except keyring.errors.NoKeyringError:
            raise SecretsUnavailable(_no_backend_message()) from None
        except keyring.errors.PasswordSetError:
            raise SecretsUnavailable(
                "The system keyring refused to store the secret; unlock it and try again."
            ) from None
        except Exception as exc:
            # D-Bus errors from secretstorage/jeepney (daemon gone, bus closed)
            # escape keyring's wrappers; their text is not shown because it is
            # not written for users, the type name is enough to report a bug.
            log.debug("secrets: %s %s failed: %s", op, key, type(exc).__name__)
            raise SecretsUnavailable(
                f"The system keyring ({_display_name(backend)}) failed ({type(exc).__name__}): "
                "make sure it is running and unlocked, and try again."
            ) from None

    def get(self, key: str) -> str | None:
        _check_key(key)
        value = self._call("get", key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str) -> None:
        _check_key(key)
        if not isinstance(value, str):
            raise TypeError("secret values must be str")
        if self._index is not None:
            self._index.add(key)  # first: an entry is never made without being named
        self._call("set", key, value)

    def delete(self, key: str) -> None:
        _check_key(key)
        self._call("delete", key)
        if self._index is not None:
            self._index.discard(key)

    def entry_names(self) -> list[str]:
        """Names of the entries this store made and has not deleted (no keyring call)."""
        return self._index.read() if self._index is not None else []

    async def aget(self, key: str) -> str | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.set, key, value)

    async def adelete(self, key: str) -> None:
        await asyncio.to_thread(self.delete, key)


class MemorySecretStore(SecretStore):
    """Secrets kept in this process only: for explicit "session only" use and tests.

    Never chosen automatically as a fallback for a missing keyring.
    """

    def __init__(self, service: str = SERVICE) -> None:
        super().__init__(service)
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def backend_name(self) -> str:
        return "memory (this session only)"

    def check(self) -> None:
        return None

    def get(self, key: str) -> str | None:
        _check_key(key)
        with self._lock:
            return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        _check_key(key)
        if not isinstance(value, str):
            raise TypeError("secret values must be str")
        with self._lock:
            self._values[key] = value

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._lock:
            self._values.pop(key, None)

    def keys(self) -> list[str]:
        """Names of the stored entries (for tests and diagnostics; values stay inside)."""
        with self._lock:
            return sorted(self._values)

    def entry_names(self) -> list[str]:
        return self.keys()


class _Index:
    """`{"version": 1, "keys": [...]}`: names of keyring entries, under the store's lock."""

    def __init__(self, path: Path) -> None:
        from fiotray.core.store import JsonFile

        self._file: JsonFile[list[str]] = JsonFile(
            path,
            parse=self._parse,
            dump=lambda keys: {"version": 1, "keys": sorted(set(keys))},
            default=list,
            # A convenience, not the secrets: a broken index is started afresh.
            invalid=lambda reason: [],
        )

    @staticmethod
    def _parse(data: Any) -> list[str]:
        keys = data.get("keys") if isinstance(data, dict) else None
        return [k for k in keys if isinstance(k, str) and k] if isinstance(keys, list) else []

    def read(self) -> list[str]:
        return sorted(self._file.read())

    def add(self, key: str) -> None:
        self._file.update(lambda keys: keys if key in keys else [*keys, key])

    def discard(self, key: str) -> None:
        self._file.update(lambda keys: [k for k in keys if k != key])


def owner_of(key: str) -> tuple[str, str] | None:
    """("factory", name) or ("tunnel", name) for an entry name fiotray makes."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "profile" and parts[2] in SECRET_KINDS:
        return "factory", parts[1]
    if len(parts) == 3 and parts[0] == "tunnel" and parts[2] == "private_key":
        return "tunnel", parts[1]
    return None


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("secret key must be a non-empty str")
