"""A media worker's own live-view server: WebSocket viewers served straight from the process
that muxes their channel.

Relaying every frame through the control process cost more than recording it (a copy, a
pickle and a wake-up per fragment on both sides). Here the ingest thread that muxes a fragment
only queues it for its viewers; this server's thread sends every viewer what has queued, with
one non-blocking send per viewer every FLUSH_SECONDS (a send per frame from each ingest thread
cost a system call and a hand-over of the GIL per frame and viewer). A viewer whose socket is
full keeps the rest in a buffer, sent when the socket drains; a viewer whose backlog passes
VIEWER_BUFFER_BYTES (seconds of video) is dropped, never slowing ingest.

Who may watch is decided by the platform, which issues a ticket (tickets.py) after the
permission check and the audit record; this server only verifies it. The WebSocket protocol is
wsproto's (sans-I/O), the messages are the platform's relay protocol (api/routers/live.py):
``{"type": "init", …}`` text then the init segment, one binary message per frame, and
``{"type": "closed", …}`` before the server closes.

    ws://HOST:PORT/live/{channel_id}?ticket=…
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from xueliang.media.live import Fragment, InitMessage, LiveItem
from xueliang.media.tickets import TicketError, TicketVerifier

log = logging.getLogger(__name__)

# Bytes a viewer may have waiting (its socket full) before it is dropped: ~8 s of 4 Mbit/s.
VIEWER_BUFFER_BYTES = 4 * 1024 * 1024
# How often queued frames go out: at 25 fps one or two frames per send, within live view's
# latency budget (500 ms glass to glass).
FLUSH_SECONDS = 0.04
SEND_NOW_BYTES = 256 * 1024
HANDSHAKE_SECONDS = 10.0  # a connection that has not asked for a channel by then is closed
MAX_CONNECTIONS = 1024
_RECV = 65536
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011


TOO_SLOW = "too slow: the viewer fell behind the live stream"


def _binary_header(n: int) -> bytes:
    """RFC 6455 header of a final, unmasked binary frame of n bytes (server to client)."""
    if n < 126:
        return bytes((0x82, n))
    if n < 1 << 16:
        return struct.pack(">BBH", 0x82, 126, n)
    return struct.pack(">BBQ", 0x82, 127, n)


class _Viewer:
    """One connection: handshake, then frames. ``deliver`` may run in any thread."""

    def __init__(self, server: LiveServer, sock: socket.socket, now: float) -> None:
        self.server = server
        self.sock = sock
        self.ws = WSConnection(ConnectionType.SERVER)
        self.lock = threading.Lock()
        self.pending = bytearray()
        # Frames queued since the last flush: WebSocket header and fragment, alternately.
        self.outbox: list[bytes] = []
        self.outbox_bytes = 0
        self.accepted_at = now
        self.channel_id: str | None = None  # set once joined
        self.open = False
        self.closing = False  # no more frames: flush what is pending, then close
        self.done = False  # the server thread closes the socket and lets the channel go
        self.registered_write = False

    # --- from the channel (ingest thread) ----------------------------------------------------

    def deliver(self, item: LiveItem) -> bool:
        with self.lock:
            if self.closing or self.done:
                return False
            try:
                if isinstance(item, Fragment):
                    # The per-frame path: the frame header by hand, queued with the payload
                    # for the next flush, no copy (wsproto would join them).
                    size = len(item.data)
                    self.outbox += (_binary_header(size), item.data)
                    self.outbox_bytes += size
                    # A burst (a new viewer's GOP, a large key frame) or a full socket goes
                    # on at once, so the limit below counts only what the viewer has not taken.
                    if (self.pending or self.outbox_bytes >= SEND_NOW_BYTES) and not self._write():
                        self._close_locked(CLOSE_INTERNAL, TOO_SLOW)
                        return False
                    return True
                if isinstance(item, InitMessage):
                    head = json.dumps({"type": "init", "codec": item.codec, "mime": item.mime})
                    out = self.ws.send(TextMessage(data=head))
                    out += self.ws.send(BytesMessage(data=item.segment))
                else:
                    self._close_locked(CLOSE_INTERNAL, item.reason)
                    return False
            except LocalProtocolError:  # the viewer closed meanwhile
                self.closing = True
                self.server.wake()
                return False
            if not self._write(out):
                self._close_locked(CLOSE_INTERNAL, TOO_SLOW)
                return False
            return True

    # --- writing (any thread, under the lock) ------------------------------------------------

    def _write(self, *parts: bytes) -> bool:
        """Send now (after the queued frames), or buffer what the socket will not take; False
        when over the limit."""
        if self.outbox:
            parts = (*self.outbox, *parts)
            self.outbox, self.outbox_bytes = [], 0
        if not parts:
            return True
        if self.pending:
            for part in parts:
                self.pending += part
            return len(self.pending) <= VIEWER_BUFFER_BYTES
        try:
            sent = self.sock.sendmsg(parts) if len(parts) > 1 else self.sock.send(parts[0])
        except BlockingIOError:
            sent = 0
        except OSError:
            self.done = True
            self.server.wake()
            return True  # gone, not slow: the server thread cleans up
        if sent < sum(len(part) for part in parts):
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                self.pending += memoryview(part)[sent:]
                sent = 0
            self.server.wake()  # to watch the socket for room
        return True

    def _close_locked(self, code: int, reason: str) -> None:
        """Say why, then close (after what is pending has gone)."""
        out = b""
        try:
            if self.open:
                out += self.ws.send(
                    TextMessage(data=json.dumps({"type": "closed", "message": reason}))
                )
            out += self.ws.send(CloseConnection(code=code, reason=reason[:100]))
        except LocalProtocolError:
            pass
        self.closing = True
        if out and len(self.pending) <= VIEWER_BUFFER_BYTES:
            self._write(out)
        else:
            self.pending.clear()  # too slow to take even the notice
        self.server.wake()

    # --- from the server thread --------------------------------------------------------------

    def send_queued(self) -> None:
        with self.lock:
            if self.outbox and not self.done and not self._write():
                self._close_locked(CLOSE_INTERNAL, TOO_SLOW)

    def flush(self) -> None:
        with self.lock:
            if self.pending:
                try:
                    sent = self.sock.send(self.pending)
                    del self.pending[:sent]
                except BlockingIOError:
                    pass
                except OSError:
                    self.pending.clear()
                    self.done = True
            if self.closing and not self.pending:
                self.done = True

    def readable(self) -> None:
        try:
            data = self.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        with self.lock:
            try:
                self.ws.receive_data(data or None)
                events = list(self.ws.events())
            except RemoteProtocolError as exc:
                self._refuse_locked(exc)
                return
        if not data:
            with self.lock:
                self.done = True
            return
        for event in events:
            self._on_event(event)

    def _refuse_locked(self, exc: RemoteProtocolError) -> None:
        hint = exc.event_hint
        out = b""
        if isinstance(hint, RejectConnection | CloseConnection):
            try:
                out = self.ws.send(hint)
            except LocalProtocolError:
                out = b""
        self.closing = True
        if out:
            self._write(out)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Request):
            self.server.handshake(self, event)
        elif isinstance(event, CloseConnection):
            with self.lock:
                with contextlib.suppress(LocalProtocolError):
                    self._write(self.ws.send(event.response()))
                self.closing = True
        elif isinstance(event, Ping):
            with self.lock, contextlib.suppress(LocalProtocolError):
                self._write(self.ws.send(event.response()))
        # Text and binary messages from a viewer mean nothing here; they are ignored.

    def reject(self, status: int, message: str) -> None:
        with self.lock:
            try:
                out = self.ws.send(
                    RejectConnection(
                        status_code=status,
                        headers=[(b"content-type", b"text/plain; charset=utf-8")],
                        has_body=True,
                    )
                )
                out += self.ws.send(RejectData(data=message.encode(), body_finished=True))
            except LocalProtocolError:
                out = b""
            self.closing = True
            if out:
                self._write(out)

    def accept(self) -> None:
        with self.lock:
            self._write(self.ws.send(AcceptConnection()))
            self.open = True


# Called with (channel_id, viewer key, sink); False when the channel does not run here.
JoinFn = Callable[[str, object, Callable[[LiveItem], bool]], bool]
LeaveFn = Callable[[str, object], None]


class LiveServer:
    def __init__(
        self,
        host: str,
        port: int,
        verifier: TicketVerifier,
        *,
        join: JoinFn,
        leave: LeaveFn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._join = join
        self._leave = leave
        self._clock = clock
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._viewers: set[_Viewer] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self._thread.join(timeout=5)

    @property
    def viewer_count(self) -> int:
        return sum(1 for v in list(self._viewers) if v.open and not v.done)

    def wake(self) -> None:
        # One byte per burst of wake-ups is enough: the loop looks at every viewer.
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    # --- the server thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic()
        try:
            while not self._stopping:
                now = time.monotonic()
                if now >= next_flush:
                    self._send_queued()
                    next_flush = now + FLUSH_SECONDS
                timeout = max(0.0, next_flush - now) if self._viewers else 1.0
                for key, mask in self._sel.select(timeout=timeout):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                        # After draining: a wake-up from now on sends a new byte, and one
                        # that came meanwhile is seen by _tend below.
                        self._woken = False
                    else:
                        viewer: _Viewer = key.data
                        if mask & selectors.EVENT_READ:
                            viewer.readable()
                        if mask & selectors.EVENT_WRITE:
                            viewer.flush()
                self._tend()
        finally:
            for viewer in list(self._viewers):
                with viewer.lock:
                    if viewer.open and not viewer.closing:
                        viewer._close_locked(CLOSE_GOING_AWAY, "the media worker is stopping")
                viewer.flush()
                self._drop(viewer)
            self._sel.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _send_queued(self) -> None:
        for viewer in list(self._viewers):
            if viewer.outbox:
                viewer.send_queued()

    def _accept(self) -> None:
        while True:
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: refuse quietly, keep serving
                log.warning("live server: accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            viewer = _Viewer(self, sock, time.monotonic())
            if len(self._viewers) >= MAX_CONNECTIONS:
                sock.close()
                continue
            self._viewers.add(viewer)
            self._sel.register(sock, selectors.EVENT_READ, viewer)

    def _tend(self) -> None:
        """Close what is done, watch sockets with something pending, time out handshakes."""
        now = time.monotonic()
        for viewer in list(self._viewers):
            if not viewer.done and viewer.closing:
                viewer.flush()
            if (
                not viewer.open
                and not viewer.closing
                and now - viewer.accepted_at > HANDSHAKE_SECONDS
            ):
                viewer.done = True
            if viewer.done:
                self._drop(viewer)
                continue
            want = bool(viewer.pending)
            if want != viewer.registered_write:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
                self._sel.modify(viewer.sock, events, viewer)
                viewer.registered_write = want

    def _drop(self, viewer: _Viewer) -> None:
        self._viewers.discard(viewer)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(viewer.sock)
        viewer.sock.close()
        if viewer.channel_id is not None:
            self._leave(viewer.channel_id, viewer)

    def handshake(self, viewer: _Viewer, request: Request) -> None:
        url = urlsplit(request.target)
        parts = url.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "live" or not parts[1]:
            viewer.reject(404, "not found: ws://HOST:PORT/live/{channel_id}?ticket=…")
            return
        channel_id = unquote(parts[1])
        ticket = parse_qs(url.query).get("ticket", [""])[0]
        try:
            granted = self._verifier.verify(ticket, channel_id, now=self._clock())
        except TicketError as exc:
            viewer.reject(403, str(exc))
            return
        viewer.accept()
        viewer.channel_id = channel_id
        if not self._join(channel_id, viewer, viewer.deliver):
            viewer.channel_id = None
            with viewer.lock:
                viewer._close_locked(CLOSE_INTERNAL, f"channel {channel_id} is not live here")
            return
        log.info("live: %s watches %s directly", granted.subject, channel_id)
