"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, a peer nobody here wrote.

Run with the system Python (Debian's python3-gi), not the project's virtualenv:

    /usr/bin/python3 tests/support/gst_rtsp_server.py PORT [--user U --password P]

With --user, clients must answer a digest challenge. Serves live test patterns, endless
and in real time, on 127.0.0.1:
    /h264   H.264 320x240 25 fps, a key frame every 25 frames
    /h265   H.265 320x240 25 fps
    /h264-aac   /h264 with AAC-LC audio (16 kHz mono, RFC 3640), a sine tone
    /h264-pcma  /h264 with G.711 A-law audio (PCMA, 8 kHz mono), as most cameras send
    /h264-pcmu  /h264 with G.711 µ-law audio (PCMU, 8 kHz mono)
    /file   with --file PATH: that MPEG-TS file's H.264, from its start for each client (not
            shared); how to serve what the live encoder will not make, such as B-frames
Prints READY once it listens.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

CAPS = "video/x-raw,width=320,height=240,framerate=25/1"
H264 = (
    f"videotestsrc is-live=true pattern=ball ! {CAPS} ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1"
)
TONE = "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 samplesperbuffer=160"
PIPELINES = {
    "/h264": (
        f"( videotestsrc is-live=true pattern=ball ! {CAPS} ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 ! "
        "rtph264pay name=pay0 pt=96 config-interval=-1 )"
    ),
    "/h265": (
        f"( videotestsrc is-live=true pattern=smpte ! {CAPS} ! "
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 ! "
        "rtph265pay name=pay0 pt=96 config-interval=-1 )"
    ),
    # Audio as a second payloader (pay1) beside the video. AAC: voaacenc (Debian's
    # gstreamer1.0-plugins-bad, as is x265enc).
    "/h264-aac": (
        f"( {H264} {TONE} ! audio/x-raw,rate=16000,channels=1 ! "
        "voaacenc bitrate=32000 ! rtpmp4gpay name=pay1 pt=97 )"
    ),
    "/h264-pcma": (
        f"( {H264} {TONE} ! audio/x-raw,rate=8000,channels=1 ! "
        "alawenc ! rtppcmapay name=pay1 pt=8 )"
    ),
    "/h264-pcmu": (
        f"( {H264} {TONE} ! audio/x-raw,rate=8000,channels=1 ! "
        "mulawenc ! rtppcmupay name=pay1 pt=0 )"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--file")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    mounts = server.get_mount_points()
    pipelines = dict(PIPELINES)
    if args.file:
        pipelines["/file"] = (
            f"( filesrc location={args.file} ! tsdemux ! h264parse ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    for path, launch in pipelines.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(path != "/file")
        if args.user:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("user", "media.factory.access", True)
            permissions.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    if args.user:
        # Digest, as IP cameras answer by default.
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
