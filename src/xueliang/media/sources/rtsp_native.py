"""RTSP pull over TCP with Xueliang's own client (``xueliang.rtsp``): the default for RTSP.

Why not FFmpeg's: its reader makes six system calls per RTP packet, ~350 packets a second per
1080p channel, which costs more than all the rest of a recorded channel. Here the channel's
thread connects, sets up and waits for the first key frame; then the worker's one reader thread
(``rtsp_reactor``) takes the socket, woken once ``LOW_WATER`` bytes have arrived
(``SO_RCVLOWAT``) and reading the rest of a frame below that every ``READ_WAIT`` seconds: about
a frame's worth per read at 4 Mbit/s, at most ``READ_WAIT`` added latency. One thread for all
channels also means no queueing for the GIL among them. Measured in docs/BENCHMARKS.md.

What this client does not take is left to FFmpeg (``sources/rtsp.py``), by raising
``NativeUnsupported``: UDP transport, video other than H.264 and H.265, and streams with
B-frames (RTP carries no decoding times; FFmpeg's parser derives them), seen in the first
pictures or later (then the ingest reconnects through FFmpeg at once).

Stream templates (what consumers copy codec parameters from) are built as for GB/T 28181 from
the first key frame, with the SDP's parameter sets put in front where the camera sends none
in-band. Audio is placed on the video's timeline by arrival (the first audio frame is due when
it arrives); AAC (RFC 3640) and G.711 are taken, other audio left out.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import av
from av.stream import Stream

from xueliang.media.hub import StreamInfo
from xueliang.media.model import IngestSpec
from xueliang.media.sources.base import OpenSource, StopFlag
from xueliang.media.sources.gb_templates import TIME_BASE, StreamTemplates, TemplateError
from xueliang.media.sources.rtsp_reactor import reactor
from xueliang.rtsp.client import Playing, RtspClient, RtspError
from xueliang.rtsp.depacketize import (
    AacConfig,
    AacDepacketizer,
    G711Depacketizer,
    H264Depacketizer,
    H265Depacketizer,
    Unit,
    VideoDepacketizer,
    aac_config,
    h264_parameter_sets,
    h265_parameter_sets,
)
from xueliang.rtsp.message import Batch, RtspProtocolError
from xueliang.rtsp.sdp import Format, Media, SessionDescription

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 5.0  # connecting, and silence while playing
# Each answer of the handshake: a server setting up a shared stream for many clients at once
# (an NVR after a restart) takes seconds; FFmpeg waits as long as its I/O timeout.
ANSWER_TIMEOUT = 15.0
# The first key frame: cameras send one every 1-4 s, "smart" codecs up to every 10 s or more.
KEYFRAME_WAIT = 20.0
LOW_WATER = 16 * 1024
READ_WAIT = 0.04
READ_SIZE = 256 * 1024
# After the first key frame: how long to wait for the first audio frame (its template needs
# one), and how many pictures to look at for B-frames before opening.
AUDIO_WAIT = 1.0
LOOKAHEAD = 8
# Pictures going back in time: once is a glitch (the picture is left out), this often means
# B-frames (decoding order is not display order), which FFmpeg's client is for.
BACKWARDS_LIMIT = 3
# Reordering spans a few pictures; a clock going back further (a camera restarting its stream,
# a server rewinding a file) or leaping ahead is a discontinuity: the timeline runs on from
# the last picture, one frame later, as for GB/T 28181 (gb_rtp.FramePackets).
REORDER_SPAN = 90000 // 2
MAX_JUMP = 10 * 90000
MAX_INTERVAL = 18000  # longer steps are lost pictures, not the frame interval
MAX_AUDIO_DELAY = 90000 * 2  # audio more than 2 s off the video's clock is left out


# What the client hands over while playing: one packet of a channel, or a read's packets of
# the video channel at once.
MediaEvent = tuple[int, memoryview] | Batch


class NativeUnsupported(Exception):
    """This stream is for FFmpeg's RTSP client; the reason says why."""


@dataclass
class _Track:
    kind: str
    fmt: Format
    depacketizer: VideoDepacketizer | AacDepacketizer | G711Depacketizer
    aac: AacConfig | None = None
    info: StreamInfo | None = None
    last: int | None = None  # unwrapped RTP time of the last unit
    origin: int = 0  # unwrapped RTP time at 0 on the session's timeline
    offset: int = 0  # 90 kHz time of ``origin`` on the session's timeline (audio)
    started: bool = False

    def unwrap(self, ts: int) -> int:
        last = self.last
        value = ts if last is None else last + (ts - last + 2147483648 & 4294967295) - 2147483648
        self.last = value
        return value


def _video_format(media: Media) -> Format | None:
    return next((f for f in media.formats if f.encoding in ("H264", "H265")), None)


def _audio_format(media: Media) -> Format | None:
    for f in media.formats:
        if f.encoding in ("PCMA", "PCMU") and f.clock_rate == 8000 and f.channels == 1:
            return f
        if f.encoding == "MPEG4-GENERIC" and aac_config(f.parameters.get("config", "")):
            mode = f.parameters.get("mode", "").lower()
            if mode in ("aac-hbr", "aac-lbr", ""):
                return f
    return None


def choose(sdp: SessionDescription) -> list[Media]:
    """The first H.264/H.265 video and the first AAC or G.711 audio; others are not set up."""
    video = next((m for m in sdp.media if m.kind == "video" and _video_format(m)), None)
    if video is None:
        offered = [f.encoding or str(f.payload_type) for m in sdp.media for f in m.formats]
        raise NativeUnsupported(f"no H.264 or H.265 video offered ({', '.join(offered)})")
    audio = next((m for m in sdp.media if m.kind == "audio" and _audio_format(m)), None)
    return [video] + ([audio] if audio is not None else [])


def _track(media: Media) -> _Track:
    if media.kind == "video":
        fmt = _video_format(media)
        assert fmt is not None
        if fmt.encoding == "H264":
            return _Track("video", fmt, H264Depacketizer(h264_parameter_sets(fmt.parameters)))
        return _Track("video", fmt, H265Depacketizer(h265_parameter_sets(fmt.parameters)))
    fmt = _audio_format(media)
    assert fmt is not None
    if fmt.encoding == "MPEG4-GENERIC":
        config = aac_config(fmt.parameters.get("config", ""))
        return _Track("audio", fmt, AacDepacketizer(fmt.parameters), aac=config)
    return _Track("audio", fmt, G711Depacketizer())


class _Connection:
    """The socket and the protocol state of one session."""

    def __init__(self, spec: IngestSpec, stop: StopFlag) -> None:
        parts = urlsplit(spec.url)
        if parts.scheme.lower() != "rtsp":
            raise NativeUnsupported(f"scheme {parts.scheme}")
        self.stop = stop
        self.client = RtspClient(
            spec.url,
            username=spec.username or None,
            password=spec.password or None,
            choose=choose,
        )
        self.sock = socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 554), timeout=SOCKET_TIMEOUT
        )
        self.last_data = time.monotonic()
        self.next_keepalive = 0.0
        self.keepalive_every = 30.0

    def close(self) -> None:
        with suppress(OSError):
            self.client.teardown()
            self.sock.settimeout(0.5)
            self.sock.sendall(self.client.data_to_send())
        self.sock.close()

    def flush(self) -> None:
        out = self.client.data_to_send()
        if out:
            self.sock.sendall(out)

    def handshake(self) -> tuple[Playing, list[MediaEvent]]:
        self.sock.settimeout(ANSWER_TIMEOUT)
        self.client.start()
        self.flush()
        deadline = time.monotonic() + 2 * ANSWER_TIMEOUT
        while True:
            if self.stop.is_set():
                raise RtspError("stopped")
            if time.monotonic() > deadline:
                raise TimeoutError("the camera did not finish the RTSP handshake")
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise ConnectionResetError("the camera closed the connection")
            playing: Playing | None = None
            media: list[MediaEvent] = []
            for event in self.client.receive(data):
                if isinstance(event, Playing):
                    playing = event
                elif isinstance(event, tuple | Batch):
                    media.append(event)
            self.flush()
            if playing is not None:
                self.keepalive_every = max(2.0, min(30.0, playing.session_timeout / 2))
                self.next_keepalive = time.monotonic() + self.keepalive_every
                return playing, media

    def poll(self, now: float) -> list[MediaEvent]:
        """What has arrived, read without waiting (the socket is non-blocking by now)."""
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return []
        if not data:
            raise ConnectionResetError("the camera ended the stream")
        self.last_data = now
        events = self.client.receive(data)
        self.flush()  # answers to the server's own requests, if it sent any
        return events  # type: ignore[return-value]  # media only while playing


class _Streaming:
    """A playing session as the reader thread's handler (see rtsp_reactor)."""

    def __init__(
        self, conn: _Connection, session: _Session, publish: Callable[[Packet], None]
    ) -> None:
        self.sock = conn.sock
        self.conn, self.session, self.publish = conn, session, publish
        self.last_read = time.monotonic()
        self.done = threading.Event()
        self.error: BaseException | None = None
        # Woken once a frame's worth has arrived (epoll honours SO_RCVLOWAT); what is left of
        # a frame below that is read on the next tick.
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOW_WATER)

    def readable(self, now: float) -> None:
        self.last_read = now
        media = self.conn.poll(now)
        if media:
            session, publish = self.session, self.publish
            for track, unit in session.units(media):
                packet = session.packet(track, unit, now)
                if packet is not None:
                    publish(packet)

    def tick(self, now: float) -> None:
        conn = self.conn
        if now - self.last_read >= READ_WAIT:
            self.readable(now)
        if now - conn.last_data > SOCKET_TIMEOUT:
            raise TimeoutError("no data from the camera (timed out)")
        if now >= conn.next_keepalive:
            conn.client.keepalive()
            conn.flush()
            conn.next_keepalive = now + conn.keepalive_every

    def ended(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()


class _Session:
    """Tracks, templates and timestamps: units in, PyAV packets out."""

    def __init__(self, playing: Playing) -> None:
        self.by_channel: dict[int, _Track] = {}
        for track in playing.tracks:
            self.by_channel[track.channel] = _track(track.media)
        self.video = next(t for t in self.by_channel.values() if t.kind == "video")
        self.video_channel = next(c for c, t in self.by_channel.items() if t is self.video)
        self.templates: StreamTemplates | None = None
        self.last_video_dts = 0
        self.last_video_at = 0.0
        self.backwards = 0  # pictures whose time went back (left out)
        self.video_seen = False
        self.interval = 3600  # the last frame interval (90 kHz), for bridging a jump
        self.rebased = 0

    def units(self, media: Sequence[MediaEvent]) -> Iterator[tuple[_Track, Unit]]:
        video = self.video
        for event in media:
            if type(event) is Batch:
                if event.channel == self.video_channel:
                    dep = video.depacketizer
                    assert isinstance(dep, VideoDepacketizer)
                    for unit in dep.push_batch(event.data, event.spans):
                        yield video, unit
                continue
            channel, payload = event  # type: ignore[misc]
            track = self.by_channel.get(channel)
            if track is None:
                continue  # RTCP, or a track not set up
            for unit in track.depacketizer.push(payload):
                yield track, unit

    def open(self, gathered: list[tuple[_Track, Unit, float]]) -> list[StreamInfo]:
        """Templates from the first key frame (and the first audio frame, if any)."""
        templates = StreamTemplates()
        self.templates = templates
        key = next(u for t, u, _ in gathered if t is self.video and u.keyframe)
        with_template: list[_Track] = []
        try:
            templates.add_video(self.video.depacketizer.codec, key.data)  # type: ignore[union-attr]
            for track in self.by_channel.values():
                if track.kind != "audio":
                    continue
                first = next((u for t, u, _ in gathered if t is track), None)
                if track.aac is not None:
                    if first is None:
                        continue  # no audio came in time: recorded without it
                    templates.add_aac(track.aac.adts(first.data))
                else:
                    templates.add_g711("pcm_alaw" if track.fmt.encoding == "PCMA" else "pcm_mulaw")
                with_template.append(track)
            infos = templates.finish()
        except TemplateError:
            templates.close()
            self.templates = None
            raise
        # finish() lists the streams in the order they were added: video, then audio.
        self.video.info = infos[0]
        for track, info in zip(with_template, infos[1:], strict=True):
            track.info = info
        return infos

    def close(self) -> None:
        if self.templates is not None:
            self.templates.close()

    def _rebase_if_needed(self, video: _Track, t: int) -> None:
        last = self.last_video_dts
        step = t - video.origin - last
        if -REORDER_SPAN < step <= 0:
            return  # out of order: counted by the caller
        if step <= 0 or step > MAX_JUMP:
            video.origin += step - self.interval
            self.rebased += 1
            log.info("RTSP video clock jumped by %.1f s; the timeline runs on", step / 90000)
        elif step <= MAX_INTERVAL:
            self.interval = step

    def packet(self, track: _Track, unit: Unit, arrived: float) -> Packet | None:
        info = track.info
        if info is None:
            return None
        t = track.unwrap(unit.timestamp)
        if track is self.video:
            if not track.started:
                if not unit.keyframe:
                    return None
                track.started, track.origin = True, t
                self.last_video_dts = 0
            else:
                self._rebase_if_needed(track, t)
            dts = t - track.origin  # H.264 and H.265 over RTP run at 90 kHz (RFC 6184, 7798)
            if dts == self.last_video_dts and self.video_seen:
                return None  # the same picture's time again: a duplicate, left out
            if dts < self.last_video_dts and self.video_seen:
                self.backwards += 1
                if self.backwards >= BACKWARDS_LIMIT:
                    raise NativeUnsupported("the video has B-frames (or its clock goes back)")
                return None
            self.video_seen = True
            self.last_video_dts, self.last_video_at = dts, arrived
        else:
            rate = track.fmt.clock_rate or 8000
            if not track.started:
                if not self.video.started:
                    return None
                # Due when it arrives, on the video's clock.
                now = self.last_video_dts + int((arrived - self.last_video_at) * 90000)
                track.started, track.origin, track.offset = True, t, max(0, now)
            dts = track.offset + (t - track.origin) * 90000 // rate
            if abs(dts - self.last_video_dts) > MAX_AUDIO_DELAY:
                track.started = False  # off the video's clock (a jump): placed anew
                return None
        packet = Packet(unit.data)
        packet.stream = info.template
        packet.time_base = TIME_BASE
        packet.pts = packet.dts = dts
        packet.is_keyframe = unit.keyframe
        return packet


@contextmanager
def open_native_rtsp_source(spec: IngestSpec, stop: StopFlag) -> Iterator[OpenSource]:
    if spec.transport != "tcp":
        raise NativeUnsupported("UDP transport")
    conn = _Connection(spec, stop)
    session: _Session | None = None
    try:
        playing, media = conn.handshake()
        session = _Session(playing)
        conn.client.batch(frozenset({session.video_channel}))
        gathered, rate = _gather(conn, session, media, stop)
        infos = session.open(gathered)
        sess = session

        def pump(publish: Callable[[Packet], None], stop: StopFlag) -> None:
            for track, unit, arrived in gathered:
                packet = sess.packet(track, unit, arrived)
                if packet is not None:
                    publish(packet)
            gathered.clear()
            # From now on the process's reader thread reads this socket with all the others.
            streaming = _Streaming(conn, sess, publish)
            reader = reactor(READ_WAIT)
            reader.attach(streaming)
            try:
                while not streaming.done.wait(0.2):
                    if stop.is_set():
                        break
            finally:
                if not streaming.done.is_set():
                    reader.detach(streaming)
                    streaming.done.wait(5)
            if streaming.error is not None:
                raise streaming.error

        yield OpenSource(streams=infos, frame_rate=rate, packets=iter(()), pump=pump)
    except (RtspProtocolError, RtspError) as exc:
        raise _as_error(exc) from exc
    finally:
        if session is not None:
            session.close()
        conn.close()


def _gather(
    conn: _Connection, session: _Session, media: list[MediaEvent], stop: StopFlag
) -> tuple[list[tuple[_Track, Unit, float]], float]:
    """Units from the first video key frame on, until the stream can be described: a few
    pictures (their spacing is the frame rate; B-frames show as a time going back) and the
    first audio frame (or AUDIO_WAIT without one)."""
    gathered: list[tuple[_Track, Unit, float]] = []
    video = session.video
    key_at: float | None = None
    pictures: list[int] = []
    backwards = 0
    audio = [t for t in session.by_channel.values() if t.kind == "audio"]
    deadline = time.monotonic() + KEYFRAME_WAIT
    conn.sock.settimeout(SOCKET_TIMEOUT)
    while True:
        now = time.monotonic()
        for track, unit in session.units(media):
            if track is video:
                if key_at is None and not unit.keyframe:
                    continue
                if key_at is None:
                    key_at = now
                if pictures and _before(unit.timestamp, pictures[-1]):
                    if (pictures[-1] - unit.timestamp) & 0xFFFFFFFF >= REORDER_SPAN:
                        # The clock went back (a server rewinding a file for a newcomer, a
                        # camera restarting its stream): start over from the next key frame.
                        gathered.clear()
                        pictures.clear()
                        key_at, backwards = None, 0
                        continue
                    backwards += 1
                    if backwards > 1:
                        raise NativeUnsupported("the video has B-frames")
                    continue  # once: a glitch, left out
                pictures.append(unit.timestamp)
            elif key_at is None:
                continue
            gathered.append((track, unit, now))
        if key_at is not None and len(pictures) > LOOKAHEAD:
            heard = {id(t) for t, _u, _a in gathered}
            if all(id(t) in heard for t in audio) or now - key_at > AUDIO_WAIT:
                break
        if stop.is_set():
            raise RtspError("stopped")
        if now > deadline:
            raise TimeoutError("no key frame from the camera")
        data = conn.sock.recv(READ_SIZE)
        if not data:
            raise ConnectionResetError("the camera ended the stream")
        media = conn.client.receive(data)  # type: ignore[assignment]
        conn.flush()
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(pictures)]
    steps = [s for s in steps if 0 < s < 90000]
    clock = video.fmt.clock_rate or 90000
    rate = clock / sorted(steps)[len(steps) // 2] if steps else 25.0
    return gathered, rate


def _before(ts: int, last: int) -> bool:
    return ((ts - last) & 0xFFFFFFFF) > 0x80000000


def _as_error(exc: Exception) -> Exception:
    """Errors named as the ingest reports them (see ingest._reason)."""
    status = getattr(exc, "status", None)
    if status == 401:
        return PermissionError("authentication failed")
    if status == 404:
        return FileNotFoundError("stream not found on the camera")
    return ConnectionError(str(exc))
