"""SDP (RFC 4566) as GB/T 28181 uses it in INVITE offers and answers.

The GB profile adds lines RFC 4566 does not know: ``y=`` (the 10-digit SSRC, first digit 0 for
live, 1 for history) and ``f=`` (the media description ``v/codec/resolution/frame rate/rate
type/bit rate`` then ``a/codec/bit rate/sample rate``), and gives meaning to ``s=`` (Play,
Playback, Download, Talk), ``u=`` (``channel:parameter``) and ``t=`` (the playback range).

Parsing is lenient because devices are: CRLF or LF, blanks around ``=`` and between fields, lines
the profile does not know, missing ``v=``/``o=``/``t=``, ``y=`` with odd padding. What cannot be
made sense of raises ParseError; an SSRC that does not match the offer is reported by
:func:`answer_target`, never raised.
"""

from xueliang.gb28181.sdp.model import (
    DEFAULT_VIDEO_FORMATS,
    F_AUDIO_CODECS,
    F_RESOLUTIONS,
    F_VIDEO_CODECS,
    H264,
    H265,
    MPEG4,
    NTP_UNIX_OFFSET,
    PS,
    UNSPECIFIED_ADDRESS,
    Direction,
    Media,
    MediaFormat,
    Origin,
    RtpMap,
    SessionDescription,
    SessionType,
    Setup,
    Transport,
)
from xueliang.gb28181.sdp.negotiation import (
    Answer,
    MediaTarget,
    Offer,
    answer_for,
    answer_target,
    make_ssrc,
    ssrc_matches,
)
from xueliang.gb28181.sdp.parser import MAX_SDP_BYTES, parse

__all__ = [
    "DEFAULT_VIDEO_FORMATS",
    "F_AUDIO_CODECS",
    "F_RESOLUTIONS",
    "F_VIDEO_CODECS",
    "H264",
    "H265",
    "MAX_SDP_BYTES",
    "MPEG4",
    "NTP_UNIX_OFFSET",
    "PS",
    "UNSPECIFIED_ADDRESS",
    "Answer",
    "Direction",
    "Media",
    "MediaFormat",
    "MediaTarget",
    "Offer",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "SessionType",
    "Setup",
    "Transport",
    "answer_for",
    "answer_target",
    "make_ssrc",
    "parse",
    "ssrc_matches",
]
