"""The one error the protocol cores raise for bad input.

Every parser here (SIP, SDP, MANSCDP, RTP, PS) raises ParseError, or a subclass, for bytes it
cannot make sense of, and nothing else: the I/O layers catch exactly this, answer or drop the
message, and keep serving every other device.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Input that does not follow the protocol; the message says what and where."""
