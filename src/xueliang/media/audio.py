"""Camera audio for MP4 recordings: which codecs are copied, and G.711 transcoded to AAC-LC.

Most IP cameras and GB/T 28181 devices send G.711 (A-law, sometimes µ-law) at 8 kHz mono, which
FFmpeg's MP4 muxer refuses. ``G711ToAac`` decodes it with FFmpeg's decoder and encodes AAC-LC
(mono, the camera's rate where AAC has it, else 16 kHz; 24 kbit/s) into a stream of an MP4 output.

Timing: the first packet places the audio on the input clock (the clock the video's timestamps
are on, so both tracks of a segment line up); after that the pts runs on sample by sample, so a
segment's audio is continuous from its start whatever the network jitter. Packets lost on the way
(the input runs ahead) are filled with silence; packets from the past (the input runs behind) are
dropped. Decoding and encoding happen in batches of ``BATCH`` samples, not per 20 ms RTP packet,
which keeps the per-stream cost (mostly Python overhead per call) far below 0.1 % of a core.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.stream import Stream

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

# Copied into MP4 as they are (what FFmpeg's MP4 muxer takes, from cameras and encoders).
MP4_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus", "flac", "alac"})
# Transcoded to AAC.
G711 = frozenset({"pcm_alaw", "pcm_mulaw"})
# One byte per sample; the byte that decodes to (near) zero.
_SILENCE = {"pcm_alaw": 0xD5, "pcm_mulaw": 0xFF}

# 24 kbit/s per channel: speech sampled at 8 kHz needs no more, and FFmpeg's encoder spends
# three times the CPU at 32 kbit/s (its rate loop works hard that close to AAC's ceiling of
# 6144 bits per frame); its "fast" coder costs half of the default "twoloop".
AAC_BIT_RATE = 24_000
AAC_OPTIONS = {"aac_coder": "fast"}
AAC_FALLBACK_RATE = 16_000
# Samples decoded and encoded per call: one AAC frame. A lower bound, not a delay that matters:
# the rest is written when the segment closes (``flush``).
BATCH = 1024
# Differences between the input clock and the running pts that are absorbed (jitter), in
# seconds; beyond, silence fills a hole of up to MAX_FILL and a longer one restarts the clock.
TOLERANCE = 0.1
MAX_FILL = 2.0


def audio_plan(codec: str) -> str:
    """What a recording does with an audio stream: "copy", "aac" (transcode) or "drop"."""
    if codec in MP4_AUDIO:
        return "copy"
    if codec in G711:
        return "aac"
    return "drop"


class G711ToAac:
    """One G.711 stream transcoded into an AAC-LC stream added to ``output``.

    ``feed`` takes the input packets (timed by ``dts × time_base``) and answers the AAC packets
    ready to mux, in the output stream's time base (on the input clock); ``flush`` answers the
    rest (at the end).
    """

    def __init__(self, output: OutputContainer, codec: str, rate: int, channels: int) -> None:
        if codec not in G711:
            raise ValueError(f"not G.711: {codec}")
        self.rate = rate
        self.channels = max(1, channels)
        layout = "mono" if self.channels == 1 else "stereo"
        self._decoder = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
        self._decoder.sample_rate = rate
        self._decoder.layout = layout
        self._silence = _SILENCE[codec]
        rates = av.Codec("aac", "w").audio_rates or ()
        out_rate = rate if rate in rates else AAC_FALLBACK_RATE
        self.stream: AudioStream = output.add_stream(
            "aac", rate=out_rate, options=dict(AAC_OPTIONS), layout=layout
        )
        self.stream.codec_context.bit_rate = AAC_BIT_RATE * self.channels
        self._time_base = Fraction(1, rate)
        self._pending = bytearray()
        self._pending_pts: int | None = None  # input samples: pts of the first pending byte

    def feed(self, packet: Packet, start: float | None = None) -> list[Packet]:
        """AAC packets ready; those that would begin before ``start`` (seconds on the input
        clock) are left out (see ``_after``)."""
        return self._after(self._feed(packet), start)

    def flush(self, start: float | None = None) -> list[Packet]:
        """Everything still held, then the encoder's tail."""
        return self._after(self._encode_pending() + self.stream.encode(None), start)

    @staticmethod
    def _after(packets: list[Packet], start: float | None) -> list[Packet]:
        # The encoder's first packet (its priming, 1024 samples of delay) begins before the
        # first input sample, so before the segment's first video frame; FFmpeg's fragmented MP4
        # cannot start one track before another and would stretch the video's first frame over
        # the difference. Left out, the audio starts as a copied AAC stream cut anywhere does.
        if start is None:
            return packets
        return [p for p in packets if p.pts is None or p.pts * p.time_base >= start]

    def _feed(self, packet: Packet) -> list[Packet]:
        tb = packet.time_base
        if packet.dts is None or tb is None:
            return []
        # dts × time_base in samples, rounded; in integers (Fraction arithmetic costs more).
        den = tb.denominator
        expected = (2 * packet.dts * tb.numerator * self.rate + den) // (2 * den)
        data = bytes(packet)
        out: list[Packet] = []
        if self._pending_pts is None:
            self._pending_pts = expected
        else:
            ahead = expected - self._next_pts()
            if ahead > TOLERANCE * self.rate:
                if ahead <= MAX_FILL * self.rate:
                    self._pending += bytes([self._silence]) * (ahead * self.channels)
                else:  # a long outage: the clock starts anew after it
                    out += self._encode_pending()
                    self._pending_pts = expected
            elif ahead < -TOLERANCE * self.rate:
                return out  # already covered by what came before
        self._pending += data
        if len(self._pending) >= BATCH * self.channels:
            out += self._encode_pending()
        return out

    def _next_pts(self) -> int:
        assert self._pending_pts is not None
        return self._pending_pts + len(self._pending) // self.channels

    def _encode_pending(self) -> list[Packet]:
        if not self._pending or self._pending_pts is None:
            return []
        pts = self._pending_pts
        chunk = av.Packet(bytes(self._pending))
        self._pending_pts = self._next_pts()
        self._pending.clear()
        out: list[Packet] = []
        for frame in self._decoder.decode(chunk):
            frame.pts = pts
            frame.time_base = self._time_base
            pts += frame.samples
            out += self.stream.encode(frame)
        return out
