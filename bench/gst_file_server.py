"""RTSP server for the media benchmark: GStreamer's gst-rtsp-server looping an MPEG-TS file.

Run with the system Python (python3-gi):

    /usr/bin/python3 bench/gst_file_server.py PORT FILE MOUNTS [shared]

Serves /cam0 … /cam{MOUNTS-1}: each client gets FILE from its start, in real time (a seeking,
looping shared source is refused at PLAY by gst-rtsp-server, so runs must stay shorter than the
file: 90 s). The server's own CPU is reported apart from the clients under test.

``shared``: one pipeline per mount for all its clients (they get the same packets at the same
moments) instead of one per client: far cheaper for the server, which otherwise takes most of a
core at 128 clients. A shared mount plays its file once (a later run on the same mount found it
ended), so bench_media.py gives every run mounts of its own.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, path, mounts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    shared = sys.argv[4:] == ["shared"]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    server.set_backlog(512)
    for i in range(mounts):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( filesrc location={path} ! tsdemux ! h264parse ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(shared)
        server.get_mount_points().add_factory(f"/cam{i}", factory)
    server.attach(None)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
