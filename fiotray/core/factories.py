"""Non-secret settings of each factory the user signed in to.

Stored as JSON in the user's config dir. Secrets never go here: they live in the
keyring (see ``fiotray.core.secrets``), keyed by the factory name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args
from urllib.parse import urlsplit

import platformdirs

from fiotray.core.errors import SetupError
from fiotray.core.store import JsonFile

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.foundries.io"
DEFAULT_OAUTH_URL = "https://app.foundries.io/oauth"

AuthKind = Literal["token", "oauth"]
_AUTH_KINDS: tuple[str, ...] = get_args(AuthKind)
FILE_VERSION = 1
_FACTORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MAX_FACTORY_LEN = 64

# What the factories file holds: the default factory (or None) and each factory by name.
Factories = tuple[str | None, dict[str, "Factory"]]


@dataclass
class Factory:
    factory: str
    auth: AuthKind
    api_url: str = DEFAULT_API_URL
    oauth_url: str = DEFAULT_OAUTH_URL
    client_id: str | None = None

    @property
    def name(self) -> str:
        return self.factory

    def validated(self) -> Factory:
        """A copy with every field checked and URLs normalised; SetupError otherwise."""
        factory = validate_factory_name(self.factory)
        if self.auth not in _AUTH_KINDS:
            raise SetupError(
                f"Factory {factory} has auth {self.auth!r}; it must be 'token' or 'oauth'."
            )
        if self.client_id is not None and (
            not isinstance(self.client_id, str) or not self.client_id.strip()
        ):
            raise SetupError(f"Factory {factory} has an empty or invalid client id.")
        return Factory(
            factory=factory,
            auth=self.auth,
            api_url=validate_url(self.api_url, "API URL"),
            oauth_url=validate_url(self.oauth_url, "OAuth URL"),
            client_id=self.client_id,
        )


def validate_factory_name(name: str) -> str:
    """The factory name if it is a plausible FoundriesFactory name; SetupError otherwise."""
    if not isinstance(name, str) or not name:
        raise SetupError("The factory name is empty.")
    if len(name) > _MAX_FACTORY_LEN:
        raise SetupError(f"The factory name is longer than {_MAX_FACTORY_LEN} characters.")
    if not _FACTORY_RE.fullmatch(name):
        raise SetupError(
            f"The factory name {name!r} is invalid: use letters, digits, '-' and '_', "
            "starting with a letter or digit."
        )
    return name


def _display_url(url: str) -> str:
    """scheme://host[:port] of a URL, for messages: the rest may hold credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "(unparsable URL)"


def validate_url(url: str, what: str) -> str:
    """An http(s) URL with a host and without credentials, query or fragment.

    Returns it without trailing "/". The message never echoes more than
    scheme://host of what was given, since a bad URL may carry a password.
    """
    if not isinstance(url, str) or not url.strip():
        raise SetupError(f"The {what} is empty.")
    if url != url.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise SetupError(f"The {what} contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise SetupError(f"The {what} is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SetupError(f"The {what} must start with https:// (or http:// for local tests).")
    if not host:
        raise SetupError(f"The {what} has no host name.")
    if "@" in parts.netloc:
        raise SetupError(
            f"The {what} must not contain a user name or password; fiotray keeps credentials "
            "in the keyring."
        )
    if "?" in url or "#" in url:
        raise SetupError(f"The {what} ({_display_url(url)}...) must not have a query or fragment.")
    return url.rstrip("/")


def api_url_from_oauth(oauth_url: str) -> str:
    """The API base URL that belongs to an OAuth base URL (fioctl's rule).

    https://app.foundries.io/oauth -> https://api.foundries.io; a host whose
    first label is not "app" keeps its scheme://host[:port].
    """
    parts = urlsplit(validate_url(oauth_url, "OAuth URL"))
    host = parts.hostname or ""
    labels = host.split(".")
    if labels[0] == "app" and len(labels) > 1:
        host = ".".join(["api", *labels[1:]])
    elif ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def _default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("fiotray"))


class FactoryStore:
    """The factories file: ``{"version": 1, "default": F, "profiles": {F: {...}}}``.

    Its name, profiles.json, and its "profiles" key are what existing configs hold: keep them.

    Every change rereads the file and replaces it atomically, under the file's lock
    (see ``fiotray.core.store``). A file that cannot be parsed is reported and left
    alone: nothing is written until the user fixes or removes it.
    """

    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = Path(config_dir) if config_dir is not None else _default_config_dir()
        self.path = self.config_dir / "profiles.json"
        self._file: JsonFile[Factories] = JsonFile(
            self.path,
            parse=self._parse,
            dump=self._dump,
            default=lambda: (None, {}),
            invalid=self._refuse,
            error=SetupError,
        )

    # -- reading -----------------------------------------------------------------

    def _load(self) -> Factories:
        return self._file.read()

    def _parse(self, data: Any) -> Factories:
        if not isinstance(data, dict):
            raise self._malformed("the top level is not an object")
        version = data.get("version")
        if version != FILE_VERSION:
            raise self._malformed(f"unsupported version {version!r} (expected {FILE_VERSION})")
        entries = data.get("profiles", {})
        if not isinstance(entries, dict):
            raise self._malformed("'profiles' is not an object")
        factories: dict[str, Factory] = {}
        for factory, entry in entries.items():
            factories[factory] = self._parse_entry(factory, entry)
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise self._malformed("'default' is not a string")
        if default is not None and default not in factories:
            log.warning("factories: default %s is not a saved factory; ignoring it", default)
            default = None
        return default, factories

    def _refuse(self, what: str) -> NoReturn:
        raise self._malformed(what)

    def _malformed(self, what: str) -> SetupError:
        return SetupError(
            f"The factories file {self.path} is malformed ({what}); fix or remove it, "
            "nothing was changed."
        )

    def _parse_entry(self, factory: Any, entry: Any) -> Factory:
        if not isinstance(entry, dict):
            raise self._malformed(f"factory {factory!r} is not an object")
        client_id = entry.get("client_id")
        for field_name in ("auth", "api_url", "oauth_url"):
            if not isinstance(entry.get(field_name, ""), str):
                raise self._malformed(f"factory {factory!r} field {field_name!r} is not a string")
        if client_id is not None and not isinstance(client_id, str):
            raise self._malformed(f"factory {factory!r} field 'client_id' is not a string")
        # Unknown keys are dropped on purpose: a hand-added secret must not survive a rewrite.
        signed_in = Factory(
            factory=factory,
            auth=entry.get("auth", ""),
            api_url=entry.get("api_url", DEFAULT_API_URL),
            oauth_url=entry.get("oauth_url", DEFAULT_OAUTH_URL),
            client_id=client_id,
        )
        try:
            return signed_in.validated()
        except SetupError as exc:
            raise self._malformed(f"factory {factory!r}: {str(exc).rstrip('.')}") from None

    def list(self) -> list[Factory]:
        _, factories = self._load()
        return [factories[name] for name in sorted(factories)]

    def default_name(self) -> str | None:
        default, _ = self._load()
        return default

    def get(self, factory: str | None = None) -> Factory:
        default, factories = self._load()
        if factory is None:
            if default is not None:
                return factories[default]
            if len(factories) == 1:
                return next(iter(factories.values()))
            if not factories:
                raise SetupError("no factory configured; run `fiotray login --factory F ...`")
            names = ", ".join(sorted(factories))
            raise SetupError(
                f"several factories configured ({names}): pass --factory or set a default"
            )
        try:
            return factories[factory]
        except KeyError:
            raise unknown_factory(factory, factories) from None

    # -- writing -----------------------------------------------------------------

    def save(self, factory: Factory, *, make_default: bool = False) -> None:
        factory = factory.validated()

        def change(current: Factories) -> Factories:
            default, factories = current
            factories[factory.factory] = factory
            if make_default or (default is None and len(factories) == 1):
                default = factory.factory
            return default, factories

        self._file.update(change)

    def remove(self, factory: str) -> None:
        def change(current: Factories) -> Factories:
            default, factories = current
            if factory not in factories:
                raise unknown_factory(factory, factories)
            del factories[factory]
            return (None if default == factory else default), factories

        self._file.update(change)

    def set_default(self, factory: str) -> None:
        def change(current: Factories) -> Factories:
            _, factories = current
            if factory not in factories:
                raise unknown_factory(factory, factories)
            return factory, factories

        self._file.update(change)

    @staticmethod
    def _dump(current: Factories) -> dict[str, Any]:
        default, factories = current
        return {
            "version": FILE_VERSION,
            "default": default,
            "profiles": {
                name: {
                    "auth": p.auth,
                    "api_url": p.api_url,
                    "oauth_url": p.oauth_url,
                    "client_id": p.client_id,
                }
                for name, p in sorted(factories.items())
            },
        }


def unknown_factory(name: str, factories: Iterable[str]) -> SetupError:
    """What is said of a factory that is not signed in: which are, the closest name, and
    how to sign in."""
    import difflib

    known = sorted(factories)
    text = f"no factory {name[:60]} configured"
    login = f"`fiotray login --factory {name[:60]} ...`"
    if not known:
        return SetupError(f"{text}; sign in with {login}")
    text += f" (signed in: {', '.join(known)})"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return SetupError(f"{text}; did you mean {close[0]}? Or sign in with {login}")
    return SetupError(f"{text}; sign in with {login}")
