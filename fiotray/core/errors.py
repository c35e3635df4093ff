"""Exceptions whose message is one sentence a person can act on.

Every failure that reaches the CLI or the GUI is a FiotrayError: its ``str()``
is shown as is, so it must never contain a secret.
"""

from __future__ import annotations


class FiotrayError(Exception):
    """A failure with a one-line, secret-free message for the user."""


class ApiError(FiotrayError):
    """The FoundriesFactory API refused a request or answered something unusable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ApiError):
    """404: the device, factory or config does not exist (or is not visible to us)."""


class AuthError(FiotrayError):
    """Credentials are missing, expired for good or revoked: the user must sign in again."""


class SecretsUnavailable(FiotrayError):
    """No secure secret storage (no Secret Service, locked, no collection)."""


class ProfileError(FiotrayError):
    """A factory profile is missing, ambiguous or malformed."""


class VpnError(FiotrayError):
    """A device or factory VPN operation cannot be done as asked."""
