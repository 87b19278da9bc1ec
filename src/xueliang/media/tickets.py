"""Live tickets: the platform's short-lived, single-use permission to watch one channel, which
a media worker checks without asking anybody.

The platform authenticates the viewer, checks the channel is in their area, writes the audit
record and only then issues a ticket; the browser presents it to the worker that runs the
channel, which streams to it directly (no relay through the platform). A ticket is
``payload.signature``, both base64url: the payload names the channel, the viewer and the expiry,
and the signature is an HMAC-SHA256 under a key the platform hands its workers over their
private pipe. Workers remember the tickets they accepted until those expire, so a ticket
copied from a URL cannot be used a second time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

# Long enough for a browser on a slow link to connect, short enough that a ticket seen in a
# log is useless by the time anybody reads it.
TICKET_SECONDS = 30.0
MAX_TICKET_CHARS = 512


class TicketError(ValueError):
    """The ticket is malformed, forged, expired, for another channel or already used."""


@dataclass(frozen=True, slots=True)
class LiveTicket:
    channel_id: str
    subject: str  # who watches (user name), for the worker's log
    expires: float  # Unix time
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def issue(
    key: bytes, channel_id: str, subject: str, *, now: float, ttl: float = TICKET_SECONDS
) -> tuple[str, LiveTicket]:
    ticket = LiveTicket(channel_id, subject, now + ttl, secrets.token_urlsafe(12))
    body = json.dumps(
        {"c": ticket.channel_id, "s": ticket.subject, "e": ticket.expires, "n": ticket.nonce},
        separators=(",", ":"),
    )
    payload = _b64(body.encode())
    return f"{payload}.{_sign(key, payload)}", ticket


class TicketVerifier:
    """A worker's side: checks signature, channel and expiry, and refuses a ticket twice."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._used: dict[str, float] = {}  # nonce -> expiry

    def verify(self, token: str, channel_id: str, *, now: float) -> LiveTicket:
        if not token:
            raise TicketError("a ticket is required")
        if len(token) > MAX_TICKET_CHARS or token.count(".") != 1:
            raise TicketError("malformed ticket")
        payload, signature = token.split(".")
        if not hmac.compare_digest(signature, _sign(self._key, payload)):
            raise TicketError("ticket signature does not match")
        try:
            data = json.loads(_unb64(payload))
            ticket = LiveTicket(str(data["c"]), str(data["s"]), float(data["e"]), str(data["n"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TicketError("malformed ticket") from exc
        if ticket.channel_id != channel_id:
            raise TicketError("the ticket is for another channel")
        if ticket.expires < now:
            raise TicketError("the ticket has expired")
        self._forget_expired(now)
        if ticket.nonce in self._used:
            raise TicketError("the ticket was used already")
        self._used[ticket.nonce] = ticket.expires
        return ticket

    def _forget_expired(self, now: float) -> None:
        if len(self._used) < 64:
            return
        for nonce, expires in list(self._used.items()):
            if expires < now:
                del self._used[nonce]
