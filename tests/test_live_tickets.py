"""Live tickets: signed by the platform, checked by a media worker with nothing but the key."""

from __future__ import annotations

import pytest

from xueliang.media.tickets import TICKET_SECONDS, TicketError, TicketVerifier, issue

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_a_ticket_admits_its_viewer_to_its_channel_once() -> None:
    token, ticket = issue(KEY, "34020000001320000001", "duty1", now=NOW)
    verifier = TicketVerifier(KEY)
    granted = verifier.verify(token, "34020000001320000001", now=NOW + 1)
    assert granted == ticket
    assert granted.subject == "duty1" and granted.expires == NOW + TICKET_SECONDS
    with pytest.raises(TicketError, match="used already"):
        verifier.verify(token, "34020000001320000001", now=NOW + 2)


@pytest.mark.parametrize(
    ("mangle", "channel", "at", "message"),
    [
        (lambda t: t, "34020000001320000002", NOW, "another channel"),
        (lambda t: t, "34020000001320000001", NOW + TICKET_SECONDS + 1, "expired"),
        (
            lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),
            "34020000001320000001",
            NOW,
            "signature",
        ),
        (lambda t: "x" + t, "34020000001320000001", NOW, "signature"),
        (lambda t: t.replace(".", ""), "34020000001320000001", NOW, "malformed"),
        (lambda t: "", "34020000001320000001", NOW, "required"),
        (lambda t: t + "." * 600, "34020000001320000001", NOW, "malformed"),
    ],
)
def test_bad_tickets_are_refused_with_the_reason(
    mangle: object, channel: str, at: float, message: str
) -> None:
    token, _ = issue(KEY, "34020000001320000001", "duty1", now=NOW)
    assert callable(mangle)
    with pytest.raises(TicketError, match=message):
        TicketVerifier(KEY).verify(mangle(token), channel, now=at)


def test_a_ticket_signed_with_another_key_is_refused() -> None:
    token, _ = issue(b"other" * 8, "c1", "duty1", now=NOW)
    with pytest.raises(TicketError, match="signature"):
        TicketVerifier(KEY).verify(token, "c1", now=NOW)


def test_used_tickets_are_forgotten_once_expired() -> None:
    verifier = TicketVerifier(KEY)
    for i in range(100):
        token, _ = issue(KEY, "c1", f"u{i}", now=NOW, ttl=1)
        verifier.verify(token, "c1", now=NOW)
    token, _ = issue(KEY, "c1", "late", now=NOW + 10)
    verifier.verify(token, "c1", now=NOW + 10)
    assert len(verifier._used) == 1  # the 100 expired ones are gone: memory stays bounded
