"""RTP payloads into access units: H.264 (RFC 6184), H.265 (RFC 7798), AAC (RFC 3640), G.711.

Each depacketizer takes one RTP packet (the bytes of an interleaved frame, header included) and
returns the access units it completed: video as Annex B (start codes, what FFmpeg's raw readers
and the MP4 muxer take) with a key-frame flag; audio as raw frames. A picture ends at the marker
bit, or when a packet with a new timestamp arrives (a lost marker). A picture missing a packet
(a sequence gap, or a fragment without its start) is dropped whole rather than passed on
broken; ``dropped`` counts them.

This is the per-packet path of every RTSP channel: header fields are read in place with
``struct``, payloads stay views into the received bytes until a picture is joined once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from struct import Struct, unpack_from

START = b"\x00\x00\x00\x01"
_SEQ_TS = Struct("!HI").unpack_from
_NONE: tuple[Unit, ...] = ()


@dataclass(slots=True)
class Unit:
    data: bytes
    timestamp: int  # RTP clock, as sent (32 bits, wrapping)
    keyframe: bool


def rtp_payload(packet: memoryview) -> tuple[int, int, bool, memoryview] | None:
    """(sequence number, timestamp, marker, payload) of an RTP packet; None when it is not one."""
    n = len(packet)
    if n < 12:
        return None
    b0 = packet[0]
    if b0 >> 6 != 2:
        return None
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if n < start + 4:
            return None
        start += 4 + 4 * unpack_from("!H", packet, start + 2)[0]
    end = n
    if b0 & 0x20:  # padding: its length is the last byte
        end -= packet[n - 1]
    if end <= start:
        return None
    seq, ts = unpack_from("!HI", packet, 2)
    return seq, ts, bool(packet[1] & 0x80), packet[start:end]


class VideoDepacketizer:
    """Shared by H.264 and H.265: sequence checks, picture assembly, parameter sets."""

    codec = ""
    header_size = 1

    def __init__(self, parameter_sets: Sequence[bytes] = ()) -> None:
        self._parts: list[bytes | memoryview] = []
        self._ts: int | None = None
        self._key = False
        self._has_params = False
        self._broken = False
        self._in_fragment = False
        self._seq: int | None = None
        # The latest parameter sets (from the SDP, then in-band), put in front of a key frame
        # that comes without them: a recording or a viewer starts at any key frame.
        self._params: dict[int, bytes] = {}
        for nal in parameter_sets:
            if nal:
                self._params[self._type(nal)] = bytes(nal)
        self.dropped = 0
        self.units = 0

    @property
    def parameter_sets(self) -> list[bytes]:
        return [self._params[t] for t in sorted(self._params)]

    # --- per codec -----------------------------------------------------------------------------

    def _type(self, nal: bytes | memoryview) -> int:
        raise NotImplementedError

    def _is_key(self, nal_type: int) -> bool:
        raise NotImplementedError

    def _is_param(self, nal_type: int) -> bool:
        raise NotImplementedError

    def _payload(self, payload: memoryview) -> None:
        raise NotImplementedError

    # --- common --------------------------------------------------------------------------------

    def push(self, packet: memoryview) -> Sequence[Unit]:
        parsed = rtp_payload(packet)
        if parsed is None:
            return _NONE
        seq, ts, marker, payload = parsed
        out: Sequence[Unit] = _NONE
        if self._ts is not None and ts != self._ts and self._parts:
            out = self._finish()  # the marker was lost: the new timestamp ends the picture
        last = self._seq
        self._seq = seq
        if last is not None and seq != (last + 1) & 0xFFFF:
            self._broken = True  # a packet of this picture (or the last one's end) is lost
            self._in_fragment = False
        self._ts = ts
        self._payload(payload)
        if marker:
            done = self._finish()
            out = (*out, *done) if out else done
        return out

    def push_batch(self, data: bytes, spans: list[int]) -> list[Unit]:
        """``push`` for every packet of a read at once (``message.Batch``), with the same
        result. The common case is read inline: a plain 12-byte header (no padding, extension
        or CSRCs) and the middle or end of a fragmented NAL unit, ~90% of a 1080p stream's
        packets; anything else goes through ``push`` and ``_payload``."""
        out: list[Unit] = []
        view = memoryview(data)
        hevc = self.header_size == 2
        fu_kind = 49 if hevc else 28
        fu_at = 2 if hevc else 1  # the FU header's offset in the payload
        for i in range(0, len(spans), 2):
            p, end = spans[i], spans[i + 1]
            if data[p] != 0x80 or end - p < 15:
                out += self.push(view[p:end])
                continue
            seq, ts = _SEQ_TS(data, p + 2)
            if ts != self._ts and self._parts and self._ts is not None:
                out += self._finish()
            last = self._seq
            self._seq = seq
            if last is not None and seq != (last + 1) & 0xFFFF:
                self._broken = True
                self._in_fragment = False
            self._ts = ts
            start = p + 12
            kind = (data[start] >> 1) & 0x3F if hevc else data[start] & 0x1F
            fu = data[start + fu_at]
            if kind == fu_kind and not fu & 0x80 and self._in_fragment:
                self._parts.append(view[start + fu_at + 1 : end])
                if fu & 0x40:
                    self._in_fragment = False
            else:
                self._payload(view[start:end])
            if data[p + 1] & 0x80:
                out += self._finish()
        return out

    def _nal(self, nal: bytes | memoryview) -> None:
        """One whole NAL unit of the current picture."""
        t = self._type(nal)
        if self._is_param(t):
            self._params[t] = bytes(nal)
            self._has_params = True
        elif self._is_key(t):
            self._key = True
        self._parts += (START, nal)

    def _fragment(self, header: Callable[[], bytes], nal_type: int, fu: int) -> None:
        """The FU header ``fu`` of a fragment of a NAL unit of ``nal_type``: at the start, the
        unit begins (with its rebuilt ``header``); without one, the picture is broken."""
        if fu & 0x80:
            if self._is_param(nal_type):
                self._has_params = True  # a fragmented parameter set (huge): rare, kept as sent
            elif self._is_key(nal_type):
                self._key = True
            self._parts += (START, header())
            self._in_fragment = True
        elif not self._in_fragment:
            self._broken = True  # a middle or end without its start
            return
        if fu & 0x40:
            self._in_fragment = False

    def _aggregate(self, payload: memoryview, pos: int) -> None:
        """STAP-A (H.264) or AP (H.265) from ``pos``: 16-bit sizes, each before a NAL unit."""
        n = len(payload)
        while pos + 2 <= n:
            size = unpack_from("!H", payload, pos)[0]
            if size == 0 or pos + 2 + size > n:
                self._broken = True
                return
            self._nal(payload[pos + 2 : pos + 2 + size])
            pos += 2 + size

    def _finish(self) -> Sequence[Unit]:
        parts, ts, key, broken = self._parts, self._ts, self._key, self._broken
        has_params = self._has_params
        self._parts, self._key, self._broken, self._has_params = [], False, False, False
        self._in_fragment = False
        if broken:
            self.dropped += 1
            return _NONE
        if not parts or ts is None:
            return _NONE
        if key and not has_params and self._params:
            front: list[bytes | memoryview] = []
            for nal in self.parameter_sets:
                front += (START, nal)
            parts = front + parts
        self.units += 1
        return (Unit(b"".join(parts), ts, key),)


class H264Depacketizer(VideoDepacketizer):
    codec = "h264"

    def _type(self, nal: bytes | memoryview) -> int:
        return nal[0] & 0x1F

    def _is_key(self, nal_type: int) -> bool:
        return nal_type == 5

    def _is_param(self, nal_type: int) -> bool:
        return nal_type in (7, 8)

    def _payload(self, payload: memoryview) -> None:
        t = payload[0] & 0x1F
        if 1 <= t <= 23:
            self._nal(payload)
        elif t == 28:  # FU-A
            if len(payload) < 2:
                self._broken = True
                return
            fu = payload[1]
            # The NAL header rebuilt from the FU indicator and the FU header.
            self._fragment(lambda: bytes(((payload[0] & 0xE0) | (fu & 0x1F),)), fu & 0x1F, fu)
            if not self._broken:
                self._parts.append(payload[2:])
        elif t == 24:  # STAP-A: 16-bit sizes, each followed by a NAL unit
            self._aggregate(payload, 1)
        else:  # STAP-B, MTAP, FU-B: interleaved mode, which no camera here uses
            self._broken = True


class H265Depacketizer(VideoDepacketizer):
    codec = "hevc"
    header_size = 2

    def _type(self, nal: bytes | memoryview) -> int:
        return (nal[0] >> 1) & 0x3F

    def _is_key(self, nal_type: int) -> bool:
        return 16 <= nal_type <= 21  # IRAP: BLA, IDR, CRA

    def _is_param(self, nal_type: int) -> bool:
        return nal_type in (32, 33, 34)

    def _payload(self, payload: memoryview) -> None:
        if len(payload) < 3:
            self._broken = True
            return
        t = (payload[0] >> 1) & 0x3F
        if t < 48:
            self._nal(payload)
        elif t == 49:  # FU
            fu = payload[2]
            nal_type = fu & 0x3F
            self._fragment(
                lambda: bytes(((payload[0] & 0x81) | (nal_type << 1), payload[1])), nal_type, fu
            )
            if not self._broken:
                self._parts.append(payload[3:])
        elif t == 48:  # AP (no DONL: sprop-max-don-diff is 0 for every camera here)
            self._aggregate(payload, 2)
        else:  # PACI (50) and reserved types
            self._broken = True


def h264_parameter_sets(fmtp: dict[str, str]) -> list[bytes]:
    """sprop-parameter-sets: base64 NAL units separated by commas."""
    return _b64_list(fmtp.get("sprop-parameter-sets", ""))


def h265_parameter_sets(fmtp: dict[str, str]) -> list[bytes]:
    out: list[bytes] = []
    for name in ("sprop-vps", "sprop-sps", "sprop-pps"):
        out += _b64_list(fmtp.get(name, ""))
    return out


def _b64_list(text: str) -> list[bytes]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(base64.b64decode(item + "=" * (-len(item) % 4)))
        except (binascii.Error, ValueError):
            continue  # a garbled set: the in-band ones will do
    return out


# --- audio -------------------------------------------------------------------------------------

AAC_SAMPLES = 1024
# MPEG-4 audio sampling frequency indexes (ISO/IEC 14496-3 1.6.3.4), as ADTS and
# AudioSpecificConfig use them.
AAC_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)


@dataclass(frozen=True)
class AacConfig:
    object_type: int
    rate_index: int
    sample_rate: int
    channels: int
    audio_specific_config: bytes

    def adts(self, frame: bytes) -> bytes:
        """``frame`` behind an ADTS header (what FFmpeg's AAC reader takes to make a template)."""
        length = len(frame) + 7
        profile = (self.object_type - 1) & 0x3
        header = bytes(
            (
                0xFF,
                0xF1,
                (profile << 6) | (self.rate_index << 2) | ((self.channels >> 2) & 0x1),
                ((self.channels & 0x3) << 6) | ((length >> 11) & 0x3),
                (length >> 3) & 0xFF,
                ((length & 0x7) << 5) | 0x1F,
                0xFC,
            )
        )
        return header + frame


def aac_config(hex_config: str) -> AacConfig | None:
    """The AudioSpecificConfig in fmtp ``config=`` (hex); None when absent or not AAC."""
    try:
        asc = bytes.fromhex(hex_config)
    except ValueError:
        return None
    if len(asc) < 2:
        return None
    object_type = asc[0] >> 3
    rate_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7)
    channels = (asc[1] >> 3) & 0x0F
    if object_type not in (1, 2, 3, 4) or rate_index >= len(AAC_RATES) or not 1 <= channels <= 7:
        return None  # explicit rates, PCE channel layouts, HE-AAC signalling: not from cameras
    return AacConfig(object_type, rate_index, AAC_RATES[rate_index], channels, asc)


class AacDepacketizer:
    """RFC 3640 (mpeg4-generic, AAC-hbr and AAC-lbr): AU headers, then the frames."""

    def __init__(self, fmtp: dict[str, str]) -> None:
        def number(name: str, default: int) -> int:
            value = fmtp.get(name, "")
            return int(value) if value.isdigit() else default

        self.size_length = number("sizelength", 13)
        self.index_length = number("indexlength", 3)
        self.index_delta_length = number("indexdeltalength", 3)
        self._fragment: list[bytes] = []
        self._fragment_size = 0
        self._seq: int | None = None
        self.dropped = 0

    def push(self, packet: memoryview) -> Sequence[Unit]:
        parsed = rtp_payload(packet)
        if parsed is None:
            return _NONE
        seq, ts, marker, payload = parsed
        if self._seq is not None and seq != (self._seq + 1) & 0xFFFF:
            self._fragment, self._fragment_size = [], 0
        self._seq = seq
        if len(payload) < 2:
            return _NONE
        header_bits = unpack_from("!H", payload, 0)[0]
        header_bytes = (header_bits + 7) // 8
        data = payload[2 + header_bytes :]
        sizes = self._sizes(payload[2 : 2 + header_bytes], header_bits)
        if sizes is None:
            self.dropped += 1
            return _NONE
        if len(sizes) == 1 and sizes[0] > len(data):  # one frame over several packets
            self._fragment.append(bytes(data))
            self._fragment_size = sizes[0]
            if not marker:
                return _NONE
            whole = b"".join(self._fragment)
            self._fragment = []
            if len(whole) != self._fragment_size:
                self.dropped += 1
                return _NONE
            return (Unit(whole, ts, True),)
        self._fragment = []
        out = []
        pos = 0
        for i, size in enumerate(sizes):
            if pos + size > len(data):
                self.dropped += 1
                break
            out.append(
                Unit(bytes(data[pos : pos + size]), (ts + i * AAC_SAMPLES) & 0xFFFFFFFF, True)
            )
            pos += size
        return out

    def _sizes(self, headers: memoryview, bits: int) -> list[int] | None:
        value = int.from_bytes(headers, "big")
        total = len(headers) * 8
        sizes = []
        pos = 0
        first = True
        while pos < bits:
            index_bits = self.index_length if first else self.index_delta_length
            width = self.size_length + index_bits
            if width == 0 or pos + width > bits:
                return None
            shift = total - pos - self.size_length
            sizes.append((value >> shift) & ((1 << self.size_length) - 1))
            pos += width
            first = False
        return sizes or None


class G711Depacketizer:
    """PCMA/PCMU: the payload is the samples."""

    def __init__(self) -> None:
        self.dropped = 0

    def push(self, packet: memoryview) -> Sequence[Unit]:
        parsed = rtp_payload(packet)
        if parsed is None:
            return _NONE
        _seq, ts, _marker, payload = parsed
        return (Unit(bytes(payload), ts, True),)
