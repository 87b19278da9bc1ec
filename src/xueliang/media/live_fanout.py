"""One watched channel's live muxer and everyone in the worker who takes its output.

Sinks are the viewers the worker serves itself (live_server.py) and the relay to the control
process (for its WebSocket fallback and HLS). The fan-out keeps the init segment and the
fragments since the last key frame, so a sink that joins later starts with a picture at once,
without restarting the muxer under the others.

``dispatch`` runs in the channel's ingest thread; ``add`` in whichever thread a sink joins from.
One lock orders them: a joining sink gets the init and the current GOP, then every fragment
after them, each exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable

from xueliang.media.live import Closed, Fragment, InitMessage, LiveItem, LiveMuxer

log = logging.getLogger(__name__)

# A sink answers False when it is gone (closed, or too slow): it is removed at once.
Sink = Callable[[LiveItem], bool]


class LiveFanout:
    def __init__(self) -> None:
        self.muxer = LiveMuxer(self.dispatch)
        self._lock = threading.Lock()
        self._init: InitMessage | None = None
        self._gop: list[Fragment] = []
        self._sinks: dict[Hashable, Sink] = {}

    def dispatch(self, item: LiveItem) -> None:
        with self._lock:
            if isinstance(item, InitMessage):
                self._init, self._gop = item, []
            elif isinstance(item, Fragment):
                if self._init is None:
                    return
                if item.keyframe:
                    self._gop = [item]
                elif self._gop:
                    self._gop.append(item)
            else:
                self._init, self._gop = None, []
            for key, sink in list(self._sinks.items()):
                if not self._call(sink, item):
                    del self._sinks[key]

    def add(self, key: Hashable, sink: Sink) -> None:
        """Add (or replace) a sink; it gets the init and this GOP's fragments first."""
        with self._lock:
            self._sinks[key] = sink
            if self._init is not None:
                ok = self._call(sink, self._init)
                for frag in self._gop:
                    ok = ok and self._call(sink, frag)
                if not ok:
                    del self._sinks[key]

    def remove(self, key: Hashable) -> bool:
        """Remove a sink; True when none is left (the muxer may stop)."""
        with self._lock:
            self._sinks.pop(key, None)
            return not self._sinks

    def close(self, reason: str) -> None:
        """The channel stops here: every sink is told, and let go."""
        self.dispatch(Closed(reason))
        with self._lock:
            self._sinks.clear()

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._sinks

    @staticmethod
    def _call(sink: Sink, item: LiveItem) -> bool:
        try:
            return sink(item)
        except Exception:  # one broken viewer must not stop the others or the ingest
            log.exception("live sink failed; dropped")
            return False
