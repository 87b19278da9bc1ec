"""Per-stream timestamps: missing ones filled in from the frame interval, 33-bit ones unwrapped."""

from __future__ import annotations

from xueliang.gb28181.ps.syntax import PTS_WRAP


class _Clock:
    """Fills in missing timestamps and unwraps the 33-bit ones, per stream."""

    __slots__ = ("interval", "last_dts", "last_pts", "wrap")

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.wrap = 0

    def stamp(self, pts: int | None, dts: int | None, duration: int) -> tuple[int, int] | None:
        last_dts = self.last_dts
        if pts is None:
            if last_dts is None or self.last_pts is None:
                return None
            step = duration or self.interval
            pts, dts = self.last_pts + step, last_dts + step
        else:
            if dts is None:
                dts = pts
            pts += self.wrap
            dts += self.wrap
            if last_dts is not None:
                if dts < last_dts - (PTS_WRAP >> 1):
                    self.wrap += PTS_WRAP
                    pts += PTS_WRAP
                    dts += PTS_WRAP
                step = dts - last_dts
                if 0 < step < 900_000 and not duration:
                    self.interval = step
        self.last_pts, self.last_dts = pts, dts
        return pts, dts
