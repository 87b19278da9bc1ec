"""What ingest needs from any source: its streams, then packets until it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import av
from av.stream import Stream

from xueliang.media.hub import StreamInfo

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet


@dataclass
class OpenSource:
    streams: list[StreamInfo]
    # Frames per second of the video, for filling timestamps the source leaves out.
    frame_rate: float
    packets: Iterator[Packet]
    # Instead of ``packets``: delivers whole pictures by calling ``publish`` (maybe from
    # another thread) until the session ends or ``stop`` is set; raises why it ended.
    pump: Callable[[Callable[[Packet], None], StopFlag], None] | None = None


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...
