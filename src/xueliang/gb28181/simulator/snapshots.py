"""Snapshots for simulated GB/T 28181-2022 devices: a JPEG of the synthetic scene, and its
upload to the address a SnapShotConfig gave, as devices do it (an HTTP POST of
``multipart/form-data`` with the SessionID and the picture under its file ID). Blocking: the
runner calls these in a worker thread."""

from __future__ import annotations

import logging
import secrets
import urllib.error
import urllib.request
from datetime import datetime
from fractions import Fraction

log = logging.getLogger(__name__)

USER_AGENT = "Xueliang-Simulator"


def snapshot_jpeg(width: int, height: int, n: int, at: float, seed: int = 0) -> bytes:
    """Frame ``n`` of the synthetic scene at Unix time ``at``, as a JPEG."""
    import av

    from xueliang.media.sources.simulator import SimSpec, SyntheticScene

    frame = SyntheticScene(SimSpec("mjpeg", width, height, 1, seed=seed)).render(n, at)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = encoder.encode(frame.reformat(format="yuvj420p")) + encoder.encode(None)
    if not packets:
        raise RuntimeError("the JPEG encoder gave nothing")
    return bytes(packets[0])


def file_id(channel_id: str, at: float, index: int) -> str:
    """A snapshot file ID as devices make them: channel, 02, the local time, a number."""
    return f"{channel_id}02{datetime.fromtimestamp(at).strftime('%Y%m%d%H%M%S')}{index:05d}"


def multipart_body(session_id: str, name: str, jpeg: bytes) -> tuple[bytes, str]:
    """(body, content type) of an upload: the SessionID field and the picture."""
    boundary = f"----xueliang{secrets.token_hex(12)}"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="SessionID"\r\n\r\n'
        f"{session_id}\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + jpeg + tail, f"multipart/form-data; boundary={boundary}"


def upload(url: str, session_id: str, name: str, jpeg: bytes, timeout: float = 10.0) -> int:
    """POST one picture; the HTTP status (0 when the platform could not be reached)."""
    if not url.lower().startswith(("http://", "https://")):
        log.warning("snapshot upload URL %r is not HTTP: not uploaded", url)
        return 0
    body, content_type = multipart_body(session_id, name, jpeg)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        log.warning("snapshot upload to %s refused: %s", url, exc.code)
        return int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        log.warning("snapshot upload to %s failed: %s", url, exc)
        return 0
