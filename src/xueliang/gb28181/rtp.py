"""RTP for GB/T 28181 media, sans-I/O: packets, receive-side ordering, TCP framing, packetising.

- ``RtpPacket``: parse and serialise one packet (RFC 3550 section 5.1).
- ``RtpReceiver``: puts one stream's packets back in order within a small window, counts and
  reports loss, drops duplicates, follows sequence wrap-around and notices a new SSRC.
- ``Rfc4571Decoder`` / ``frame_rfc4571``: RTP over TCP with a 2-byte length before each packet
  (RFC 4571), the framing GB/T 28181 uses for TCP media, active and passive. The interop notes
  list no device sending RTSP-style ``$`` interleaving on GB media ports, so it is not accepted.
- ``RtpPacketizer``: a payload (one PS unit of a frame) cut into packets of at most one MTU,
  for the simulator and for cascading streams to an upper platform.

No sockets and no clocks: bytes in, packets and events out; a caller that wants loss declared
after a quiet period calls ``RtpReceiver.flush`` from its own timer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from xueliang.gb28181.errors import ParseError

RTP_VERSION = 2
HEADER_SIZE = 12
MAX_TCP_FRAME = 0xFFFF

_HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXTENSION = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    # Header extension: (profile-defined 16 bits, data whose length is a multiple of 4).
    extension: tuple[int, bytes] | None = None
    # Number of padding bytes (the last one included); 0 for none. Kept so a packet
    # round-trips byte for byte.
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        size = len(data)
        if size < HEADER_SIZE:
            raise ParseError(f"RTP: packet of {size} bytes is shorter than the 12-byte header")
        b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise ParseError(f"RTP: version {b0 >> 6} at byte 0, expected 2")
        offset = HEADER_SIZE
        csrcs: tuple[int, ...] = ()
        cc = b0 & 0x0F
        if cc:
            offset += 4 * cc
            if offset > size:
                raise ParseError(f"RTP: {cc} CSRCs run past the end of a {size}-byte packet")
            csrcs = struct.unpack_from(f"!{cc}I", data, HEADER_SIZE)
        extension = None
        if b0 & 0x10:
            if offset + 4 > size:
                raise ParseError(f"RTP: header extension at byte {offset} is truncated")
            profile, words = _EXTENSION.unpack_from(data, offset)
            start = offset + 4
            offset = start + 4 * words
            if offset > size:
                raise ParseError(
                    f"RTP: header extension of {words} words at byte {start} runs past the end"
                )
            extension = (profile, bytes(data[start:offset]))
        end = size
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or size - padding < offset:
                raise ParseError(f"RTP: padding count {padding} does not fit a {size}-byte packet")
            end = size - padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(b1 & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def serialise(self) -> bytes:
        if len(self.csrcs) > 15:
            raise ValueError("RTP: at most 15 CSRCs")
        b0 = (RTP_VERSION << 6) | len(self.csrcs)
        parts = []
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts.append(
            _HEADER.pack(
                b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF
            )
        )
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise ValueError("RTP: header extension length must be a multiple of 4 bytes")
            parts.append(_EXTENSION.pack(profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            if not 0 < self.padding < 256:
                raise ValueError("RTP: padding must be 1 to 255 bytes")
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


# Events from RtpReceiver.push/flush, in the order the caller should act on them.


@dataclass(frozen=True, slots=True)
class Received:
    """The next packet of the stream, in sequence order."""

    packet: RtpPacket


@dataclass(frozen=True, slots=True)
class Lost:
    """Packets that will not come (given up on after the reorder window): whatever spans the
    gap (a frame, a PS pack) is broken. ``count`` is 0 when the sequence jumped so far that
    the stream is taken to have restarted."""

    count: int


@dataclass(frozen=True, slots=True)
class SsrcChanged:
    """The stream's SSRC is not what it was (or not the one negotiated in the SDP y= line):
    the sender restarted or another one took the port. Sequence tracking starts again."""

    old: int | None
    new: int


RtpEvent = Received | Lost | SsrcChanged


@dataclass(slots=True)
class ReceiverStats:
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0  # arrived after its gap was already reported lost
    reordered: int = 0
    ssrc_changes: int = 0
    restarts: int = 0
    foreign: int = 0  # packets of another SSRC dropped while it was on probation


# RFC 3550 appendix A.1: a jump this far ahead, or this far back, is not reordering.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


@dataclass(slots=True)
class _Probation:
    ssrc: int
    next_seq: int
    packets: list[RtpPacket] = field(default_factory=list)


class RtpReceiver:
    """Receive-side ordering for one RTP stream (one SSRC at a time).

    ``window``: how many packets beyond a gap are held waiting for it to fill before it is
    declared lost (32 packets is a few ms at 4 Mbit/s, enough for reordering on a LAN or a
    bonded link without adding noticeable latency). ``expected_ssrc``: the SDP y= value if
    any; the first SSRC seen is accepted either way (devices often send another one), and an
    ``SsrcChanged`` event tells the caller to log the mismatch. A later SSRC must send
    ``probation`` packets in sequence before the stream switches to it, so one stray packet
    from another sender cannot reset the stream.
    """

    def __init__(
        self, *, window: int = 32, expected_ssrc: int | None = None, probation: int = 2
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.expected_ssrc = expected_ssrc
        self.probation = probation
        self.ssrc: int | None = None
        self.stats = ReceiverStats()
        self._expected = 0  # extended sequence number of the next packet to release
        self._held: dict[int, RtpPacket] = {}
        self._highest = -1  # highest extended sequence held
        self._bad_seq: int | None = None
        self._candidate: _Probation | None = None
        self._recent_lost: set[int] = set()

    def push(self, packet: RtpPacket) -> list[RtpEvent]:
        if packet.ssrc != self.ssrc:
            return self._other_ssrc(packet)
        self._candidate = None
        seq = packet.sequence
        delta = (seq - self._expected) & 0xFFFF
        if delta == 0 and not self._held:
            # The common case: the next packet, nothing waiting.
            self._expected += 1
            self._bad_seq = None
            self.stats.received += 1
            return [Received(packet)]
        if delta >= 0x8000:
            delta -= 0x10000
        ext = self._expected + delta
        if delta < 0:
            if -delta > MAX_MISORDER:
                return self._jump(packet)
            if ext in self._recent_lost:
                self._recent_lost.discard(ext)
                self.stats.late += 1
            else:
                self.stats.duplicates += 1
            return []
        if delta > MAX_DROPOUT:
            return self._jump(packet)
        self._bad_seq = None
        if ext in self._held:
            self.stats.duplicates += 1
            return []
        self.stats.received += 1
        if ext < self._highest:
            self.stats.reordered += 1
        self._held[ext] = packet
        if ext > self._highest:
            self._highest = ext
        return self._release(force=False)

    def flush(self) -> list[RtpEvent]:
        """Release everything held, reporting the gaps as lost: for a caller's timer when
        packets stop arriving, or at the end of a stream."""
        return self._release(force=True)

    def _release(self, *, force: bool) -> list[RtpEvent]:
        events: list[RtpEvent] = []
        held = self._held
        while held:
            packet = held.pop(self._expected, None)
            if packet is not None:
                events.append(Received(packet))
                self._expected += 1
                continue
            if not force and self._highest - self._expected <= self.window:
                break
            first = min(held)
            missing = first - self._expected
            self.stats.lost += missing
            if len(self._recent_lost) > 4 * self.window:
                self._recent_lost.clear()
            self._recent_lost.update(range(self._expected, first))
            events.append(Lost(missing))
            self._expected = first
        return events

    def _jump(self, packet: RtpPacket) -> list[RtpEvent]:
        # RFC 3550 A.1: a big jump is believed only when the next packet follows it; a
        # sender that restarted its sequence does exactly that, a stray packet does not.
        if self._bad_seq != packet.sequence:
            self._bad_seq = (packet.sequence + 1) & 0xFFFF
            return []
        events = self.flush()
        self.stats.restarts += 1
        events.append(Lost(0))
        self._start(packet)
        events.append(Received(packet))
        return events

    def _other_ssrc(self, packet: RtpPacket) -> list[RtpEvent]:
        if self.ssrc is None:
            old = self.expected_ssrc
            self._start(packet)
            events: list[RtpEvent] = []
            if old is not None and old != packet.ssrc:
                self.stats.ssrc_changes += 1
                events.append(SsrcChanged(old, packet.ssrc))
            events.append(Received(packet))
            return events
        candidate = self._candidate
        if (
            candidate is None
            or candidate.ssrc != packet.ssrc
            or candidate.next_seq != packet.sequence
        ):
            candidate = self._candidate = _Probation(packet.ssrc, packet.sequence)
        candidate.packets.append(packet)
        candidate.next_seq = (packet.sequence + 1) & 0xFFFF
        if len(candidate.packets) < self.probation:
            self.stats.foreign += 1
            return []
        self.stats.foreign -= len(candidate.packets) - 1
        events = self.flush()
        old = self.ssrc
        self.stats.ssrc_changes += 1
        events.append(SsrcChanged(old, packet.ssrc))
        self._start(candidate.packets[0])
        events.append(Received(candidate.packets[0]))
        for later in candidate.packets[1:]:
            events.extend(self.push(later))
        self._candidate = None
        return events

    def _start(self, packet: RtpPacket) -> None:
        self.ssrc = packet.ssrc
        self._held.clear()
        self._recent_lost.clear()
        self._bad_seq = None
        self._expected = packet.sequence + 1
        self._highest = packet.sequence
        self.stats.received += 1


def frame_rfc4571(packet: bytes) -> bytes:
    """One RTP (or RTCP) packet with its RFC 4571 length prefix, for a TCP media connection."""
    if len(packet) > MAX_TCP_FRAME:
        raise ValueError(f"RFC 4571: a packet of {len(packet)} bytes does not fit a frame")
    return _U16.pack(len(packet)) + packet


class Rfc4571Decoder:
    """Cuts a TCP byte stream into the packets framed in it, whatever the reads look like:
    a length prefix split across reads, several packets in one read, a packet in many."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        size = len(view)
        out: list[bytes] = []
        pos = 0
        while pos + 2 <= size:
            end = pos + 2 + ((view[pos] << 8) | view[pos + 1])
            if end > size:
                break
            if end > pos + 2:  # a zero length frame carries nothing; skip it
                out.append(bytes(view[pos + 2 : end]))
            pos = end
        if view is buffer:
            del buffer[:pos]
        elif pos < size:
            buffer += data[pos:]
        return out

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)


class RtpPacketizer:
    """Cuts payloads (one frame's PS bytes each) into RTP packets of at most ``mtu`` bytes;
    the marker bit is set on a frame's last packet, as GB/T 28181 devices do."""

    def __init__(
        self, *, ssrc: int, payload_type: int = 96, mtu: int = 1400, sequence: int = 0
    ) -> None:
        if mtu <= HEADER_SIZE:
            raise ValueError(f"MTU {mtu} leaves no room for a payload")
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type & 0x7F
        self.mtu = mtu
        self.sequence = sequence & 0xFFFF

    def packets(self, payload: bytes, timestamp: int, *, marker: bool = True) -> list[RtpPacket]:
        size = self.mtu - HEADER_SIZE
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        out = []
        last = len(chunks) - 1
        for n, chunk in enumerate(chunks):
            out.append(
                RtpPacket(
                    payload_type=self.payload_type,
                    sequence=self.sequence,
                    timestamp=timestamp & 0xFFFFFFFF,
                    ssrc=self.ssrc,
                    payload=chunk,
                    marker=marker and n == last,
                )
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
        return out

    def packetize(self, payload: bytes, timestamp: int, *, marker: bool = True) -> list[bytes]:
        """As ``packets``, serialised: ready for a UDP socket (or ``frame_rfc4571`` for TCP)."""
        # The header is built once per payload; only the sequence (and marker) change.
        size = self.mtu - HEADER_SIZE
        ts = timestamp & 0xFFFFFFFF
        pack = _HEADER.pack
        pt = self.payload_type
        out = []
        n = max(1, -(-len(payload) // size))
        for i in range(n):
            b1 = pt | 0x80 if marker and i == n - 1 else pt
            out.append(
                pack(0x80, b1, self.sequence, ts, self.ssrc) + payload[i * size : (i + 1) * size]
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
        return out
