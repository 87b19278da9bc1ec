"""MPEG-2 Program Stream (ISO/IEC 13818-1 section 2.5) as GB/T 28181 carries it, sans-I/O.

``PsDemuxer`` takes the RTP payloads of one stream, in order, and yields whole frames: video
access units in Annex B with PTS, DTS (90 kHz) and a key-frame flag read from the NAL types,
and audio frames. ``PsMuxer`` (ps_mux.py) does the reverse for the simulator and for cascade.

What devices send, and what this is built to accept:

- Hikvision and most IPCs: every frame starts with a pack header; a key frame also carries a
  system header and a program stream map (PSM) before it; each NAL unit of the frame sits in
  its own PES packet (SPS, PPS, SEI, then the slice, cut into PES of at most 64 KiB). Audio
  comes as one PES per G.711 frame, with or without a pack header of its own.
- FFmpeg (``-f mpeg``): MPEG-1 pack headers, 2 KiB packs, no PSM; PES packets cut anywhere in
  the stream, so one PES may end one frame and begin the next, and a frame starting inside a
  PES has no PTS of its own.

So frames are delimited by the video syntax, not by PES or pack boundaries: a new access unit
begins where H.264 (7.4.1.2.3) or H.265 (7.4.2.4.4) says it does (a delimiter or parameter
set after a slice, or a slice that is the first of its picture). A PES's PTS belongs to the
first access unit that starts in it (2.7.5); frames without one get the previous frame's plus
one frame interval. The codec comes from the PSM (stream_type), never from the RTP payload
type; without a PSM it is recognised from the first parameter set.

After loss the caller says so (``discontinuity``): the broken frame is dropped and parsing
starts again at the next pack header. Garbage where a PS start code should be does the same
on its own; ``feed`` never raises.

The package, one job a module: ``syntax`` (start codes, stream ids, stream types, the PES
timestamp field), ``frames`` (what comes out), ``nal`` (H.264/H.265 access unit starts, codec
sniffing), ``clock`` (timestamp fill-in and unwrap), ``tracks`` (frame assembly per stream)
and ``demuxer`` (``PsDemuxer``, the state machine over the byte stream).
"""

from xueliang.gb28181.ps.demuxer import MAX_BUFFER, PsDemuxer
from xueliang.gb28181.ps.frames import DemuxStats, Frame, PsStream
from xueliang.gb28181.ps.nal import sniff_video_codec
from xueliang.gb28181.ps.syntax import (
    _START,
    AUDIO_ID,
    CODEC_STREAM_TYPES,
    PACK_HEADER,
    PADDING_STREAM,
    PRIVATE_STREAM_1,
    PROGRAM_END,
    PROGRAM_STREAM_MAP,
    PTS_WRAP,
    STREAM_TYPES,
    SYSTEM_HEADER,
    VIDEO_ID,
)
from xueliang.gb28181.ps.tracks import DEFAULT_VIDEO_INTERVAL, MAX_FRAME

__all__ = [
    "AUDIO_ID",
    "CODEC_STREAM_TYPES",
    "DEFAULT_VIDEO_INTERVAL",
    "MAX_BUFFER",
    "MAX_FRAME",
    "PACK_HEADER",
    "PADDING_STREAM",
    "PRIVATE_STREAM_1",
    "PROGRAM_END",
    "PROGRAM_STREAM_MAP",
    "PTS_WRAP",
    "STREAM_TYPES",
    "SYSTEM_HEADER",
    "VIDEO_ID",
    "_START",
    "DemuxStats",
    "Frame",
    "PsDemuxer",
    "PsStream",
    "sniff_video_codec",
]
