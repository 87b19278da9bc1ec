"""A media worker's own live server, in this process: real sockets, real WebSocket clients
(the websockets library's, and a hand-driven wsproto client for a viewer that stops reading)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from tests.support.wait import wait_until
from xueliang.media import live_server
from xueliang.media.live import Fragment, InitMessage, LiveItem
from xueliang.media.live_server import LiveServer
from xueliang.media.tickets import TicketVerifier, issue

KEY = b"s" * 32
INIT = InitMessage("avc1.42c01e", 'video/mp4; codecs="avc1.42c01e"', b"\0\0\0\x08ftyp")


class FakeChannel:
    """Stands in for the runner's fan-out: what matters here is the server, not the muxer."""

    def __init__(self) -> None:
        self.sinks: dict[object, Callable[[LiveItem], bool]] = {}
        self.lock = threading.Lock()
        self.left = threading.Event()

    def join(self, channel_id: str, key: object, sink: Callable[[LiveItem], bool]) -> bool:
        if channel_id != "c1":
            return False
        with self.lock:
            self.sinks[key] = sink
            sink(INIT)
        return True

    def leave(self, channel_id: str, key: object) -> None:
        with self.lock:
            self.sinks.pop(key, None)
        self.left.set()

    def push(self, item: LiveItem) -> None:
        with self.lock:
            for key, sink in list(self.sinks.items()):
                if not sink(item):
                    del self.sinks[key]


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def server(channel: FakeChannel) -> Iterator[LiveServer]:
    srv = LiveServer("127.0.0.1", 0, TicketVerifier(KEY), join=channel.join, leave=channel.leave)
    srv.start()
    yield srv
    srv.stop()


def url(srv: LiveServer, channel_id: str = "c1", ticket: str | None = None) -> str:
    if ticket is None:
        ticket, _ = issue(KEY, channel_id, "tester", now=time.time())
    return f"ws://127.0.0.1:{srv.port}/live/{channel_id}?ticket={ticket}"


def test_viewer_gets_init_then_every_fragment_in_order(
    server: LiveServer, channel: FakeChannel
) -> None:
    with connect(url(server)) as ws:
        head = json.loads(ws.recv())
        assert head == {"type": "init", "codec": INIT.codec, "mime": INIT.mime}
        assert ws.recv() == INIT.segment
        wait_until(lambda: len(channel.sinks) == 1, 5, "viewer joined")
        # Sizes that take each of the WebSocket header's three length forms.
        sizes = (3, 1000, 20000)
        for i in range(200):
            channel.push(Fragment(i.to_bytes(4, "big") * sizes[i % 3], keyframe=i == 0))
        got = [ws.recv(timeout=5) for _ in range(200)]
        assert [int.from_bytes(g[:4], "big") for g in got] == list(range(200))
        assert [len(g) for g in got] == [4 * sizes[i % 3] for i in range(200)]
        assert server.viewer_count == 1
    assert channel.left.wait(5), "the server let the channel go when the viewer left"
    wait_until(lambda: server.viewer_count == 0, 5, "viewer gone")


def test_frames_go_out_on_the_next_flush_and_bursts_at_once(
    server: LiveServer, channel: FakeChannel
) -> None:
    """Frames are queued by the ingest thread and sent by the server's thread every
    FLUSH_SECONDS: a lone frame arrives without waiting for more, and a burst larger than
    SEND_NOW_BYTES (a new viewer's GOP, a big key frame) goes at once, in order."""
    with connect(url(server)) as ws:
        ws.recv(), ws.recv()  # init
        wait_until(lambda: len(channel.sinks) == 1, 5, "viewer joined")
        t0 = time.monotonic()
        channel.push(Fragment(b"lone", keyframe=True))
        assert ws.recv(timeout=5) == b"lone"
        assert time.monotonic() - t0 < 0.5
        big = [bytes([i]) * (live_server.SEND_NOW_BYTES // 3) for i in range(9)]
        for frame in big:
            channel.push(Fragment(frame, keyframe=False))
        assert [ws.recv(timeout=5) for _ in big] == big


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/live/c1?ticket=forged.ticket", 403),
        ("/live/c1", 403),
        ("/elsewhere/c1?ticket=x", 404),
        ("/live", 404),
    ],
)
def test_refused_without_a_valid_ticket(server: LiveServer, path: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{server.port}{path}")
    assert refused.value.response.status_code == status


def test_a_ticket_is_single_use_and_bound_to_its_channel(server: LiveServer) -> None:
    ticket, _ = issue(KEY, "c1", "tester", now=time.time())
    with connect(url(server, ticket=ticket)) as ws:
        assert json.loads(ws.recv())["type"] == "init"
    with pytest.raises(InvalidStatus) as again:
        connect(url(server, ticket=ticket))
    assert again.value.response.status_code == 403
    assert b"used already" in again.value.response.body
    other, _ = issue(KEY, "c2", "tester", now=time.time())
    with pytest.raises(InvalidStatus) as wrong:
        connect(url(server, "c1", ticket=other))
    assert b"another channel" in wrong.value.response.body


def test_channel_not_here_is_said_then_closed(server: LiveServer) -> None:
    with connect(url(server, "c2")) as ws:
        closed = json.loads(ws.recv())
        assert closed["type"] == "closed" and "not live here" in closed["message"]
        with pytest.raises(Exception, match="1011"):
            ws.recv(timeout=5)


def test_plain_http_gets_an_error_not_a_hang(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /live/c1 HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 4")


def _raw_viewer(srv: LiveServer) -> socket.socket:
    """A viewer that completes the handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    ws = WSConnection(ConnectionType.CLIENT)
    target = url(srv).split(str(srv.port), 1)[1]
    sock.sendall(ws.send(Request(host="127.0.0.1", target=target)))
    while True:
        ws.receive_data(sock.recv(4096))
        if any(isinstance(e, AcceptConnection) for e in ws.events()):
            return sock


def test_a_slow_viewer_is_dropped_and_the_others_and_ingest_go_on(
    server: LiveServer, channel: FakeChannel
) -> None:
    slow = _raw_viewer(server)
    received: list[int] = []
    with connect(url(server), max_size=None) as fast:
        assert json.loads(fast.recv())["type"] == "init"
        fast.recv()
        wait_until(lambda: len(channel.sinks) == 2, 5, "both viewers joined")
        frame = b"\xab" * 65536
        count = 2 * live_server.VIEWER_BUFFER_BYTES // len(frame) + 200
        reader = threading.Thread(
            target=lambda: received.extend(len(fast.recv(timeout=10)) for _ in range(count))
        )
        reader.start()
        pushing = 0.0
        for i in range(count):
            # The fast viewer reads as a browser does: it stays within 16 frames of the live
            # edge (the test waits for it; a loaded CI machine must not make it "slow").
            wait_until(lambda i=i: len(received) >= i - 16, 10, "the fast viewer to keep up")
            t0 = time.monotonic()
            channel.push(Fragment(frame, keyframe=False))
            pushing += time.monotonic() - t0
        # The slow one was dropped by the push that overfilled it; the fast one is still in.
        assert len(channel.sinks) == 1
        reader.join(30)
    # Handing frames to the viewers never waited for the slow one (a blocked send would).
    assert pushing < 5
    assert len(received) == count and set(received) == {65536}
    # The fast one's leave comes from the server thread once it sees the close.
    wait_until(lambda: len(channel.sinks) == 0, 10, "the fast viewer to leave")
    # The slow viewer's connection ends: after what its buffers held, the socket closes.
    slow.settimeout(10)
    total = 0
    while chunk := slow.recv(1 << 20):
        total += len(chunk)
    assert total < count * len(frame)
    slow.close()


def test_stopping_tells_viewers(channel: FakeChannel) -> None:
    srv = LiveServer("127.0.0.1", 0, TicketVerifier(KEY), join=channel.join, leave=channel.leave)
    srv.start()
    with connect(url(srv)) as ws:
        ws.recv()
        ws.recv()
        wait_until(lambda: len(channel.sinks) == 1, 5, "joined")
        srv.stop()
        closed = json.loads(ws.recv(timeout=5))
        assert closed == {"type": "closed", "message": "the media worker is stopping"}
