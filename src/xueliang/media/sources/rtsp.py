"""RTSP pull with PyAV (FFmpeg's RTSP client: TCP or UDP, basic and digest auth)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import av

from xueliang.media.hub import StreamInfo
from xueliang.media.model import IngestSpec
from xueliang.media.sources.base import OpenSource, Packet

# Seconds a socket operation (connect, a read) may wait before the camera counts as gone.
# FFmpeg's own socket timeout, not PyAV's ``timeout=``: PyAV checks that with an interrupt
# callback FFmpeg calls on every network wait, and each call takes the GIL; with dozens of
# channels in a process that contention cost more CPU than the streams themselves.
SOCKET_TIMEOUT = 5.0


def authenticated_url(spec: IngestSpec) -> str:
    """The URL with the credentials put back in (FFmpeg answers basic and digest challenges)."""
    if not spec.username:
        return spec.url
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = quote(spec.username, safe="")
    secret = f":{quote(spec.password, safe='')}" if spec.password else ""
    netloc = f"{user}{secret}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@contextmanager
def open_rtsp(spec: IngestSpec) -> Iterator[av.container.InputContainer]:
    options = {
        "rtsp_transport": spec.transport,
        # Let FFmpeg start on the first packets instead of analysing seconds of stream.
        "fflags": "nobuffer",
        "analyzeduration": "1000000",
        "probesize": "500000",
        "timeout": str(int(SOCKET_TIMEOUT * 1_000_000)),  # microseconds
    }
    container = av.open(authenticated_url(spec), options=options)
    try:
        yield container
    finally:
        container.close()


def stream_infos(container: av.container.InputContainer) -> list[StreamInfo]:
    infos = []
    for s in container.streams:
        if s.type not in ("video", "audio") or s.time_base is None:
            continue
        infos.append(
            StreamInfo(
                index=s.index,
                kind=s.type,
                codec=s.codec_context.name,
                time_base=s.time_base,
                template=s,
            )
        )
    return infos


@contextmanager
def open_rtsp_source(spec: IngestSpec) -> Iterator[OpenSource]:
    with open_rtsp(spec) as container:
        infos = stream_infos(container)
        video = next((i for i in infos if i.kind == "video"), None)
        if video is None:
            raise RuntimeError("the stream has no video")
        vstream = container.streams[video.index]
        rate = float(vstream.average_rate or vstream.guessed_rate or 25)
        wanted = [container.streams[i.index] for i in infos]

        def packets() -> Iterator[Packet]:
            for packet in container.demux(wanted):
                if packet.size:  # size 0 is the demuxer's flush packet
                    yield packet

        yield OpenSource(streams=infos, frame_rate=rate, packets=packets())
