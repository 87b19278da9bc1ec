"""Downloads of device recordings into evidence exports (GB/T 28181 ``s=Download``).

An NVR or a camera with a card keeps video the platform may never have recorded. A download
asks the device for a range at a multiple of real time (``a=downloadspeed``); what arrives is
copied into one MP4 file by the media worker (media/download.py) and becomes an export like
one made from the platform's recordings: a stated reason, a SHA-256 in the row and in the audit
log. It runs as a job: the export says ``running`` with a progress, then ``done`` (the whole
range arrived), ``partial`` (the device sent less: it ended early, or stopped sending) or
``failed`` (nothing arrived).

The download ends when the media written covers the range (devices do not all send
MediaStatus 121), when the device says it is at the end (121) or hangs up (BYE), when video
stops arriving, or when somebody cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.aio import on_loop
from xueliang.core.errors import Conflict, InvalidInput
from xueliang.gb28181.stream_session import StreamSession
from xueliang.gb28181.streams import GbStreams
from xueliang.media.export import ExportJob, ExportService, ExportView
from xueliang.media.model import DownloadFinished, DownloadProgress, DownloadTarget, MediaEvent
from xueliang.media.service import MediaService

log = logging.getLogger(__name__)

DEFAULT_SPEED = 4
MAX_SPEED = 32
PROGRESS_WRITE_SECONDS = 2.0  # how often a running job's progress is written to its row
# A session gone without its file reported (its worker died): the job is finished with what
# the file holds after this long.
ORPHAN_SECONDS = 30.0


def complete_enough(seconds: float, expected: float) -> bool:
    """Whether ``seconds`` of media cover a range of ``expected`` seconds: a recording starts
    on the device's first key frame at or after the start, so a GOP or two may be missing."""
    return seconds >= expected - max(2.0, 0.02 * expected)


@dataclass(eq=False)
class _Running:
    job: ExportJob
    key: str
    expected: float  # seconds of media asked for
    seconds: float = 0.0
    size: int = 0
    written_at: float = 0.0
    closing: bool = False
    gone_since: float | None = None
    ended: str | None = None  # why its stream session ended


class GbDownloads:
    def __init__(
        self,
        streams: GbStreams,
        media: MediaService,
        exports: ExportService,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._streams = streams
        self._media = media
        self._exports = exports
        self._clock = clock
        self._jobs: dict[str, _Running] = {}  # by stream key
        self._done: dict[str, asyncio.Future[ExportView]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._media.listeners.append(self._on_media_event)
        self._streams.ended_listeners.append(self._on_session_ended)
        self._watch = self._loop.create_task(self._watch_forever())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._on_media_event in self._media.listeners:
            self._media.listeners.remove(self._on_media_event)
        for running in list(self._jobs.values()):
            await self._finish(running, "the platform stopped")

    # --- asking --------------------------------------------------------------------------------

    async def begin(
        self,
        principal: Principal,
        channel_id: str,
        start: datetime,
        end: datetime,
        reason: str,
        *,
        speed: int = DEFAULT_SPEED,
    ) -> ExportView:
        """Start downloading ``start``..``end`` of the channel's device recording (the caller
        checked the channel's scope). The export is returned running."""
        principal.require(Permission.VIDEO_EXPORT)
        if not 1 <= speed <= MAX_SPEED:
            raise InvalidInput(f"the download speed must be 1 … {MAX_SPEED}")
        if self._loop is None:
            raise Conflict("the GB/T 28181 server is not running")
        return await on_loop(
            self._loop, self._begin(principal, channel_id, start, end, reason, speed)
        )

    async def _begin(
        self,
        principal: Principal,
        channel_id: str,
        start: datetime,
        end: datetime,
        reason: str,
        speed: int,
    ) -> ExportView:
        job = await asyncio.to_thread(
            self._exports.begin_job, principal, channel_id, start, end, reason
        )
        expected = (end - start).total_seconds()
        try:
            session = await self._streams.open_history(
                channel_id,
                int(start.timestamp()),
                int(end.timestamp()),
                download=DownloadTarget(str(job.part), expected),
                speed=speed,
            )
        except BaseException as exc:
            why = str(exc) if isinstance(exc, Exception) else "the request was cancelled"
            await asyncio.to_thread(
                self._exports.finish_job, job, complete=False, fraction=0.0, error=why
            )
            raise
        running = _Running(job, session.key, expected, written_at=self._clock())
        self._jobs[session.key] = running
        log.info("GB/T 28181: downloading %s as export %d (%s)", channel_id, job.id, session.key)
        return await asyncio.to_thread(self._exports.get, principal, job.id)

    async def cancel(self, principal: Principal, export_id: int) -> ExportView:
        """End a running download: what arrived is kept as a partial export."""
        view = await asyncio.to_thread(self._exports.get, principal, export_id)
        running = next((r for r in self._jobs.values() if r.job.id == export_id), None)
        if running is None or self._loop is None:
            if view.status == "running":
                raise Conflict(f"export {export_id} is not running here")
            return view
        return await on_loop(self._loop, self._close_and_wait(running, "cancelled"))

    async def _close_and_wait(self, running: _Running, reason: str) -> ExportView:
        done = self._done.setdefault(running.key, asyncio.get_running_loop().create_future())
        running.closing = True
        running.ended = reason
        await self._streams.close(running.key, reason)
        return await asyncio.wait_for(asyncio.shield(done), ORPHAN_SECONDS)

    def running(self) -> list[int]:
        return sorted(r.job.id for r in self._jobs.values())

    # --- what the media plane says ---------------------------------------------------------------

    def _on_session_ended(self, session: StreamSession, reason: str) -> None:
        running = self._jobs.get(session.key)
        if running is not None and running.ended is None:
            running.ended = reason

    def _on_media_event(self, event: MediaEvent) -> None:
        """Called on a media reader thread: hand over to the loop."""
        loop = self._loop
        if loop is None or not isinstance(event, DownloadProgress | DownloadFinished):
            return
        loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: DownloadProgress | DownloadFinished) -> None:
        running = self._jobs.get(event.channel_id)
        if running is None:
            return
        if isinstance(event, DownloadFinished):
            running.seconds = max(running.seconds, event.seconds)
            self._spawn(self._finish(running, event.error))
            return
        running.seconds, running.size = event.seconds, event.bytes
        self._streams.touch(running.key)
        now = self._clock()
        if now - running.written_at >= PROGRESS_WRITE_SECONDS:
            running.written_at = now
            self._spawn(
                asyncio.to_thread(
                    self._exports.progress,
                    running.job.id,
                    running.seconds / running.expected,
                    running.size,
                )
            )
        if not running.closing and running.seconds >= running.expected:
            # The whole range is in: end the session (its file is then finished and reported).
            running.closing = True
            self._spawn(self._streams.close(running.key, "the download is complete"))

    async def _finish(self, running: _Running, error: str | None) -> None:
        if self._jobs.get(running.key) is not running:
            return
        del self._jobs[running.key]
        session = self._streams.get(running.key)
        if session is not None:
            if running.ended is None and session.last_reason is not None:
                # The stream broke off (the media worker's file is closed first): say why.
                running.ended = f"no video from the device: {session.last_reason}"
            await self._streams.close(running.key, "the download ended")
        complete = complete_enough(running.seconds, running.expected)
        if not complete and error is None:
            why = running.ended or "the device stopped before the end of the range"
            error = f"{why}: {running.seconds:.0f} of {running.expected:.0f} s"
        view = await asyncio.to_thread(
            self._exports.finish_job,
            running.job,
            complete=complete,
            fraction=running.seconds / running.expected,
            error=None if complete else error,
        )
        log.info("GB/T 28181: export %d %s (%s)", view.id, view.status, view.error or "whole")
        done = self._done.pop(running.key, None)
        if done is not None and not done.done():
            done.set_result(view)

    # --- jobs whose session went without a word ------------------------------------------------

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            now = self._clock()
            for running in list(self._jobs.values()):
                if self._streams.get(running.key) is not None:
                    running.gone_since = None
                    continue
                if running.gone_since is None:
                    running.gone_since = now
                elif now - running.gone_since > ORPHAN_SECONDS:
                    try:
                        await self._finish(running, "the media worker stopped")
                    except Exception:
                        log.exception("GB/T 28181: finishing export %d failed", running.job.id)

    def _spawn(self, work: object) -> None:
        loop = self._loop
        if loop is None or not asyncio.iscoroutine(work):
            return
        task = loop.create_task(work)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("GB/T 28181: download task failed", exc_info=task.exception())
