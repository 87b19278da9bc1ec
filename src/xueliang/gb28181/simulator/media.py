"""Media for simulated devices: a clip encoded once, replayed per stream as PS over RTP.

Encoding per stream would not scale to hundreds of streams on two cores, so a few seconds of
the synthetic scene are encoded ONCE per resolution (libx264, a key frame every ``gop`` frames,
no B-frames, SPS/PPS in band before every key frame) and every stream replays those access
units in a loop with its own advancing timestamps, PS muxer and RTP packetiser.

:class:`StreamPacer` is sans-I/O: given the time, it returns the packets that are due.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from xueliang.gb28181.ps import Frame
from xueliang.gb28181.ps_mux import PsMuxer
from xueliang.gb28181.rtp import RtpPacketizer, frame_rfc4571

CLOCK = 90_000
PS_PAYLOAD_TYPE = 96
# After a stall (a busy loop), send at most this much media at once, then skip ahead:
# a burst of seconds of video would only overflow the receiver.
MAX_CATCH_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    fps: int
    gop: int
    frames: tuple[tuple[bool, bytes], ...]  # (key frame, Annex B access unit)

    @property
    def ticks_per_frame(self) -> int:
        return CLOCK // self.fps


def encode_clip(
    width: int = 640, height: int = 360, *, fps: int = 25, seconds: int = 4, gop: int = 25
) -> Clip:
    """Encode ``seconds`` of the synthetic scene; the length is a whole number of GOPs so
    the loop restarts on a key frame and the key frame interval holds across the seam."""
    import av

    from xueliang.media.sources.simulator import SimSpec, SyntheticScene

    count = max(gop, (fps * seconds) // gop * gop)
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = Fraction(1, fps)
    context.framerate = Fraction(fps, 1)
    context.gop_size = gop
    context.max_b_frames = 0
    context.bit_rate = max(200_000, width * height * fps // 12)
    context.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        # A fixed interval (no scene-cut key frames) and headers before every key frame, so a
        # receiver joining anywhere can start at the next one.
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
    }
    scene = SyntheticScene(SimSpec("h264", width, height, fps, gop=gop))
    frames: list[tuple[bool, bytes]] = []
    for n in range(count):
        picture = scene.render(n, n / fps)
        picture.pts = n
        for packet in context.encode(picture):
            frames.append((bool(packet.is_keyframe), bytes(packet)))
    for packet in context.encode(None):
        frames.append((bool(packet.is_keyframe), bytes(packet)))
    if not frames or not frames[0][0]:
        raise RuntimeError("the encoder did not start with a key frame")
    return Clip(width, height, fps, gop, tuple(frames))


class StreamPacer:
    """One stream: frame ``n`` of the loop is due at ``started + n / fps / speed`` and carries
    PTS ``n * 90000 / fps`` from a random-looking but fixed base."""

    def __init__(
        self,
        clip: Clip,
        *,
        ssrc: int,
        started: float,
        tcp: bool = False,
        speed: float = 1.0,
        duration: float | None = None,
        mtu: int = 1400,
    ) -> None:
        self.clip = clip
        self.tcp = tcp
        self.started = started
        self.speed = speed if speed > 0 else 1.0
        self._muxer = PsMuxer(video_codec="h264")
        self._packetizer = RtpPacketizer(
            ssrc=ssrc, payload_type=PS_PAYLOAD_TYPE, mtu=mtu, sequence=ssrc & 0xFFFF
        )
        self._base = (ssrc * 7919) & 0x0FFFFFFF  # RTP timestamps start anywhere (RFC 3550)
        self.sent_frames = 0
        self.sent_packets = 0
        self.sent_bytes = 0
        # Live streams run until BYE; history ones until the range asked for is sent.
        self._limit = None if duration is None else max(1, round(duration * clip.fps))

    @property
    def finished(self) -> bool:
        return self._limit is not None and self.sent_frames >= self._limit

    @property
    def next_due(self) -> float:
        return self.started + self.sent_frames / self.clip.fps / self.speed

    def due(self, now: float) -> list[bytes]:
        """The packets of every frame due by ``now`` (RFC 4571 framed over TCP)."""
        period = 1 / self.clip.fps / self.speed
        behind = int((now - self.next_due) / period) + 1 if now >= self.next_due else 0
        limit = max(1, int(MAX_CATCH_UP_SECONDS * self.clip.fps * self.speed))
        if behind > limit:
            # Skip ahead in time (not in timestamps): the receiver sees a pause, not a flood.
            self.started += (behind - limit) * period
            behind = limit
        packets: list[bytes] = []
        for _ in range(behind):
            if self.finished:
                break
            packets += self._frame_packets()
        return packets

    def _frame_packets(self) -> list[bytes]:
        clip = self.clip
        keyframe, data = clip.frames[self.sent_frames % len(clip.frames)]
        pts = self._base + self.sent_frames * clip.ticks_per_frame
        payload = self._muxer.mux(
            Frame(
                stream_id=0xE0,
                kind="video",
                codec="h264",
                pts=pts,
                dts=pts,
                keyframe=keyframe,
                data=data,
            )
        )
        packets = self._packetizer.packetize(payload, pts)
        if self.tcp:
            packets = [frame_rfc4571(packet) for packet in packets]
        self.sent_frames += 1
        self.sent_packets += len(packets)
        self.sent_bytes += sum(len(packet) for packet in packets)
        return packets
