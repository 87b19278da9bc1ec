"""Viewers for ffmpeg's live output in bench_media.py: N listening TCP sockets, each taking one
connection (an ffmpeg process's fragmented-MP4 output) and reading what arrives, counting and
discarding it (the browser's side; its CPU is not counted).

    python bench/tcp_viewers.py N

Prints a JSON list of the N ports, then, for each line read from stdin, a JSON list of the bytes
each has received; exits when stdin closes.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys


def main() -> None:
    n = int(sys.argv[1])
    sel = selectors.DefaultSelector()
    listeners = []
    for i in range(n):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, ("listen", i))
        listeners.append(sock)
    received = [0] * n
    buf = bytearray(1 << 20)
    sel.register(sys.stdin, selectors.EVENT_READ, ("stdin", -1))
    print(json.dumps([s.getsockname()[1] for s in listeners]), flush=True)
    while True:
        for key, _ in sel.select():
            kind, i = key.data
            if kind == "stdin":
                if not sys.stdin.readline():
                    return
                print(json.dumps(received), flush=True)
            elif kind == "listen":
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, ("conn", i))
            else:
                try:
                    got = key.fileobj.recv_into(buf)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    got = 0
                if not got:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                received[i] += got


if __name__ == "__main__":
    main()
