"""What the SIP server knows of a GB/T 28181 device right now: whether it is registered, from
which address (behind NAT: where its packets really come from, which is where the platform
answers), over which transport, with which protocol version (X-GB-Ver) and user agent, when it
last spoke, and the media sessions open with it. The first place to look when a device is
offline or its video does not arrive."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from sqlalchemy import select

from xueliang.access.principal import Principal
from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.app import Platform
from xueliang.core.errors import DeviceError, DeviceUnreachable, InvalidInput
from xueliang.gb28181 import manscdp
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.store.models import CatalogNode, Channel, Device

router = APIRouter(tags=["GB/T 28181 devices"], responses=ERROR_RESPONSES)
DeviceId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]


class MediaSessionView(BaseModel):
    key: str
    channel_id: str
    kind: str = Field(description="Play, Playback or Download")
    transport: str = Field(description="udp, tcp-passive (device connects) or tcp-active")
    port: int = Field(description="The platform's media port")
    ssrc: str
    online: bool = Field(description="Video is arriving")


class SipStateView(BaseModel):
    device_id: str
    registered: bool
    address: str | None = Field(description="host:port its packets come from")
    transport: str | None
    contact: str | None
    version: str | None = Field(description="X-GB-Ver it sent: 3.0 for GB/T 28181-2022")
    user_agent: str | None
    registered_at: datetime | None
    last_seen: datetime | None
    expires_at: datetime | None
    keepalives: int
    restarts: int = Field(
        default=0,
        description="Times it registered anew under a new Call-ID while registered (restarted)",
    )
    sessions: list[MediaSessionView]


@router.get(
    "/devices/{device_id}/sip",
    summary="The GB/T 28181 device's registration and media sessions as the SIP server sees them",
)
def sip_state(device_id: DeviceId, p: PlatformDep, principal: PrincipalDep) -> SipStateView:
    p.devices.get(principal, device_id)  # permission and area: PermissionDenied / NotFound
    server = p.gb28181.server
    reg = server.registrar.get(device_id) if server is not None else None
    sessions = [
        MediaSessionView(
            key=s.key,
            channel_id=s.channel_id,
            kind=s.kind,
            transport=s.transport,
            port=s.port,
            ssrc=s.ssrc,
            online=s.online,
        )
        for s in p.gb28181.streams.sessions()
        if s.device_id == device_id
    ]
    if server is None or reg is None:
        return SipStateView(
            device_id=device_id,
            registered=False,
            address=None,
            transport=None,
            contact=None,
            version=None,
            user_agent=None,
            registered_at=None,
            last_seen=None,
            expires_at=None,
            keepalives=0,
            sessions=sessions,
        )

    def wall(at: float) -> datetime:
        return datetime.fromtimestamp(server.wall_time(at), UTC)

    return SipStateView(
        device_id=device_id,
        registered=True,
        address=f"{reg.address.host}:{reg.address.port}",
        transport=reg.address.transport,
        contact=reg.contact or None,
        version=reg.version,
        user_agent=reg.user_agent,
        registered_at=wall(reg.registered_at),
        last_seen=wall(reg.last_seen),
        expires_at=wall(reg.expires_at),
        keepalives=reg.keepalives,
        restarts=reg.restarts,
        sessions=sessions,
    )


QueryType = Literal[
    "DeviceInfo",
    "DeviceStatus",
    "PresetQuery",
    "HomePositionQuery",
    "PTZPositionQuery",
    "SDCardStatusQuery",
    "CruiseTrackListQuery",
    "ConfigDownload",
]


class DeviceQuery(BaseModel):
    cmd_type: QueryType = Field(description="What to ask (2022 queries included)")
    channel_id: str | None = Field(
        default=None, max_length=20, description="Ask about one of the device's channels"
    )
    config_type: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z/]+$",
        description="ConfigDownload: BasicParam, VideoParamOpt, SVACEncodeConfig, …",
    )


class DeviceAnswer(BaseModel):
    cmd_type: str
    device_id: str = Field(description="The DeviceID the answer is about")
    result: str | None
    fields: dict[str, Any] = Field(description="The answer's elements (typed where modelled)")
    xml: str | None = Field(description="The answer as the device wrote it, where not modelled")


@router.post(
    "/devices/{device_id}/query",
    summary="Ask a GB/T 28181 device (DeviceStatus, presets, PTZ position, SD card, …)",
)
async def device_query(
    device_id: DeviceId, body: DeviceQuery, p: PlatformDep, principal: PrincipalDep
) -> DeviceAnswer:
    target = await asyncio.to_thread(_query_target, p, principal, device_id, body.channel_id)
    server = p.gb28181.server
    if server is None:
        raise DeviceUnreachable("the GB/T 28181 server is not running")
    sn = server.next_sn()
    query: manscdp.Message
    if body.cmd_type == "DeviceInfo":
        query = manscdp.DeviceInfoQuery(device_id=target, sn=sn)
    elif body.cmd_type == "DeviceStatus":
        query = manscdp.DeviceStatusQuery(device_id=target, sn=sn)
    else:
        if body.cmd_type == "ConfigDownload" and not body.config_type:
            raise InvalidInput("ConfigDownload needs a config_type (e.g. BasicParam)")
        extra = {"ConfigType": body.config_type} if body.cmd_type == "ConfigDownload" else {}
        query = manscdp.Unknown(
            kind=manscdp.Kind.QUERY,
            cmd_type=body.cmd_type,
            device_id=target,
            sn=sn,
            fields=extra,  # type: ignore[arg-type]
        )
    try:
        answer = await p.gb28181.ask(device_id, query)
    except LookupError:
        raise DeviceUnreachable(f"device {device_id} is offline (not registered)") from None
    except TimeoutError:
        raise DeviceUnreachable(f"device {device_id} did not answer the query") from None
    except DeviceRefused as exc:
        raise DeviceError(f"device {device_id} refused the query: {exc}") from None
    return _answer_view(answer)


def _query_target(p: Platform, principal: Principal, device_id: str, channel: str | None) -> str:
    p.devices.get(principal, device_id)  # permission and area
    if channel is None:
        return device_id
    view = p.channels.get(principal, channel)
    if view.device_id != device_id:
        raise InvalidInput(f"channel {channel} is not one of device {device_id}'s")
    route = p.gb28181.routes.route(channel)
    return route.remote_id if route is not None else channel


def _answer_view(answer: manscdp.Message) -> DeviceAnswer:
    if isinstance(answer, manscdp.Unknown):
        return DeviceAnswer(
            cmd_type=answer.cmd_type,
            device_id=answer.device_id,
            result=str(answer.fields.get("Result")) if "Result" in answer.fields else None,
            fields=dict(answer.fields),
            xml=answer.xml,
        )
    fields = {
        f.name: getattr(answer, f.name)
        for f in dataclasses.fields(answer)
        if f.name not in ("kind", "sn", "device_id")
    }
    return DeviceAnswer(
        cmd_type=manscdp.cmd_type_of(answer) or type(answer).__name__,
        device_id=answer.device_id,
        result=getattr(answer, "result", None),
        fields=jsonable_encoder(fields),
        xml=None,
    )


class CatalogNodeView(BaseModel):
    id: str = Field(description="The group's ID as the device gave it")
    name: str
    kind: str = Field(description="business_group (215), virtual_org (216) or region")
    channels: list[str] = Field(description="The platform IDs of the channels directly under it")
    children: list[CatalogNodeView]


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    node_id: str
    name: str
    kind: str
    parent_id: str | None


class CatalogTreeView(BaseModel):
    device_id: str
    channels: list[str] = Field(description="Channels at the device's root")
    groups: list[CatalogNodeView]


@router.get(
    "/devices/{device_id}/catalog",
    summary="The GB/T 28181 device's own catalogue tree (business groups, virtual organisations)",
)
def catalog_tree(device_id: DeviceId, p: PlatformDep, principal: PrincipalDep) -> CatalogTreeView:
    p.devices.get(principal, device_id)  # permission and area: PermissionDenied / NotFound
    with p.db.read() as s:
        device_pk = s.scalar(select(Device.pk).where(Device.gb_id == device_id))
        nodes = [
            _Node(n.node_id, n.name, n.kind, n.parent_id)
            for n in s.scalars(select(CatalogNode).where(CatalogNode.device_pk == device_pk))
        ]
        channels = list(
            s.execute(
                select(Channel.gb_id, Channel.catalog_parent)
                .where(Channel.device_pk == device_pk)
                .order_by(Channel.gb_id)
            )
        )
    known = {n.node_id for n in nodes}
    under: dict[str | None, list[str]] = {}
    for gb_id, parent in channels:
        under.setdefault(parent if parent in known else None, []).append(gb_id)
    kids: dict[str | None, list[_Node]] = {}
    for node in sorted(nodes, key=lambda n: (n.name, n.node_id)):
        parent = node.parent_id
        key = parent if parent in known and parent != node.node_id else None
        kids.setdefault(key, []).append(node)
    placed: set[str] = set()

    def build(node: _Node) -> CatalogNodeView:
        placed.add(node.node_id)
        return CatalogNodeView(
            id=node.node_id,
            name=node.name,
            kind=node.kind,
            channels=under.get(node.node_id, []),
            children=[build(k) for k in kids.get(node.node_id, []) if k.node_id not in placed],
        )

    roots = [build(n) for n in kids.get(None, [])]
    # A device may send a cycle (A under B under A): what no root reaches is shown at the root.
    for node in sorted(nodes, key=lambda n: (n.name, n.node_id)):
        if node.node_id not in placed:
            roots.append(build(node))
    return CatalogTreeView(
        device_id=device_id,
        channels=under.get(None, []),
        groups=roots,
    )
