"""The ASGI application."""

from __future__ import annotations

import asyncio
import mimetypes
import stat as stat_module
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from xueliang import __version__
from xueliang.api import errors
from xueliang.api.routers import (
    audit,
    auth,
    channels,
    coverage,
    device_config,
    device_control,
    device_records,
    devices,
    events,
    exports,
    gb_devices,
    health,
    live,
    onvif,
    orgs,
    playback,
    ptz,
    recording_plans,
    recordings,
    registry,
    storage,
    users,
)
from xueliang.app import Platform
from xueliang.core.errors import InvalidInput
from xueliang.core.text import NUL

API_PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parent.parent / "web"

CONSOLE = WEB / "console"  # the web console's build (console/ at the repo root; `make install`)

_NOT_BUILT = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>雪亮 Xueliang</title>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>雪亮 Xueliang</h1>
<p>平台已启动，但网页控制台尚未构建：在源码目录运行 <code>make install</code> 即可构建。</p>
<p>The platform is running, but the web console has not been built: run
<code>make install</code> in the source tree to build it.</p>
<p><a href="/player/">播放器 Player</a> ·
<a href="/api/v1/openapi.json">API: /api/v1/openapi.json</a></p>
</body></html>"""


def _console_built() -> bool:
    return (CONSOLE / "index.html").is_file()


class _Console(StaticFiles):
    """The console's files; the plain not-built page (not a 500) while there is no build.

    Text files go out gzipped where the build left a compressed copy (scripts/precompress.py)
    and the browser accepts it. Vite names assets by content hash, so they may be cached for
    good; index.html is revalidated, so a new build is seen at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _console_built():
            await HTMLResponse(_NOT_BUILT, status_code=404)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
        accepts = Headers(scope=scope).get("accept-encoding", "")
        response: Response | None = None
        if path in ("", ".") or path.endswith("/"):
            path = f"{path.rstrip('/.')}/index.html".lstrip("/")  # the page of a directory
        if "gzip" in accepts and scope["method"] in ("GET", "HEAD"):
            try:
                full, stat = await anyio.to_thread.run_sync(self.lookup_path, path + ".gz")
            except (OSError, ValueError):  # a name no file can have (NUL): the plain path says
                full, stat = "", None
            if stat is not None and stat_module.S_ISREG(stat.st_mode):
                media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                response = FileResponse(full, stat_result=stat, media_type=media_type)
                response.headers["content-encoding"] = "gzip"
        if response is None:
            response = await super().get_response(path, scope)
        response.headers["vary"] = "Accept-Encoding"
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["cache-control"] = "no-cache"
        return response


def _no_nul_in_url(request: HTTPConnection) -> None:
    """Path and query parameters reach the database as they are; PostgreSQL text cannot hold
    NUL, so a %00 would fail there as a server error (bodies are checked by their models)."""
    if NUL in request.scope["path"] or any(
        NUL in key or NUL in value for key, value in request.query_params.multi_items()
    ):
        raise InvalidInput("the URL must not contain NUL characters (%00)")


def create_app(platform: Platform) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if platform.settings.media.enabled:
            # Repair the recordings index against the files before anything records.
            await asyncio.to_thread(platform.storage.start)
            await asyncio.to_thread(platform.media.start)
        # Exports left running (device downloads) by a platform that stopped never finish.
        await asyncio.to_thread(
            platform.exports.fail_running, "the platform stopped while the export ran"
        )
        platform.events.start()  # deletes events and track points past retention
        if platform.settings.gb28181.enabled:
            await platform.gb28181.start()
        try:
            yield
        finally:
            await platform.gb28181.stop()
            await asyncio.to_thread(platform.events.stop)
            await asyncio.to_thread(platform.media.stop)
            await asyncio.to_thread(platform.storage.stop)

    app = FastAPI(
        lifespan=lifespan,
        title="Xueliang API",
        version=__version__,
        description="Public-security video networking platform (雪亮). Errors share one body: "
        '`{"error": {"code", "message", "details"}}`. Objects outside the caller\'s area '
        "answer 403, exactly as forbidden actions do.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # The bundled docs pages load scripts from a CDN; the platform must work offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = platform
    errors.install(app)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(_no_nul_in_url)])
    for module in (
        health,
        auth,
        orgs,
        devices,
        channels,
        coverage,
        onvif,
        registry,
        recordings,
        recording_plans,
        events,
        live,
        ptz,
        device_control,
        device_config,
        device_records,
        gb_devices,
        playback,
        exports,
        storage,
        users,
        audit,
    ):
        api.include_router(module.router)
    app.include_router(api)

    app.mount("/player", StaticFiles(directory=WEB / "player", html=True), name="player")

    # The console: a single-page application with hash routing, so plain static files serve it.
    app.mount("/console", _Console(directory=CONSOLE, html=True, check_dir=False), name="console")

    @app.get("/", include_in_schema=False)
    def landing() -> Response:
        if _console_built():
            return RedirectResponse("/console/", status_code=307)
        return HTMLResponse(_NOT_BUILT)

    return app
