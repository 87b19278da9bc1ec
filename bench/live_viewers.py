"""Live viewers for bench_media.py: one WebSocket per URL, bytes read and counted, nothing
decoded (the browser's side; its CPU is not the platform's and is not counted).

    python bench/live_viewers.py WS_URL [WS_URL …]

Prints "READY" once every viewer is accepted; for each line read from stdin, a JSON list of the
bytes each viewer has received; exits when stdin closes.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request


def open_viewer(url: str) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=parts.hostname, target=f"{parts.path}?{parts.query}")))
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError(f"{url}: closed during the handshake")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                sock.setblocking(False)
                return sock
            if isinstance(event, RejectConnection):
                raise RuntimeError(f"{url}: refused with {event.status_code}")


def main() -> None:
    urls = sys.argv[1:]
    sel = selectors.DefaultSelector()
    counts = [0] * len(urls)
    for i, url in enumerate(urls):
        sel.register(open_viewer(url), selectors.EVENT_READ, i)
    sel.register(sys.stdin, selectors.EVENT_READ, -1)
    print("READY", flush=True)
    buf = bytearray(1 << 20)
    while True:
        for key, _ in sel.select():
            if key.data == -1:
                if not sys.stdin.readline():
                    return
                print(json.dumps(counts), flush=True)
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                continue
            if n == 0:
                sel.unregister(sock)
                sock.close()
            counts[key.data] += n


if __name__ == "__main__":
    main()
