"""Domain errors.

Services raise these; the HTTP layer maps each to one status code and one error body, the CLI to
a message and a non-zero exit code. Keeping them here lets every layer agree without importing
each other.
"""

from __future__ import annotations

from typing import Any


class XueliangError(Exception):
    """Base of every error the platform reports to a user."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(XueliangError):
    code = "invalid"


class NotFound(XueliangError):
    code = "not_found"


class Conflict(XueliangError):
    code = "conflict"


class AuthenticationFailed(XueliangError):
    code = "unauthenticated"


class AccountLocked(XueliangError):
    code = "locked"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class PermissionDenied(XueliangError):
    """The principal may not do this, or the target lies outside its area scope.

    Both cases answer the same way (HTTP 403) so that a scoped user learns nothing more from
    an out-of-scope target than from a forbidden action.
    """

    code = "forbidden"


class ConfigError(XueliangError):
    code = "config"
