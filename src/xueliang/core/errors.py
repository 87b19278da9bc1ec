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


class DeviceError(InvalidInput):
    """A device the caller named could not be used: the request was understood, the device
    failed it. Answered as invalid input (HTTP 422) with its own code, never as a server error:
    the fault lies with the address, the credentials or the device, not with the platform."""

    code = "device_error"


class DeviceUnreachable(DeviceError):
    """No answer: refused, no route, name not resolved, or the deadline passed."""

    code = "device_unreachable"


class DeviceAuthFailed(DeviceError):
    """The device refused the credentials (HTTP 401/403, or a SOAP NotAuthorized fault)."""

    code = "device_unauthorized"


class DeviceProtocolError(DeviceError):
    """The device answered, but not with what the protocol says (malformed SOAP, a fault)."""

    code = "device_protocol"
