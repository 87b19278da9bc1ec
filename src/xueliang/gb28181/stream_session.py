"""What a GB/T 28181 media session is: the route to its channel, its state, the view of it the
API lists, and the error that says which step of opening it failed.

Shared by live sessions (streams.py), history sessions (stream_history.py) and the dialog
machinery under both (stream_dialogs.py); also what the register's routes (routes.py) name.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from xueliang.core.errors import DeviceError
from xueliang.gb28181 import sdp
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.sip.dialog import Dialog
from xueliang.media.model import DownloadTarget
from xueliang.media.plans import RecordingPlan

MediaTransport = Literal["udp", "tcp-passive", "tcp-active"]
MEDIA_TRANSPORTS: tuple[MediaTransport, ...] = ("udp", "tcp-passive", "tcp-active")


class StreamFailed(DeviceError):
    """A stream from a GB/T 28181 device could not be had; the message says which step failed."""

    code = "stream_failed"

    def __init__(self, message: str, *, retry_tcp: bool = False) -> None:
        super().__init__(message)
        self.retry_tcp = retry_tcp


@dataclass(frozen=True, slots=True)
class ChannelRoute:
    """What the register says of a GB channel: which device serves it and how."""

    channel_id: str
    device_id: str
    remote_id: str  # the ID the device uses for the channel (the Request-URI of the INVITE)
    transport: MediaTransport
    plan: RecordingPlan  # what the recorder does with the stream
    records: bool  # the plan records on the platform: keep the stream up


@dataclass(eq=False)
class StreamSession:
    key: str  # the media plane's stream key: the channel ID, or channel~n for history
    route: ChannelRoute
    kind: sdp.SessionType
    transport: MediaTransport
    port: int
    ssrc: str
    opened_at: float
    touched: float
    start: int = 0  # Unix seconds, history only
    stop: int = 0
    call_id: str | None = None
    dialog: Dialog | None = None
    to: Address | None = None
    online: asyncio.Event = field(default_factory=asyncio.Event)
    last_reason: str | None = None
    ended: str | None = None
    end_of_file: bool = False
    rtsp_seq: int = 0
    peer: tuple[str, int] | None = None  # tcp-active: where we connect
    ready: bool = False  # negotiated and video arrived: from now on the reaper looks at it
    offline_since: float | None = None  # video stopped arriving (the ingest says why)
    download: DownloadTarget | None = None  # a Download: the file the stream goes into
    stream: int = 0  # 2022's a=streamnumber: 0 main stream (recorded), 1 sub stream, …

    @property
    def channel_id(self) -> str:
        return self.route.channel_id

    @property
    def device_id(self) -> str:
        return self.route.device_id


@dataclass(frozen=True, slots=True)
class StreamView:
    key: str
    channel_id: str
    device_id: str
    kind: str
    transport: str
    port: int
    ssrc: str
    online: bool
    start: int
    stop: int
    end_of_file: bool
    stream: int = 0
