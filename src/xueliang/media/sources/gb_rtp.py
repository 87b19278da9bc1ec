"""GB/T 28181 media ingest: RTP carrying an MPEG program stream, over UDP or TCP.

A channel whose URL is

    rtp://BIND_HOST:PORT?transport=udp|tcp-passive|tcp-active&ssrc=NNNNNNNNNN&peer=HOST:PORT

is fed by this instead of an RTSP pull. ``udp``: RTP datagrams arrive on BIND_HOST:PORT.
``tcp-passive``: we listen there and the device connects (RFC 4571 framing). ``tcp-active``: we
connect to the device at ``peer``. ``ssrc`` is the SDP y= value: optional, a mismatch is logged
and the first SSRC accepted (devices get it wrong). The SIP side negotiates these and starts
the ingest; this only receives.

The path of a datagram: ``RtpReceiver`` (order, loss, SSRC) -> ``PsDemuxer`` (frames) ->
``FramePackets`` (PyAV packets on the session's templates, 90 kHz) -> the ingest loop. The
source opens once it has the first video key frame (what came before is skipped) and the
picture after it, which gives the frame rate; the stream templates are built from the key frame
(``gb_templates``).

A device that stops sending is noticed within ``NO_DATA_TIMEOUT`` seconds: the source raises
``GbMediaError`` saying why, which the ingest shows as the channel's offline reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, urlsplit

import av
from av.stream import Stream

from xueliang.core.errors import InvalidInput
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.ps import STREAM_TYPES, Frame, PsDemuxer
from xueliang.gb28181.rtp import Lost, Received, RtpPacket, RtpReceiver, SsrcChanged
from xueliang.media.hub import StreamInfo
from xueliang.media.model import IngestSpec
from xueliang.media.sources.base import OpenSource, StopFlag
from xueliang.media.sources.gb_templates import (
    AAC_FRAME_SAMPLES,
    TIME_BASE,
    StreamTemplates,
    TemplateError,
    adts_frames,
)
from xueliang.media.sources.gb_transport import (
    GbMediaError,
    RtpInput,
    TcpActiveInput,
    TcpPassiveInput,
    UdpInput,
)

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp-passive", "tcp-active"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp-passive", "tcp-active")

# Seconds without a datagram (or, on TCP passive, without the device connecting) before the
# device counts as gone.
NO_DATA_TIMEOUT = 5.0
# Seconds of RTP without a usable video key frame before giving up (a GOP may be 4 s and
# more; a stream that is not PS, or is all audio, never has one).
KEYFRAME_TIMEOUT = 15.0
# How long one read waits: the stop flag and the clocks are looked at this often while the
# device is quiet, and packets held for reordering are released after this much silence.
POLL_INTERVAL = 0.2
# Counters of what went wrong are logged at most this often per channel.
REPORT_INTERVAL = 10.0
DEFAULT_FRAME_RATE = 25.0
DEFAULT_INTERVAL = 3600  # one frame at 25 fps, in 90 kHz ticks
MAX_INTERVAL = 18000  # longer steps are gaps (lost pictures), not the frame rate
# A step in the video's time beyond this (or backwards) is a new clock, not the same one.
MAX_JUMP = 10 * 90000


@dataclass(frozen=True, slots=True)
class GbRtpSpec:
    bind_host: str
    port: int
    transport: Transport
    ssrc: int | None = None
    peer: tuple[str, int] | None = None


def _host_port(text: str, what: str) -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"GB RTP URL: bad port in {what} {text!r}") from exc
    if not parts.hostname or port is None:
        raise InvalidInput(f"GB RTP URL: {what} must be HOST:PORT, not {text!r}")
    return parts.hostname, port


def parse_gb_rtp_url(url: str) -> GbRtpSpec:
    parts = urlsplit(url)
    if parts.scheme != "rtp":
        raise InvalidInput(f"not a GB RTP URL: {url!r}")
    host, port = _host_port(parts.netloc, "the bind address")
    query = parse_qs(parts.query)
    transport = query.get("transport", ["udp"])[0]
    if transport not in TRANSPORTS:
        raise InvalidInput(f"GB RTP URL: transport must be one of {', '.join(TRANSPORTS)}")
    ssrc = None
    if query.get("ssrc"):
        text = query["ssrc"][0]
        if not text.isdigit() or int(text) > 0xFFFFFFFF:
            raise InvalidInput(f"GB RTP URL: ssrc must be a 32-bit decimal number, not {text!r}")
        ssrc = int(text)
    peer = _host_port(query["peer"][0], "peer") if query.get("peer") else None
    if transport == "tcp-active" and peer is None:
        raise InvalidInput("GB RTP URL: tcp-active needs peer=HOST:PORT (the device's address)")
    return GbRtpSpec(host, port, transport, ssrc, peer)


def open_input(spec: GbRtpSpec) -> RtpInput:
    if spec.transport == "udp":
        return UdpInput(spec.bind_host, spec.port)
    if spec.transport == "tcp-passive":
        return TcpPassiveInput(spec.bind_host, spec.port)
    assert spec.peer is not None
    return TcpActiveInput(spec.peer[0], spec.peer[1], NO_DATA_TIMEOUT)


@dataclass(slots=True)
class IngestStats:
    datagrams: int = 0
    unparseable: int = 0  # not RTP at all
    ssrc_changes: int = 0


class RtpToFrames:
    """Datagrams in, frames out: one RTP stream's ordering and loss, then the PS demuxer.
    Sans-I/O. ``notices`` collects what the caller should log: an SSRC that is not the
    negotiated one, a change of SSRC, the first packet of each stray sender."""

    def __init__(self, expected_ssrc: int | None = None) -> None:
        self.receiver = RtpReceiver(expected_ssrc=expected_ssrc)
        self.demuxer = PsDemuxer()
        self.stats = IngestStats()
        self.notices: list[str] = []
        self._receiving = False  # a packet of the stream has been taken
        self._foreign_reported: set[int] = set()

    def feed(self, datagram: bytes) -> list[Frame]:
        self.stats.datagrams += 1
        try:
            packet = RtpPacket.parse(datagram)
        except ParseError:
            self.stats.unparseable += 1
            return []
        receiver = self.receiver
        foreign = receiver.stats.foreign
        out = self._act(receiver.push(packet))
        reported = self._foreign_reported
        # Once per stray SSRC (a bounded few): a second sender on the port is worth a line in
        # the log, each of its packets is not.
        if receiver.stats.foreign > foreign and packet.ssrc not in reported and len(reported) < 16:
            reported.add(packet.ssrc)
            self.notices.append(
                f"RTP of SSRC {packet.ssrc} dropped: the stream is SSRC {receiver.ssrc}"
            )
        return out

    def quiet(self) -> list[Frame]:
        """Nothing arrived for a while: packets held waiting for a gap to fill go on."""
        return self._act(self.receiver.flush())

    def _act(self, events: list[Received | Lost | SsrcChanged]) -> list[Frame]:
        out: list[Frame] = []
        demuxer = self.demuxer
        for event in events:
            if isinstance(event, Received):
                self._receiving = True
                packet = event.packet
                out += demuxer.feed(packet.payload)
                if packet.marker:
                    out += demuxer.end_frame()
            elif isinstance(event, Lost):
                out += demuxer.discontinuity()
            else:
                self.stats.ssrc_changes += 1
                if not self._receiving:
                    self.notices.append(
                        f"RTP SSRC {event.new} is not the negotiated {event.old}; accepted"
                    )
                else:
                    self.notices.append(
                        f"RTP SSRC changed from {event.old} to {event.new} (the device "
                        "restarted its stream, or another sender took the port)"
                    )
                    out += demuxer.discontinuity()
        return out


class FramePackets:
    """Frames of the PS streams as PyAV packets on the session's templates: 90 kHz times
    counted from the first key frame, AAC without its ADTS headers. Frames of streams the
    session has no template for (audio that appeared later) are left out."""

    def __init__(self, streams: dict[int, tuple[StreamInfo, int]], origin: int) -> None:
        # PS stream_id -> (its StreamInfo, audio sample rate or 0)
        self._streams = streams
        self._origin = origin
        self._last_video: int | None = None
        self._interval = DEFAULT_INTERVAL
        self.left_out = 0
        self.rebased = 0

    def convert(self, frame: Frame) -> list[Packet]:
        entry = self._streams.get(frame.stream_id)
        if entry is None:
            self.left_out += 1
            return []
        info, rate = entry
        dts = frame.dts - self._origin
        last = self._last_video
        if info.kind == "video":
            if last is not None and not last < dts <= last + MAX_JUMP:
                # The device restarted its clock (a new SSRC, a reboot) or it jumped: the
                # session's time runs on from the last picture instead, one frame later.
                self._origin += dts - (last + self._interval)
                dts = frame.dts - self._origin
                self.rebased += 1
            elif last is not None and dts - last <= MAX_INTERVAL:
                self._interval = dts - last
            self._last_video = dts
        elif dts < 0 or (last is not None and abs(dts - last) > MAX_JUMP):
            return []  # before the session's first picture, or on a clock left behind
        pts = frame.pts - self._origin
        template = info.template
        if info.codec != "aac":
            packet = Packet(frame.data)
            packet.stream = template
            packet.time_base = TIME_BASE
            packet.pts, packet.dts = pts, dts
            packet.is_keyframe = frame.keyframe
            return [packet]
        out = []
        step = AAC_FRAME_SAMPLES * 90000 // rate
        for n, raw in enumerate(adts_frames(frame.data)):
            packet = Packet(raw)
            packet.stream = template
            packet.time_base = TIME_BASE
            packet.pts = packet.dts = dts + n * step
            packet.is_keyframe = True
            out.append(packet)
        return out


class _Session:
    """One source session: reads the input, watches the clocks, turns datagrams into frames."""

    def __init__(self, channel_id: str, rtp: RtpInput, stop: StopFlag, ssrc: int | None) -> None:
        self.channel_id = channel_id
        self.rtp = rtp
        self.stop = stop
        self.frames = RtpToFrames(ssrc)
        self.last_data = time.monotonic()
        self._last_report = self.last_data
        self._reported = (0, 0, 0, 0)

    def next_frames(self) -> list[Frame] | None:
        """The frames completed by what arrived within one poll interval; None when stopped.
        Raises GbMediaError once the device has been silent for too long."""
        if self.stop.is_set():
            return None
        datagrams = self.rtp.read(POLL_INTERVAL)
        now = time.monotonic()
        frames = self.frames
        if datagrams:
            stats = frames.receiver.stats
            taken = stats.received
            out: list[Frame] = []
            for datagram in datagrams:
                out += frames.feed(datagram)
            # Only the stream's own packets count as the device being there: garbage or a
            # stray sender on the port must not keep a dead channel online.
            if stats.received != taken:
                self.last_data = now
            elif now - self.last_data >= NO_DATA_TIMEOUT:
                raise GbMediaError(self.rtp.silence(NO_DATA_TIMEOUT))
        else:
            if now - self.last_data >= NO_DATA_TIMEOUT:
                raise GbMediaError(self.rtp.silence(NO_DATA_TIMEOUT))
            out = frames.quiet()
        self._report(now)
        return out

    def _report(self, now: float, *, final: bool = False) -> None:
        frames = self.frames
        for notice in frames.notices:
            log.warning("channel %s: %s", self.channel_id, notice)
        frames.notices.clear()
        if now - self._last_report < REPORT_INTERVAL and not final:
            return
        self._last_report = now
        rs, ds = frames.receiver.stats, frames.demuxer.stats
        counts = (rs.lost, rs.foreign, frames.stats.unparseable, ds.resyncs)
        if counts != self._reported or final:
            self._reported = counts
            log.info(
                "channel %s: RTP %d received, %d lost, %d of another SSRC dropped, "
                "%d not RTP; PS %d resyncs, %d frames dropped",
                self.channel_id,
                rs.received,
                rs.lost,
                rs.foreign,
                frames.stats.unparseable,
                ds.resyncs,
                ds.dropped_frames,
            )

    def report_end(self) -> None:
        """The session's counts, as it ends."""
        self._report(time.monotonic(), final=True)


def _frame_rate(key: Frame, following: Frame) -> float:
    step = following.dts - key.dts
    if 0 < step <= 90000:
        return 90000 / step
    return DEFAULT_FRAME_RATE


def _build_templates(
    session: _Session, key: Frame, frames: list[Frame]
) -> tuple[StreamTemplates, list[StreamInfo], dict[int, tuple[StreamInfo, int]]]:
    """Templates for the video (from its key frame) and the audio the PSM or the frames
    gathered so far announce. Raises TemplateError when the key frame does not parse."""
    templates = StreamTemplates()
    try:
        templates.add_video(key.codec, key.data)
        audio: dict[int, tuple[str, int]] = {}  # stream_id -> (codec, sample rate)
        demuxer = session.frames.demuxer
        announced = {
            sid: STREAM_TYPES[st][1]
            for sid, st in demuxer.stream_types.items()
            if st in STREAM_TYPES and STREAM_TYPES[st][0] == "audio"
        }
        announced.update({s.stream_id: s.codec for s in demuxer.streams if s.kind == "audio"})
        for sid, codec in sorted(announced.items()):
            try:
                if codec in ("pcm_alaw", "pcm_mulaw"):
                    templates.add_g711(codec)
                    audio[sid] = (codec, 8000)
                elif codec == "aac":
                    first = next((f for f in frames if f.stream_id == sid), None)
                    if first is None:  # nothing to read its parameters from yet
                        log.info(
                            "channel %s: no AAC frame with the first picture; this session "
                            "goes without audio",
                            session.channel_id,
                        )
                        continue
                    audio[sid] = (codec, templates.add_aac(first.data).sample_rate)
                else:
                    log.info("channel %s: %s audio is not recorded", session.channel_id, codec)
                break  # one audio stream: cameras have one microphone
            except TemplateError as exc:
                log.warning("channel %s: audio left out: %s", session.channel_id, exc)
        infos = templates.finish()
    except BaseException:
        templates.close()
        raise
    by_index = {info.index: info for info in infos}
    streams = {key.stream_id: (by_index[0], 0)}
    for n, (sid, (_, rate)) in enumerate(audio.items(), start=1):
        streams[sid] = (by_index[n], rate)
    return templates, infos, streams


@contextmanager
def open_gb_rtp_source(spec: IngestSpec, stop: StopFlag) -> Iterator[OpenSource]:
    gb = parse_gb_rtp_url(spec.url)
    rtp = open_input(gb)
    templates: StreamTemplates | None = None
    session: _Session | None = None
    try:
        session = _Session(spec.channel_id, rtp, stop, gb.ssrc)
        started = time.monotonic()
        key: Frame | None = None
        gathered: list[Frame] = []  # from the key frame on
        rest: list[Frame] = []  # what came after the frame that completed the start
        while templates is None:
            frames = session.next_frames()
            if frames is None:
                raise GbMediaError("stopped")
            for n, frame in enumerate(frames):
                if key is None:
                    if frame.kind == "video" and frame.keyframe:
                        key = frame
                        gathered = [frame]
                    continue
                gathered.append(frame)
                if frame.kind != "video" or frame.stream_id != key.stream_id:
                    continue
                try:
                    templates, infos, streams = _build_templates(session, key, gathered)
                except TemplateError as exc:
                    log.warning("channel %s: key frame unusable: %s", spec.channel_id, exc)
                    key, gathered = None, []
                    continue
                rate = _frame_rate(key, frame)
                rest = frames[n + 1 :]
                break
            if templates is None and time.monotonic() - started >= KEYFRAME_TIMEOUT:
                raise GbMediaError(
                    f"RTP from the device but no video key frame in {KEYFRAME_TIMEOUT:g} s"
                )
        assert key is not None
        converter = FramePackets(streams, key.dts)

        def packets() -> Iterator[Packet]:
            for early in gathered + rest:
                yield from converter.convert(early)
            last_video = time.monotonic()
            while True:
                more = session.next_frames()
                if more is None:
                    return
                for frame in more:
                    if frame.kind == "video":
                        last_video = session.last_data
                    yield from converter.convert(frame)
                if session.last_data - last_video >= KEYFRAME_TIMEOUT:
                    raise GbMediaError(
                        f"RTP from the device but no video in it for {KEYFRAME_TIMEOUT:g} s"
                    )

        yield OpenSource(streams=infos, frame_rate=rate, packets=packets())
    finally:
        if session is not None:
            session.report_end()
        rtp.close()
        if templates is not None:
            templates.close()
