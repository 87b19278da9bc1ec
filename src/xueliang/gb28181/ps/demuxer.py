"""The streaming demuxer: ``PsDemuxer``'s state machine over the byte stream (pack headers,
PES and PSM packets, resync after garbage or loss), handing PES payloads to the tracks."""

from __future__ import annotations

from xueliang.gb28181.ps.frames import DemuxStats, Frame, PsStream
from xueliang.gb28181.ps.nal import sniff_video_codec
from xueliang.gb28181.ps.syntax import (
    _START,
    AUDIO_ID,
    PACK_HEADER,
    PRIVATE_STREAM_1,
    PROGRAM_END,
    PROGRAM_STREAM_MAP,
    STREAM_TYPES,
    VIDEO_ID,
    _timestamp,
)
from xueliang.gb28181.ps.tracks import _AnnexBTrack, _PesTrack, _Track

# A buffer this large without one complete PS unit in it is not a program stream.
MAX_BUFFER = 1 << 20


class PsDemuxer:
    """Feed it RTP payloads in order; it returns the frames completed by each.

    ``discontinuity()`` after packets were lost; ``end_frame()`` where the sender marks the
    end of a frame (the RTP marker bit; it saves a frame of latency with devices that set it
    correctly, and is optional); ``flush()`` at the end of the stream.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._syncing = False  # skipping to the next pack header
        self._tracks: dict[int, _Track] = {}
        self._psm: dict[int, int] = {}  # stream_id -> stream_type
        self._psm_seen = False
        self._sniffed = False  # a video stream was recognised without a PSM: expect none
        self._key_hint = False  # a PSM came since the last video PES (Hikvision: key frame)
        self.stats = DemuxStats()

    @property
    def streams(self) -> list[PsStream]:
        return [PsStream(t.stream_id, t.kind, t.codec) for t in self._tracks.values()]

    @property
    def stream_types(self) -> dict[int, int]:
        """The last PSM's stream_id -> stream_type map."""
        return dict(self._psm)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        out: list[Frame] = []
        self._parse(out, final=False)
        return out

    def _parse(self, out: list[Frame], *, final: bool) -> None:
        buf = self._buffer
        size = len(buf)
        pos = 0
        while True:
            if self._syncing:
                found = buf.find(b"\x00\x00\x01\xba", pos)
                if found < 0:
                    pos = max(pos, size - 3)
                    break
                pos = found
                self._syncing = False
            if size - pos < 6:
                break
            if buf[pos] or buf[pos + 1] or buf[pos + 2] != 1:
                self._garbage()
                pos += 1
                continue
            code = buf[pos + 3]
            if code == PACK_HEADER:
                if size - pos < 14:
                    break
                b4 = buf[pos + 4]
                if b4 & 0xC0 == 0x40:  # MPEG-2
                    end = pos + 14 + (buf[pos + 13] & 7)
                elif b4 & 0xF0 == 0x20:  # MPEG-1
                    end = pos + 12
                else:
                    self._garbage()
                    pos += 1
                    continue
                if end > size:
                    break
                pos = end
                continue
            if code == PROGRAM_END:
                pos += 4
                continue
            if code < PROGRAM_END:
                self._garbage()
                pos += 1
                continue
            end = pos + 6 + ((buf[pos + 4] << 8) | buf[pos + 5])
            if end == pos + 6 and code >= AUDIO_ID:
                # PES_packet_length 0 (allowed in TS, sent by a few devices): the PES runs to
                # the next PS start code; no NAL header can be 0xB9 or above.
                end = self._unbounded_end(buf, pos + 6)
                if end < 0:
                    if size - pos > MAX_BUFFER:
                        self._garbage()
                        pos += 1
                        continue
                    end = size + 1
            if end > size:
                if final and code >= AUDIO_ID:
                    # Packets after this were lost: what did arrive of this PES may begin
                    # the next picture, which says the one before it is complete.
                    self._pes(buf, pos, size, code, out, truncated=True)
                break
            if code >= AUDIO_ID or code == PRIVATE_STREAM_1:
                self._pes(buf, pos, end, code, out)
            elif code == PROGRAM_STREAM_MAP:
                self._parse_psm(buf, pos + 6, end)
            pos = end
        if pos:
            del buf[:pos]
        if len(buf) > MAX_BUFFER:
            self._garbage()
            buf.clear()

    def discontinuity(self) -> list[Frame]:
        """Packets were lost: drop what was being assembled, resume at the next pack header.

        Returns the frames that turn out complete: a picture is known to be whole only when
        the next one starts, and the start of the next one may be what arrived before the
        gap."""
        out: list[Frame] = []
        if not self._syncing:
            self._parse(out, final=True)
        self.stats.discontinuities += 1
        self._buffer.clear()
        self._drop_partial()
        self._syncing = True
        return out

    def end_frame(self) -> list[Frame]:
        out: list[Frame] = []
        for track in self._tracks.values():
            if track.kind == "video":
                track.end_frame(out)
        self.stats.frames += len(out)
        return out

    def flush(self) -> list[Frame]:
        """The stream ended: the frames still being gathered are complete."""
        out: list[Frame] = []
        for track in self._tracks.values():
            track.end_frame(out)
        self.stats.frames += len(out)
        return out

    def _garbage(self) -> None:
        self.stats.resyncs += 1
        self._drop_partial()
        self._syncing = True

    def _drop_partial(self) -> None:
        for track in self._tracks.values():
            self.stats.dropped_frames += track.drop()

    @staticmethod
    def _unbounded_end(buf: bytearray, start: int) -> int:
        i = buf.find(_START, start)
        while 0 <= i < len(buf) - 3:
            if buf[i + 3] >= PROGRAM_END:
                return i
            i = buf.find(_START, i + 3)
        return -1

    def _pes(
        self,
        buf: bytearray,
        pos: int,
        end: int,
        code: int,
        out: list[Frame],
        *,
        truncated: bool = False,
    ) -> None:
        p = pos + 6
        pts: int | None = None
        dts: int | None = None
        if p >= end:
            return
        b = buf[p]
        if b & 0xC0 == 0x80:  # MPEG-2 PES header
            if p + 3 > end:
                self.stats.bad_pes += 1
                return
            flags = buf[p + 1]
            payload = p + 3 + buf[p + 2]
            if payload > end:
                self.stats.bad_pes += 1
                return
            if flags & 0x80 and payload - p >= 8:
                pts = _timestamp(buf, p + 3)
                if flags & 0x40 and payload - p >= 13:
                    dts = _timestamp(buf, p + 8)
        else:  # MPEG-1 PES header (FFmpeg's -f mpeg)
            q = p
            while q < end and buf[q] == 0xFF and q - p < 16:
                q += 1
            if q + 2 <= end and buf[q] & 0xC0 == 0x40:
                q += 2  # STD buffer size
            if q >= end:
                self.stats.bad_pes += 1
                return
            b = buf[q] & 0xF0
            if b == 0x20 and q + 5 <= end:
                pts = _timestamp(buf, q)
                q += 5
            elif b == 0x30 and q + 10 <= end:
                pts = _timestamp(buf, q)
                dts = _timestamp(buf, q + 5)
                q += 10
            elif buf[q] == 0x0F:
                q += 1
            else:
                self.stats.bad_pes += 1
                return
            payload = q
        if payload >= end:
            return
        track = self._tracks.get(code)
        if truncated and (track is None or track.kind != "video"):
            return
        if track is None:
            track = self._new_track(code, buf, payload, end)
            if track is None:
                self.stats.skipped_pes += 1
                return
        before = len(out)
        track.push(bytes(buf[payload:end]), pts, dts, out, self._key_hint)
        if track.kind == "video":
            self._key_hint = False
        self.stats.frames += len(out) - before

    def _new_track(self, code: int, buf: bytearray, start: int, end: int) -> _Track | None:
        stream_type = self._psm.get(code)
        if stream_type is not None:
            kind, codec = STREAM_TYPES.get(stream_type, ("", ""))
            if not kind:
                return None
        elif code >= VIDEO_ID:
            sniffed = sniff_video_codec(buf[start:end])
            if sniffed is None:
                return None
            kind, codec = "video", sniffed
            self._sniffed = True
        elif AUDIO_ID <= code < VIDEO_ID and (self._psm_seen or self._sniffed):
            # MPEG audio by its stream_id; before any PSM, wait for one (a GB device sends
            # it with the first key frame, and says there what the audio really is).
            kind, codec = "audio", "mp2"
        else:
            return None
        track: _Track
        if codec in ("h264", "hevc"):
            track = _AnnexBTrack(code, codec, self.stats)
        else:
            track = _PesTrack(code, kind, codec, self.stats)
        self._tracks[code] = track
        return track

    def _parse_psm(self, buf: bytearray, p: int, end: int) -> None:
        # Devices get the lengths in here wrong often enough that every entry is bounded by
        # the packet itself, and the CRC is not checked.
        self._key_hint = True
        if p + 6 > end:
            return
        info_length = (buf[p + 2] << 8) | buf[p + 3]
        q = p + 4 + info_length
        if q + 2 > end:
            return
        map_end = min(q + 2 + ((buf[q] << 8) | buf[q + 1]), end)
        q += 2
        entries: dict[int, int] = {}
        while q + 4 <= map_end:
            stream_type, stream_id = buf[q], buf[q + 1]
            q += 4 + ((buf[q + 2] << 8) | buf[q + 3])
            entries[stream_id] = stream_type
        if not entries:
            return
        self._psm_seen = True
        for stream_id, stream_type in entries.items():
            if self._psm.get(stream_id) != stream_type and stream_id in self._tracks:
                # The stream changed codec (a device reconfigured mid-stream): start it anew.
                self.stats.dropped_frames += self._tracks.pop(stream_id).drop()
        self._psm = entries
