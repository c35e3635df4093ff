"""Exceptions whose message is one sentence a person can act on.

Every failure that reaches the CLI, the GUI or the MCP server is a FiotrayError: its
``str()`` is shown as is, so it must never contain a secret. Its ``code`` is for
programs (a view deciding what to offer, a script, an AI assistant): a front end
branches on the code, never on the sentence.
"""

from __future__ import annotations

from typing import ClassVar


class FiotrayError(Exception):
    """A failure with a one-line, secret-free message for the user."""

    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code


class ApiError(FiotrayError):
    """The FoundriesFactory API refused a request or answered something unusable."""

    default_code = "api"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class NotFoundError(ApiError):
    """404: the device, factory or config does not exist (or is not visible to us)."""

    default_code = "not-found"


class AuthError(FiotrayError):
    """Credentials are missing, expired for good or revoked: the user must sign in again."""

    default_code = "auth"


class SecretsUnavailable(FiotrayError):
    """No secure secret storage (no Secret Service, locked, no collection)."""

    default_code = "secrets-unavailable"


class SetupError(FiotrayError):
    """What the user set up is missing, ambiguous or malformed: a factory sign-in, a
    tunnel, or the file that keeps them."""

    default_code = "setup"


class VpnError(FiotrayError):
    """A device or factory VPN operation cannot be done as asked."""

    default_code = "vpn"


# Codes a front end acts on, beyond each class's default.
NO_PUBLIC_KEY = "no-public-key"  # VPN cannot be enabled: the device never registered a key
VPN_NOT_ENABLED = "vpn-not-enabled"  # SSH asked for a device without a VPN address
TUNNEL_DOWN = "tunnel-down"  # the route goes through a tunnel that is down
TUNNEL_UP = "tunnel-up"  # the tunnel must be down for this (remove)
TUNNEL_FOREIGN = "tunnel-foreign"  # the interface is up, but fiotray did not bring it up
HELPER_DISMISSED = "helper-dismissed"  # the user dismissed the password prompt
HELPER_NOT_AUTHORIZED = "helper-not-authorized"  # polkit refused, or no agent to ask
HELPER_MISSING = "helper-missing"  # the helper, pkexec or a tool it runs is not installed
HELPER_BAD_CONFIG = "helper-bad-config"  # the helper refused the config
HELPER_CONFLICT = "helper-conflict"  # the interface exists / not fiotray's
HELPER_FAILED = "helper-failed"  # wg-quick or a tool failed
