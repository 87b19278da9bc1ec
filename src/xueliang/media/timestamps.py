"""Timestamp repair for packets from the network.

FFmpeg's RTSP reader hands out the first packet(s) of a session with no timestamps (pts = dts =
None), and cameras now and then send a dts that does not advance. A muxer refuses both, and a
first key frame without a timestamp would be dropped, losing the whole first GOP. This fills
the gaps by counting back from the first timed packet, and keeps dts strictly increasing.

Pure: works on anything with mutable ``pts``/``dts`` attributes; tested without media.
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class Timed(Protocol):
    pts: int | None
    dts: int | None


P = TypeVar("P", bound=Timed)


class TimestampRepair:
    def __init__(self, frame_duration: int) -> None:
        # In the stream's time base; the step assumed between back-filled packets.
        self._step = max(1, frame_duration)
        self._pending: list[Timed] = []
        self._last_dts: int | None = None

    def feed(self, packet: P) -> list[P]:
        """Packets ready to pass on, in order (none while waiting for the first timestamp)."""
        if packet.dts is None and packet.pts is None:
            if self._last_dts is None:
                self._pending.append(packet)
                return []
            packet.dts = self._last_dts + self._step
            packet.pts = packet.dts
        elif packet.dts is None:
            packet.dts = packet.pts
        elif packet.pts is None:
            packet.pts = packet.dts
        out: list[P] = []
        if self._pending:
            first = packet.dts
            assert first is not None
            n = len(self._pending)
            for i, waiting in enumerate(self._pending):
                waiting.dts = first - (n - i) * self._step
                waiting.pts = waiting.dts
                out.append(waiting)  # type: ignore[arg-type]
            self._pending.clear()
            self._last_dts = out[-1].dts
        assert packet.dts is not None and packet.pts is not None
        if self._last_dts is not None and packet.dts <= self._last_dts:
            packet.dts = self._last_dts + 1
        packet.pts = max(packet.pts, packet.dts)
        self._last_dts = packet.dts
        out.append(packet)
        return out

    def reset(self) -> None:
        """A new session: its clock starts anew."""
        self._pending.clear()
        self._last_dts = None
