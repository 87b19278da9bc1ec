"""The client side of one RTSP session over TCP, sans-I/O.

OPTIONS → DESCRIBE → SETUP (each chosen track, interleaved) → PLAY, answering a 401 once per
request with Basic or Digest credentials (RFC 2617, the digest code the SIP stack uses), then
keep-alives and TEARDOWN. ``receive`` takes bytes from the server and returns events;
``data_to_send`` returns what to write. Media arrives as ``(channel, payload)`` tuples straight
from the reader: the hot path adds nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from xueliang.core.urls import split_userinfo
from xueliang.gb28181.sip.digest import DigestChallenge, authorize
from xueliang.rtsp.message import (
    Batch,
    RtspEvent,
    RtspReader,
    RtspRequest,
    RtspResponse,
    ServerRequest,
)
from xueliang.rtsp.sdp import Media, SdpError, SessionDescription, parse_sdp

USER_AGENT = "Xueliang"
DEFAULT_SESSION_TIMEOUT = 60


class RtspError(Exception):
    """The session cannot go on; ``status`` is the server's answer when it gave one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Track:
    media: Media
    channel: int  # interleaved RTP channel (RTCP on channel + 1)
    url: str


@dataclass(frozen=True)
class Described:
    sdp: SessionDescription


@dataclass(frozen=True)
class Playing:
    tracks: list[Track]
    session_timeout: int


ClientEvent = Described | Playing | RtspEvent


class RtspClient:
    """``choose`` picks the media to set up from the description (in the order to set up)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        choose: Callable[[SessionDescription], list[Media]],
    ) -> None:
        self.url, user, secret = split_userinfo(url)
        self.username = username if username is not None else user
        self.password = password if password is not None else secret
        self._choose = choose
        self._reader = RtspReader()
        self._out = bytearray()
        self._cseq = 0
        self._pending: dict[int, RtspRequest] = {}
        self._authorization: Callable[[str, str], str] | None = None
        self._retried: set[int] = set()
        self._base = self.url
        self._sdp: SessionDescription | None = None
        self._to_setup: list[Media] = []
        self._tracks: list[Track] = []
        self.session: str | None = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self.public: set[str] = set()
        self.state = "init"

    # --- output --------------------------------------------------------------------------------

    def batch(self, channels: frozenset[int]) -> None:
        """Hand the media of ``channels`` over as one ``Batch`` per read (see message.Batch)."""
        self._reader.batch_channels = channels

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def start(self) -> None:
        self.state = "options"
        self._request("OPTIONS", self.url)

    def keepalive(self) -> None:
        """GET_PARAMETER where the server offers it (most cameras), OPTIONS otherwise."""
        method = "GET_PARAMETER" if "GET_PARAMETER" in self.public else "OPTIONS"
        self._request(method, self._base if method == "GET_PARAMETER" else self.url)

    def teardown(self) -> None:
        if self.session is not None:
            self._request("TEARDOWN", self._base)
            self.state = "closed"

    def _request(self, method: str, url: str, extra: list[tuple[str, str]] | None = None) -> None:
        self._cseq += 1
        headers = [("CSeq", str(self._cseq)), ("User-Agent", USER_AGENT), *(extra or [])]
        if self.session is not None:
            headers.append(("Session", self.session))
        request = RtspRequest(method, url, headers)
        self._pending[self._cseq] = request
        self._send(request)

    def _send(self, request: RtspRequest) -> None:
        if self._authorization is not None:
            request = RtspRequest(
                request.method,
                request.url,
                [
                    *request.headers,
                    ("Authorization", self._authorization(request.method, request.url)),
                ],
                request.body,
            )
        self._out += request.serialise()

    # --- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[ClientEvent]:
        events = self._reader.feed(data)
        if not self._reader.messages:
            return events  # type: ignore[return-value]  # the hot path: media only
        out: list[ClientEvent] = []
        for event in events:
            if isinstance(event, tuple | Batch):
                out.append(event)
            elif isinstance(event, RtspResponse):
                out += self._response(event)
            elif isinstance(event, ServerRequest):
                self._answer_server(event)
        return out

    def _answer_server(self, request: ServerRequest) -> None:
        cseq = request.headers.get("cseq", "0")
        self._out += f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode()

    def _response(self, response: RtspResponse) -> list[ClientEvent]:
        cseq = response.cseq
        request = self._pending.pop(cseq, None) if cseq is not None else None
        if request is None:
            return []  # an answer to nothing we asked (or a keep-alive's): nothing to do
        if response.status == 401 and cseq not in self._retried and self._auth(response):
            self._retried.add(self._cseq + 1)
            self._cseq += 1
            headers = [(n, v) for n, v in request.headers if n != "CSeq"]
            retry = RtspRequest(request.method, request.url, [("CSeq", str(self._cseq)), *headers])
            self._pending[self._cseq] = retry
            self._send(retry)
            return []
        if request.method in ("GET_PARAMETER", "OPTIONS") and self.state == "playing":
            return []  # a keep-alive: any answer means the server is there
        if response.status == 401:
            raise RtspError("authentication failed", 401)
        if response.status >= 300:
            raise RtspError(
                f"{request.method} refused: {response.status} {response.reason}", response.status
            )
        return self._advance(request, response)

    def _auth(self, response: RtspResponse) -> bool:
        """Credentials for the challenge; False when there are none to give."""
        if self.username is None:
            return False
        challenges = response.get("www-authenticate") or ""
        user, password = self.username, self.password or ""
        # A server may offer both (joined with ", " by the reader); digest is preferred.
        lower = challenges.lower()
        if "digest" in lower:
            try:
                challenge = DigestChallenge.parse(challenges[lower.index("digest") :])
            except ValueError:
                return False
            counter = [0]

            def digest(method: str, uri: str) -> str:
                counter[0] += 1
                creds = authorize(
                    challenge,
                    username=user,
                    password=password,
                    method=method,
                    uri=uri,
                    nc=counter[0],
                )
                return creds.to_header()

            self._authorization = digest
            return True
        if "basic" in lower:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization = lambda _method, _uri: f"Basic {token}"
            return True
        return False

    def _advance(self, request: RtspRequest, response: RtspResponse) -> list[ClientEvent]:
        if request.method == "OPTIONS" and self.state == "options":
            public = response.get("public") or ""
            self.public = {m.strip().upper() for m in public.split(",") if m.strip()}
            self.state = "describe"
            self._request("DESCRIBE", self.url, [("Accept", "application/sdp")])
            return []
        if request.method == "DESCRIBE":
            try:
                text = response.body.decode("utf-8", "replace")
                self._sdp = parse_sdp(text)
            except SdpError as exc:
                raise RtspError(f"unusable session description: {exc}") from exc
            self._base = (
                response.get("content-base") or response.get("content-location") or self.url
            ).strip()
            self._to_setup = list(self._choose(self._sdp))
            if not self._to_setup:
                raise RtspError("the stream offers nothing this client can record")
            self.state = "setup"
            self._setup_next()
            return [Described(self._sdp)]
        if request.method == "SETUP":
            session = response.get("session")
            if session is None:
                raise RtspError("SETUP answered without a session")
            ident, _, params = session.partition(";")
            self.session = ident.strip()
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name.lower() == "timeout" and value.strip().isdigit():
                    self.session_timeout = max(5, int(value))
            channel = 2 * len(self._tracks)
            transport = response.get("transport") or ""
            for part in transport.split(";"):
                name, _, value = part.strip().partition("=")
                if name.lower() == "interleaved":
                    first = value.split("-")[0]
                    if first.isdigit():
                        channel = int(first)
            self._tracks.append(Track(self._to_setup[0], channel, request.url))
            self._to_setup.pop(0)
            if self._to_setup:
                self._setup_next()
            else:
                self.state = "play"
                self._request("PLAY", self._base, [("Range", "npt=0.000-")])
            return []
        if request.method == "PLAY":
            self.state = "playing"
            return [Playing(list(self._tracks), self.session_timeout)]
        return []

    def _setup_next(self) -> None:
        assert self._sdp is not None
        media = self._to_setup[0]
        channel = 2 * len(self._tracks)
        self._request(
            "SETUP",
            self._sdp.control_url(self._base, media),
            [("Transport", f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}")],
        )
