"""Reading an ONVIF device with onvif-zeep-async: who it is, its media profiles with their RTSP
URIs, and whether it can be steered.

The library's ``ONVIFService`` (zeep over aiohttp, WS-UsernameToken digest, the WSDLs it ships)
is used directly rather than its ``ONVIFCamera``: the camera object removes ``http_proxy`` and
``https_proxy`` from the whole process's environment when it is built, and opens a snapshot HTTP
session this module never uses. Nothing is fetched at run time: every WSDL and schema is read
from the package's own ``wsdl`` folder (its transport refuses remote documents), and no WSDL
cache file is written (``no_cache``).

Every failure comes out as one of the platform's device errors: DeviceUnreachable (no answer in
time), DeviceAuthFailed (HTTP 401/403 or a SOAP NotAuthorized / FailedAuthentication fault),
DeviceProtocolError (malformed SOAP, unexpected faults, answers missing what ONVIF requires).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from xueliang.core.errors import (
    DeviceAuthFailed,
    DeviceError,
    DeviceProtocolError,
    DeviceUnreachable,
    InvalidInput,
)
from xueliang.onvif.model import DeviceInformation, DeviceReport, DeviceTarget, MediaProfile

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
MAX_URI = 1024  # what the registry stores
NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
_AUTH_FAULTS = ("NotAuthorized", "FailedAuthentication", "FailedCheck", "InvalidSecurity")

_lib: ModuleType | None = None


def _onvif() -> ModuleType:
    """Import the library on first use, keeping the process's logging as it was: importing
    ``onvif.client`` calls ``logging.basicConfig`` (a root handler at INFO) as a side effect."""
    global _lib
    if _lib is None:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            import onvif
            import onvif.client
            import onvif.exceptions
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        _lib = onvif
    return _lib


def device_service_url(host: str, port: int = 80, *, https: bool = False) -> str:
    """The conventional device management address of ``host``."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:  # only an IPv6 literal may hold colons
        try:
            host = f"[{ipaddress.IPv6Address(bare)}]"
        except ValueError as exc:
            raise InvalidInput(f"{host!r} is not a host name or address") from exc
    elif not bare or any(c in bare for c in "/?#@[]% ") or bare != bare.strip():
        raise InvalidInput(f"{host!r} is not a host name or address")
    scheme = "https" if https else "http"
    return check_service_url(f"{scheme}://{host}:{port}/onvif/device_service")


def check_service_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host and no credentials; InvalidInput if not."""
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise InvalidInput(f"{url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidInput(f"{url!r} is not an http(s) device service URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("give the credentials as username and password, not in the URL")
    if port == 0:
        raise InvalidInput(f"{url!r} has an invalid port")
    return url


def _fault_codes(exc: Any) -> list[str]:
    codes: list[str] = []
    for part in (getattr(exc, "code", None), *(getattr(exc, "subcodes", None) or ())):
        if part is None:
            continue
        codes.append(getattr(part, "localname", None) or str(part))
    return codes


def _translate(exc: BaseException, what: str, url: str, status: int | None) -> DeviceError:
    """One of the platform's device errors for whatever the library or the network raised;
    ``status`` is the HTTP status of the answer, when there was one."""
    import aiohttp
    import zeep.exceptions

    lib = _onvif()
    cause: BaseException = exc
    # The library wraps what goes wrong while building a request in ONVIFError.
    while isinstance(cause, lib.ONVIFError) and cause.__cause__ is not None:
        cause = cause.__cause__
    host = urlsplit(url).netloc
    if status in (401, 403):
        # HTTP authentication refused, whatever the body was (HTML, XML, empty).
        return DeviceAuthFailed(f"{host} refused the username or password ({what}: HTTP {status})")
    if isinstance(cause, zeep.exceptions.Fault):
        codes = _fault_codes(cause)
        if (
            any(c.endswith(_AUTH_FAULTS) for c in codes)
            or "not authorized" in str(cause.message).lower()
        ):
            return DeviceAuthFailed(
                f"{host} refused the username or password ({what})",
                details={"fault": codes},
            )
        return DeviceProtocolError(
            f"{host} answered {what} with a SOAP fault: {cause.message}",
            details={"fault": codes},
        )
    if isinstance(cause, zeep.exceptions.TransportError):
        if cause.status_code in (401, 403):
            return DeviceAuthFailed(
                f"{host} refused the username or password ({what}: HTTP {cause.status_code})"
            )
        if cause.status_code == 404:
            return DeviceProtocolError(f"{host} has no ONVIF service at {url} (HTTP 404)")
        return DeviceProtocolError(
            f"{host} answered {what} with HTTP {cause.status_code} and no valid SOAP"
        )
    if isinstance(
        cause, TimeoutError | aiohttp.ServerTimeoutError | lib.exceptions.ONVIFTimeoutError
    ):
        return DeviceUnreachable(f"{host} did not answer {what} in time")
    if isinstance(cause, aiohttp.ClientConnectionError | OSError | ConnectionError):
        return DeviceUnreachable(f"cannot reach {host}: {cause}")
    if isinstance(cause, zeep.exceptions.Error | aiohttp.ClientError | ValueError):
        return DeviceProtocolError(f"{host} answered {what} with something that is not ONVIF")
    if isinstance(cause, RuntimeError) and "timed out" in str(cause).lower():
        return DeviceUnreachable(f"{host} did not answer {what} in time")
    if isinstance(cause, RuntimeError | AttributeError | TypeError | KeyError | IndexError):
        # zeep answers some malformed replies this way (an element where none was expected).
        log.warning("malformed answer to %s from %s", what, host, exc_info=cause)
        return DeviceProtocolError(f"{host} answered {what} with malformed SOAP")
    # Nothing the library documents: still the device's answer that caused it, most likely.
    log.warning("unexpected failure of %s at %s", what, host, exc_info=cause)
    return DeviceProtocolError(f"{host} answered {what} with something unexpected")


class _Session:
    """The services opened for one probe; closed together."""

    def __init__(self, target: DeviceTarget) -> None:
        self.target = target
        self._open: list[Any] = []
        self._status: int | None = None  # HTTP status of the last answer

    async def service(self, name: str, xaddr: str) -> Any:
        lib = _onvif()
        spec = lib.SERVICES[name]
        wsdl = Path(lib.client.__file__).parent / "wsdl" / spec["wsdl"]
        svc = lib.ONVIFService(
            xaddr,
            self.target.username,
            self.target.password or "",
            str(wsdl),
            encrypt=True,
            no_cache=True,
            binding_name=f"{{{spec['ns']}}}{spec['binding']}",
            binding_key=(name, None),
        )
        self._open.append(svc)
        post_xml = svc.transport.post_xml

        async def recording_post_xml(*args: Any, **kwargs: Any) -> Any:
            response = await post_xml(*args, **kwargs)
            self._status = getattr(response, "status_code", None)
            return response

        svc.transport.post_xml = recording_post_xml
        await svc.setup()
        return svc

    def op(self, svc: Any, name: str) -> Callable[..., Awaitable[Any]]:
        """The operation ``name`` of ``svc``; without a username, sent with no WS-Security
        header at all (a device open to anonymous access, or one that will say it is not)."""
        op: Callable[..., Awaitable[Any]] = getattr(
            svc, name if self.target.username else f"authless_{name}"
        )
        return op

    async def call(self, what: str, xaddr: str, request: Callable[[], Awaitable[Any]]) -> Any:
        self._status = None
        try:
            return await request()
        except (asyncio.CancelledError, DeviceError):
            raise
        except Exception as exc:
            error = _translate(exc, what, xaddr, self._status)
            if isinstance(error, DeviceAuthFailed) and not self.target.username:
                host = urlsplit(xaddr).netloc
                error = DeviceAuthFailed(
                    f"{host} needs a username and password ({what})", details=error.details
                )
            raise error from exc

    async def close(self) -> None:
        for svc in self._open:
            try:
                await svc.close()
            except Exception:  # closing must not hide what happened before
                log.debug("closing an ONVIF service failed", exc_info=True)
        self._open.clear()


def _str(value: Any) -> str | None:
    """Text from the device, trimmed; NUL and other control characters dropped (they cannot be
    stored in PostgreSQL text, nor shown)."""
    if value is None:
        return None
    text = "".join(c for c in str(value) if c >= " " and c != "\x7f").strip()
    return text or None


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def _service_addresses(session: _Session, devicemgmt: Any, url: str) -> dict[str, str]:
    """Namespace → XAddr of every service: GetServices, or GetCapabilities on older devices."""
    import zeep.exceptions

    out: dict[str, str] = {}
    try:
        services = await session.call(
            "GetServices",
            url,
            lambda: session.op(devicemgmt, "GetServices")({"IncludeCapability": False}),
        )
        for svc in services or ():
            ns, xaddr = _str(_get(svc, "Namespace")), _str(_get(svc, "XAddr"))
            if ns and xaddr:
                out[ns] = xaddr
    except DeviceAuthFailed:
        raise
    except DeviceError as exc:
        if not isinstance(exc.__cause__, zeep.exceptions.Fault | zeep.exceptions.TransportError):
            raise
        log.debug("%s: GetServices not supported (%s); trying GetCapabilities", url, exc)
    if NS_MEDIA in out:
        return out
    caps = await session.call(
        "GetCapabilities",
        url,
        lambda: session.op(devicemgmt, "GetCapabilities")({"Category": "All"}),
    )
    for key, ns in (("Device", NS_DEVICE), ("Media", NS_MEDIA), ("PTZ", NS_PTZ)):
        xaddr = _str(_get(caps, key, "XAddr"))
        if xaddr:
            out.setdefault(ns, xaddr)
    return out


def _checked_xaddr(xaddr: str, what: str) -> str:
    parts = urlsplit(xaddr)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeviceProtocolError(f"the device gave an unusable {what} address: {xaddr!r}")
    return xaddr


async def _profile(
    session: _Session, media: Any, media_url: str, raw: Any, ptz_service: bool
) -> MediaProfile | None:
    token = _str(_get(raw, "token"))
    if token is None:
        log.warning("%s: ignoring a media profile without a token", media_url)
        return None
    encoder = _get(raw, "VideoEncoderConfiguration")
    source = _get(raw, "VideoSourceConfiguration")
    stream_uri: str | None = None
    try:
        answer = await session.call(
            f"GetStreamUri({token})",
            media_url,
            lambda: session.op(media, "GetStreamUri")(
                {
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                    "ProfileToken": token,
                }
            ),
        )
        stream_uri = _str(_get(answer, "Uri"))
    except DeviceAuthFailed:
        raise
    except DeviceProtocolError as exc:
        # A profile without a video encoder (audio only, metadata) has no stream to give.
        log.info("%s: no stream URI for profile %s: %s", media_url, token, exc.message)
    if stream_uri is not None and len(stream_uri) > MAX_URI:
        log.info("%s: profile %s has a stream URI too long to keep", media_url, token)
        stream_uri = None
    if stream_uri is not None and urlsplit(stream_uri).scheme not in ("rtsp", "rtsps"):
        log.info("%s: profile %s has a non-RTSP URI %r", media_url, token, stream_uri)
        stream_uri = None
    bitrate = _int(_get(encoder, "RateControl", "BitrateLimit"))
    return MediaProfile(
        token=token,
        name=_str(_get(raw, "Name")),
        video_source=_str(_get(source, "SourceToken")),
        encoding=_str(_get(encoder, "Encoding")),
        width=_int(_get(encoder, "Resolution", "Width")),
        height=_int(_get(encoder, "Resolution", "Height")),
        frame_rate=_float(_get(encoder, "RateControl", "FrameRateLimit")),
        bitrate_kbps=bitrate,
        stream_uri=stream_uri,
        ptz=ptz_service and _get(raw, "PTZConfiguration") is not None,
    )


async def _read(session: _Session) -> DeviceReport:
    url = session.target.service_url
    devicemgmt = await session.service("devicemgmt", url)
    info = await session.call(
        "GetDeviceInformation", url, session.op(devicemgmt, "GetDeviceInformation")
    )
    if info is None:
        raise DeviceProtocolError(f"{urlsplit(url).netloc} gave no device information")
    information = DeviceInformation(
        manufacturer=_str(_get(info, "Manufacturer")),
        model=_str(_get(info, "Model")),
        firmware=_str(_get(info, "FirmwareVersion")),
        serial=_str(_get(info, "SerialNumber")),
        hardware_id=_str(_get(info, "HardwareId")),
    )
    addresses = await _service_addresses(session, devicemgmt, url)
    if NS_MEDIA not in addresses:
        raise DeviceProtocolError(f"{urlsplit(url).netloc} has no ONVIF media service")
    media_url = _checked_xaddr(addresses[NS_MEDIA], "media service")
    ptz_url = addresses.get(NS_PTZ)
    if ptz_url is not None:
        ptz_url = _checked_xaddr(ptz_url, "PTZ service")
    media = await session.service("media", media_url)
    raw_profiles = await session.call("GetProfiles", media_url, session.op(media, "GetProfiles"))
    profiles = []
    for raw in raw_profiles or ():
        profile = await _profile(session, media, media_url, raw, ptz_url is not None)
        if profile is not None:
            profiles.append(profile)
    return DeviceReport(
        service_url=url,
        info=information,
        media_url=media_url,
        ptz_url=ptz_url,
        profiles=tuple(profiles),
    )


async def read_device(target: DeviceTarget, *, deadline: float = DEFAULT_TIMEOUT) -> DeviceReport:
    """Read the device at ``target`` within ``deadline`` seconds, all calls included."""
    check_service_url(target.service_url)
    session = _Session(target)
    try:
        async with asyncio.timeout(deadline):
            return await _read(session)
    except TimeoutError as exc:
        raise DeviceUnreachable(
            f"{urlsplit(target.service_url).netloc} did not answer within {deadline:g} s"
        ) from exc
    finally:
        await session.close()


# --- sessions for operations beyond reading a device (PTZ) --------------------------------------

DeviceSession = _Session  # the name other ONVIF modules use for it


@asynccontextmanager
async def open_session(
    target: DeviceTarget, *, deadline: float = DEFAULT_TIMEOUT
) -> AsyncIterator[DeviceSession]:
    """A session on ``target`` whose calls (and service setup) must all end within ``deadline``
    seconds, else DeviceUnreachable; its services are closed on the way out."""
    check_service_url(target.service_url)
    session = _Session(target)
    try:
        async with asyncio.timeout(deadline):
            yield session
    except TimeoutError as exc:
        raise DeviceUnreachable(
            f"{urlsplit(target.service_url).netloc} did not answer within {deadline:g} s"
        ) from exc
    finally:
        await session.close()


async def service_xaddr(session: DeviceSession, namespace: str, what: str) -> str | None:
    """The address of the device's service ``namespace`` (GetServices, else GetCapabilities),
    or None when the device has none; DeviceProtocolError for an unusable address."""
    url = session.target.service_url
    devicemgmt = await session.service("devicemgmt", url)
    xaddr = (await _service_addresses(session, devicemgmt, url)).get(namespace)
    return _checked_xaddr(xaddr, what) if xaddr is not None else None
