"""A stand-in ONVIF device for the tests: no real ONVIF camera can run here.

(ipycam, the maintained pure-Python virtual camera with ONVIF, was considered: MIT-licensed, but
it needs opencv-python, whose import needs the X/GL system libraries, and its ONVIF handler is
part of its camera's HTTP server, which streams through an external go2rtc binary.)

Two roles, both speaking the protocol on the wire, with nothing of the client under test:

* :class:`OnvifPeer`: an HTTP SOAP 1.2 responder (device management and media services, a PTZ
  service when asked) that answers GetDeviceInformation, GetServices, GetCapabilities,
  GetProfiles and GetStreamUri, and on its PTZ service ContinuousMove, Stop, GetPresets,
  GotoPreset, SetPreset and RemovePreset (recorded in ``ptz_calls``, presets kept in memory per
  PTZ node), and checks WS-Security UsernameToken digests
  (Base64(SHA-1(nonce + created + password))) on every call: a wrong one is answered, as ONVIF
  Core says, with HTTP 400 and a ``ter:NotAuthorized`` fault (or HTTP 401 in ``http401`` mode,
  as some firmware does).
* ``python -m tests.support.onvif_peer discovery --address A``: the whole device on address
  ``A``: the SOAP services above, and a WS-Discovery responder that joins 239.255.255.250 on
  that interface and answers each Probe for NetworkVideoTransmitters with a ProbeMatch naming
  them (after three malformed answers with ``--malformed``).
  The tests run it inside a network namespace, never on the host's network.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import socket
import struct
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
TT = "http://www.onvif.org/ver10/schema"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"


@dataclass
class PeerProfile:
    token: str
    name: str
    source: str
    encoding: str
    width: int
    height: int
    fps: int = 25
    bitrate: int = 4096
    ptz: bool = False


def _default_profiles() -> list[PeerProfile]:
    """A two-sensor camera: a PTZ sensor with main and sub streams, and a fixed one."""
    return [
        PeerProfile("prof_main", "MainStream", "vs_ptz", "H264", 1920, 1080, ptz=True),
        PeerProfile("prof_sub", "SubStream", "vs_ptz", "H264", 640, 360, bitrate=512, ptz=True),
        PeerProfile("prof_fixed", "FixedMain", "vs_fixed", "H265", 2560, 1440),
    ]


@dataclass
class PeerConfig:
    username: str = "admin"
    password: str = "Cam-Passw0rd"
    manufacturer: str = "Xueliang Test"
    model: str = "XL-ONVIF-2"
    firmware: str = "V5.7.3 build 240101"
    serial: str = "SN0123456789"
    hardware_id: str = "HW-42"
    profiles: list[PeerProfile] = field(default_factory=_default_profiles)
    ptz_service: bool = True
    auth_mode: str = "soap"  # "soap": 400 + NotAuthorized fault; "http401": bare 401
    get_services: bool = True  # False: answer GetServices with a fault (older devices)
    malformed: set[str] = field(default_factory=set)  # operations answered with broken XML
    # Presets already saved on each PTZ sensor (video source): token -> name.
    presets: dict[str, str] = field(default_factory=lambda: {"1": "Home"})


PTZ_PATH = "/onvif/ptz_service"
PTZ_OPERATIONS = frozenset(
    {"ContinuousMove", "Stop", "GetPresets", "GotoPreset", "SetPreset", "RemovePreset"}
)


@dataclass(frozen=True)
class PtzCall:
    """One PTZ request as the device received it, values as they were on the wire."""

    operation: str
    profile: str
    pan: str | None = None  # Velocity/PanTilt@x
    tilt: str | None = None  # Velocity/PanTilt@y
    zoom: str | None = None  # Velocity/Zoom@x
    timeout: str | None = None  # the xs:duration text, e.g. "PT1.5S"
    preset: str | None = None
    name: str | None = None


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP}" '
        f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tt="{TT}" xmlns:tptz="{TPTZ}" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def _fault(code: str, subcode: str, reason: str) -> bytes:
    return _envelope(
        f"<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode><env:Value>{subcode}"
        f'</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{reason}'
        "</env:Text></env:Reason></env:Fault>"
    )


class _Refused(Exception):
    """A request the device answers with a SOAP fault (HTTP 400)."""

    def __init__(self, fault: bytes) -> None:
        super().__init__()
        self.fault = fault


def password_digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(
        hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324 - ONVIF
    ).decode()


class OnvifPeer:
    """The SOAP side of the stand-in device, on 127.0.0.1 (or the given address)."""

    def __init__(self, config: PeerConfig | None = None, host: str = "127.0.0.1") -> None:
        self.config = config or PeerConfig()
        self.calls: list[str] = []
        self.ptz_calls: list[PtzCall] = []
        # PTZ node (video source) -> preset token -> name
        self.presets: dict[str, dict[str, str]] = {
            p.source: dict(self.config.presets) for p in self.config.profiles if p.ptz
        }
        self._next_preset = 100
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, body = peer.answer(self.path, self.rfile.read(length))
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Digest realm="onvif", nonce="x"')
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def device_url(self) -> str:
        return f"{self.base}/onvif/device_service"

    def start(self) -> OnvifPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> OnvifPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- SOAP --------------------------------------------------------------------------------

    def _authorised(self, root: ET.Element) -> bool:
        token = root.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        username = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.find(f"{{{WSSE}}}Password")
        nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
        created = token.findtext(f"{{{WSU}}}Created") or ""
        if password is None or not password.get("Type", "").endswith("#PasswordDigest"):
            return False
        try:
            expected = password_digest(base64.b64decode(nonce), created, self.config.password)
        except ValueError:
            return False
        return hmac.compare_digest(username, self.config.username) and hmac.compare_digest(
            (password.text or "").strip(), expected
        )

    def answer(self, path: str, data: bytes) -> tuple[int, bytes]:
        try:
            root = ET.fromstring(data)  # noqa: S314 - requests from the client under test
        except ET.ParseError:
            return 400, _fault("env:Sender", "ter:WellFormed", "not XML")
        body = root.find(f"{{{SOAP}}}Body")
        request = body[0] if body is not None and len(body) else None
        if request is None:
            return 400, _fault("env:Sender", "ter:InvalidArgVal", "empty body")
        operation = request.tag.rpartition("}")[2]
        self.calls.append(operation)
        if not self._authorised(root):
            if self.config.auth_mode == "http401":
                return 401, b"<html><body>401 Unauthorized<br></body></html>"
            return 400, _fault("env:Sender", "ter:NotAuthorized", "Sender not Authorized")
        if operation in self.config.malformed:
            return 200, b"<env:Envelope><env:Body><oops"
        if (operation in PTZ_OPERATIONS) != (path == PTZ_PATH) or (
            path == PTZ_PATH and not self.config.ptz_service
        ):
            return 400, _fault("env:Receiver", "ter:ActionNotSupported", f"{operation} at {path}")
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return 400, _fault("env:Receiver", "ter:ActionNotSupported", operation)
        try:
            result: tuple[int, bytes] = handler(request)
        except _Refused as refused:
            return 400, refused.fault
        return result

    def _op_GetDeviceInformation(self, _request: ET.Element) -> tuple[int, bytes]:
        c = self.config
        return 200, _envelope(
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{escape(c.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{escape(c.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{escape(c.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(c.serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{escape(c.hardware_id)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    def _services(self) -> list[tuple[str, str]]:
        out = [(TDS, "/onvif/device_service"), (TRT, "/onvif/media_service")]
        if self.config.ptz_service:
            out.append((TPTZ, "/onvif/ptz_service"))
        return out

    def _op_GetServices(self, _request: ET.Element) -> tuple[int, bytes]:
        if not self.config.get_services:
            return 400, _fault("env:Receiver", "ter:ActionNotSupported", "GetServices")
        services = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
            f"<tds:XAddr>{self.base}{path}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"
            "</tds:Service>"
            for ns, path in self._services()
        )
        return 200, _envelope(f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>")

    def _op_GetCapabilities(self, _request: ET.Element) -> tuple[int, bytes]:
        ptz = (
            f"<tt:PTZ><tt:XAddr>{self.base}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
            if self.config.ptz_service
            else ""
        )
        return 200, _envelope(
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"{ptz}</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _profile_xml(self, p: PeerProfile) -> str:
        ptz = (
            f'<tt:PTZConfiguration token="ptz_{p.source}"><tt:Name>PTZ</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:NodeToken>node0</tt:NodeToken>"
            "</tt:PTZConfiguration>"
            if p.ptz and self.config.ptz_service
            else ""
        )
        return (
            f'<trt:Profiles token="{p.token}" fixed="true"><tt:Name>{p.name}</tt:Name>'
            f'<tt:VideoSourceConfiguration token="vsc_{p.source}"><tt:Name>{p.source}</tt:Name>'
            f"<tt:UseCount>2</tt:UseCount><tt:SourceToken>{p.source}</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{p.width}" height="{p.height}"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="vec_{p.token}"><tt:Name>{p.name}</tt:Name>'
            f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{p.encoding}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height>"
            "</tt:Resolution><tt:Quality>4</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval>"
            f"<tt:BitrateLimit>{p.bitrate}</tt:BitrateLimit></tt:RateControl>"
            "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
            "<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port>"
            "<tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            f"{ptz}</trt:Profiles>"
        )

    def _op_GetProfiles(self, _request: ET.Element) -> tuple[int, bytes]:
        profiles = "".join(self._profile_xml(p) for p in self.config.profiles)
        return 200, _envelope(f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>")

    def stream_uri(self, token: str) -> str:
        return f"rtsp://{self.host}:8554/live/{token}"

    def _op_GetStreamUri(self, request: ET.Element) -> tuple[int, bytes]:
        token = request.findtext(f"{{{TRT}}}ProfileToken") or ""
        protocol = request.findtext(f"{{{TRT}}}StreamSetup/{{{TT}}}Transport/{{{TT}}}Protocol")
        stream = request.findtext(f"{{{TRT}}}StreamSetup/{{{TT}}}Stream")
        if token not in {p.token for p in self.config.profiles}:
            return 400, _fault("env:Sender", "ter:NoProfile", "no such profile")
        if (stream, protocol) != ("RTP-Unicast", "RTSP"):
            return 400, _fault("env:Sender", "ter:InvalidStreamSetup", f"{stream}/{protocol}")
        return 200, _envelope(
            "<trt:GetStreamUriResponse><trt:MediaUri>"
            f"<tt:Uri>{self.stream_uri(token)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
        )

    # --- PTZ ---------------------------------------------------------------------------------

    def _ptz_node(self, request: ET.Element) -> tuple[str, str]:
        """The request's profile token and its PTZ node (video source)."""
        token = request.findtext(f"{{{TPTZ}}}ProfileToken") or ""
        profile = next((p for p in self.config.profiles if p.token == token), None)
        if profile is None:
            raise _Refused(_fault("env:Sender", "ter:InvalidArgVal", "ter:NoProfile"))
        if not profile.ptz:
            raise _Refused(_fault("env:Sender", "ter:InvalidArgVal", "ter:NoPTZProfile"))
        return token, profile.source

    def _preset_of(self, request: ET.Element, node: str) -> str:
        """The request's PresetToken, which must name a preset of ``node``."""
        token = request.findtext(f"{{{TPTZ}}}PresetToken")
        if token is None or token not in self.presets[node]:
            raise _Refused(_fault("env:Sender", "ter:InvalidArgVal", "ter:NoToken"))
        return token

    def _op_ContinuousMove(self, request: ET.Element) -> tuple[int, bytes]:
        token, _node = self._ptz_node(request)
        pan_tilt = request.find(f"{{{TPTZ}}}Velocity/{{{TT}}}PanTilt")
        zoom = request.find(f"{{{TPTZ}}}Velocity/{{{TT}}}Zoom")
        self.ptz_calls.append(
            PtzCall(
                "ContinuousMove",
                token,
                pan=pan_tilt.get("x") if pan_tilt is not None else None,
                tilt=pan_tilt.get("y") if pan_tilt is not None else None,
                zoom=zoom.get("x") if zoom is not None else None,
                timeout=request.findtext(f"{{{TPTZ}}}Timeout"),
            )
        )
        return 200, _envelope("<tptz:ContinuousMoveResponse/>")

    def _op_Stop(self, request: ET.Element) -> tuple[int, bytes]:
        token, _node = self._ptz_node(request)
        self.ptz_calls.append(PtzCall("Stop", token))
        return 200, _envelope("<tptz:StopResponse/>")

    def _op_GetPresets(self, request: ET.Element) -> tuple[int, bytes]:
        token, node = self._ptz_node(request)
        self.ptz_calls.append(PtzCall("GetPresets", token))
        with self._lock:
            presets = "".join(
                f'<tptz:Preset token="{escape(t)}"><tt:Name>{escape(n)}</tt:Name></tptz:Preset>'
                for t, n in self.presets[node].items()
            )
        return 200, _envelope(f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>")

    def _op_GotoPreset(self, request: ET.Element) -> tuple[int, bytes]:
        token, node = self._ptz_node(request)
        preset = self._preset_of(request, node)
        self.ptz_calls.append(PtzCall("GotoPreset", token, preset=preset))
        return 200, _envelope("<tptz:GotoPresetResponse/>")

    def _op_SetPreset(self, request: ET.Element) -> tuple[int, bytes]:
        token, node = self._ptz_node(request)
        name = request.findtext(f"{{{TPTZ}}}PresetName")
        with self._lock:
            if request.find(f"{{{TPTZ}}}PresetToken") is not None:
                preset = self._preset_of(request, node)  # overwriting needs an existing one
            else:
                preset = str(self._next_preset)
                self._next_preset += 1
            self.presets[node][preset] = name or f"Preset {preset}"
        self.ptz_calls.append(PtzCall("SetPreset", token, preset=preset, name=name))
        return 200, _envelope(
            "<tptz:SetPresetResponse>"
            f"<tptz:PresetToken>{escape(preset)}</tptz:PresetToken></tptz:SetPresetResponse>"
        )

    def _op_RemovePreset(self, request: ET.Element) -> tuple[int, bytes]:
        token, node = self._ptz_node(request)
        with self._lock:
            preset = self._preset_of(request, node)
            del self.presets[node][preset]
        self.ptz_calls.append(PtzCall("RemovePreset", token, preset=preset))
        return 200, _envelope("<tptz:RemovePresetResponse/>")


# --- WS-Discovery responder -------------------------------------------------------------------

PEER_ENDPOINT = "urn:uuid:5f1c0e3a-7d2b-4c59-9a61-0b1d2c3e4f50"
PEER_SCOPES = (
    "onvif://www.onvif.org/type/video_encoder",
    "onvif://www.onvif.org/type/ptz",
    "onvif://www.onvif.org/Profile/Streaming",
    "onvif://www.onvif.org/name/Gate%20Camera%201",
    "onvif://www.onvif.org/hardware/XL-ONVIF-2",
    "onvif://www.onvif.org/location/country/china",
    "onvif://www.onvif.org/location/city/anqing",
)


def probe_match(relates_to: str, xaddr: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}" xmlns:a="{WSA}" '
        f'xmlns:d="{WSD}" xmlns:dn="{DN}" xmlns:tds="{TDS}"><s:Header>'
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f"<a:To>{WSA}/role/anonymous</a:To>"
        f"<a:Action>{WSD}/ProbeMatches</a:Action>"
        '<d:AppSequence InstanceId="1" MessageNumber="1"/></s:Header><s:Body>'
        "<d:ProbeMatches><d:ProbeMatch>"
        f"<a:EndpointReference><a:Address>{PEER_ENDPOINT}</a:Address></a:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
        f"<d:Scopes>{' '.join(PEER_SCOPES)}</d:Scopes>"
        f"<d:XAddrs>{escape(xaddr)}</d:XAddrs>"
        "<d:MetadataVersion>3</d:MetadataVersion>"
        "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


def malformed_matches(relates_to: str) -> list[bytes]:
    """Answers a client must survive: broken XML, a match with no endpoint, a DTD bomb."""
    return [
        b"<s:Envelope><s:Body><d:ProbeMatches",
        probe_match(relates_to, "http://10.0.0.1/x").replace(
            f"<a:Address>{PEER_ENDPOINT}</a:Address>".encode(), b""
        ),
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><x>&a;</x>',
    ]


def serve_discovery(address: str, malformed: bool) -> None:
    """The whole stand-in device on ``address``: its SOAP services, announced by discovery."""
    peer = OnvifPeer(host=address).start()
    xaddr = peer.device_url
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 3702))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    print(f"discovery ready at {xaddr}", flush=True)
    while True:
        data, sender = sock.recvfrom(65535)
        try:
            root = ET.fromstring(data)  # noqa: S314 - the probe of the client under test
        except ET.ParseError:
            continue
        message_id = root.findtext(f"{{{SOAP}}}Header/{{{WSA}}}MessageID") or ""
        types = root.findtext(f"{{{SOAP}}}Body/{{{WSD}}}Probe/{{{WSD}}}Types") or ""
        if not message_id or "NetworkVideoTransmitter" not in types:
            continue
        print(f"probe from {sender[0]} {message_id}", flush=True)
        if malformed:
            for bad in malformed_matches(message_id):
                sock.sendto(bad, sender)
        sock.sendto(probe_match(message_id, xaddr), sender)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="onvif_peer")
    sub = parser.add_subparsers(dest="role", required=True)
    d = sub.add_parser("discovery")
    d.add_argument("--address", required=True)
    d.add_argument("--malformed", action="store_true")
    args = parser.parse_args(argv)
    serve_discovery(args.address, args.malformed)


if __name__ == "__main__":
    main(sys.argv[1:])
