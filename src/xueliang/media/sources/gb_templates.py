"""PyAV stream templates for a GB/T 28181 stream, built from its first frames.

Consumers set up their outputs from a ``StreamInfo.template`` (``add_stream_from_template``
copies its codec parameters), so the template must carry what a camera's SDP would: codec,
picture size and the parameter sets (extradata) for video; rate and channels for audio. A PS
stream says none of that, so FFmpeg reads it from the stream itself: the first key frame
(Annex B, parameter sets in front) is opened as a raw H.264/H.265 input in memory, and G.711 as
raw A-law/µ-law at 8 kHz mono. AAC arrives as ADTS, and MP4 wants the AudioSpecificConfig out
of band, which FFmpeg's ADTS reader leaves unset: it is built from the first ADTS header, and
the ADTS headers are taken off the packets (``adts_frames``).

All templates live in one holder container (written nowhere) in stream-index order, because a
packet's ``stream_index`` comes from the template it is given and must equal its
``StreamInfo.index``. The holder stays open while the session runs: a template is a view into
it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import InputContainer, OutputContainer
from av.stream import Stream

from xueliang.media.hub import StreamInfo
from xueliang.rtsp.depacketize import AAC_RATES

TIME_BASE = Fraction(1, 90000)
G711_RATE = 8000
AAC_FRAME_SAMPLES = 1024
_RAW_VIDEO = {"h264": "h264", "hevc": "hevc"}
_G711 = {"pcm_alaw": "alaw", "pcm_mulaw": "mulaw"}


class TemplateError(ValueError):
    """A frame FFmpeg could not make a stream of (corrupt, or a codec it cannot read)."""


@dataclass(frozen=True, slots=True)
class AdtsConfig:
    sample_rate: int
    channels: int
    audio_specific_config: bytes


def adts_config(data: bytes) -> AdtsConfig | None:
    """The stream parameters in the first ADTS header of ``data``; None when there is none."""
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xF6 != 0xF0:
        return None
    profile = data[2] >> 6
    index = (data[2] >> 2) & 0x0F
    channels = ((data[2] & 0x01) << 2) | (data[3] >> 6)
    if index >= len(AAC_RATES) or channels == 0:
        return None  # a channel configuration of 0 needs an in-band PCE: not from a camera
    object_type = profile + 1
    asc = bytes(((object_type << 3) | (index >> 1), ((index & 1) << 7) | (channels << 3)))
    return AdtsConfig(AAC_RATES[index], channels, asc)


def adts_frames(data: bytes) -> list[bytes]:
    """The raw AAC frames in a run of ADTS frames, headers (and CRCs) removed; a truncated or
    garbled tail is left out."""
    out = []
    pos, size = 0, len(data)
    while pos + 7 <= size:
        if data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:
            break
        length = ((data[pos + 3] & 0x03) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        header = 7 if data[pos + 1] & 0x01 else 9
        if length <= header or pos + length > size:
            break
        out.append(data[pos + header : pos + length])
        pos += length
    return out


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class StreamTemplates:
    """Builds the templates of one session, in the order of the stream indexes they get."""

    def __init__(self) -> None:
        # NUT takes every codec a GB stream carries (MP4 refuses G.711), and writing its
        # header copies each stream's codec context into its parameters, extradata included.
        self._holder: OutputContainer = av.open(_Discard(), "w", format="nut")
        self._inputs: list[InputContainer] = []
        self._streams: list[tuple[str, str, Stream]] = []

    def _read(self, data: bytes, fmt: str, options: dict[str, str] | None = None) -> Stream:
        """The stream FFmpeg finds in ``data``, read as ``fmt``."""
        try:
            source = av.open(io.BytesIO(data), "r", format=fmt, options=options or {})
        except av.error.FFmpegError as exc:
            raise TemplateError(f"FFmpeg cannot read the {fmt} stream: {exc}") from exc
        self._inputs.append(source)
        if not source.streams:
            raise TemplateError(f"no {fmt} stream found")
        return source.streams[0]

    def _add(self, found: Stream) -> Stream:
        try:
            stream = self._holder.add_stream_from_template(found)
        except (ValueError, av.error.FFmpegError) as exc:
            raise TemplateError(f"no template for {found.codec_context.name}: {exc}") from exc
        stream.time_base = TIME_BASE
        return stream

    def add_video(self, codec: str, keyframe: bytes) -> None:
        """H.264 or H.265 from a key frame with its parameter sets (Annex B)."""
        fmt = _RAW_VIDEO.get(codec)
        if fmt is None:
            raise TemplateError(f"video codec {codec} is not supported")
        found = self._read(keyframe, fmt)
        ctx = found.codec_context
        if not (getattr(ctx, "width", 0) and getattr(ctx, "height", 0)):
            raise TemplateError(f"the {codec} key frame carries no picture size")
        self._streams.append(("video", codec, self._add(found)))

    def add_g711(self, codec: str) -> None:
        fmt = _G711[codec]
        silence = bytes(160)
        options = {"sample_rate": str(G711_RATE), "ch_layout": "mono"}
        self._streams.append(("audio", codec, self._add(self._read(silence, fmt, options))))

    def add_aac(self, adts: bytes) -> AdtsConfig:
        config = adts_config(adts)
        if config is None:
            raise TemplateError("AAC audio without an ADTS header")
        stream = self._add(self._read(adts, "aac"))
        stream.codec_context.extradata = config.audio_specific_config
        self._streams.append(("audio", "aac", stream))
        return config

    def finish(self) -> list[StreamInfo]:
        """The StreamInfo of each stream added; the in-memory inputs are closed."""
        self._holder.start_encoding()
        for source in self._inputs:
            source.close()
        self._inputs.clear()
        return [
            StreamInfo(
                index=stream.index, kind=kind, codec=codec, time_base=TIME_BASE, template=stream
            )
            for kind, codec, stream in self._streams
        ]

    def close(self) -> None:
        for source in self._inputs:
            source.close()
        self._inputs.clear()
        self._holder.close()
