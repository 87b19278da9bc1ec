"""GB/T 28181 subscriptions (Catalog, Alarm, MobilePosition) and the events they bring.

First the sans-I/O pieces with bytes: the SUBSCRIBE bodies, refresh timing, Subscription-State,
and the simulated device as notifier. Then the platform as in production (uvicorn serving the
app, its lifespan starting GB/T 28181) with the project's simulator in this process on a loop
of its own: subscriptions are made after registration, an alarm raised at the device becomes an
event in the API (and only users whose area holds the channel see it), positions make a track
and move the channel, catalogue changes add and remove channels, and a device that refuses
every SUBSCRIBE is asked once per topic and then left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TOWN_A, TOWN_B, login
from tests.support.gb import SimThread, gb_platform, sim_thread
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.app import Platform
from xueliang.gb28181 import manscdp
from xueliang.gb28181.simulator.catalog import Channel, channel_id, device_id, make_channels
from xueliang.gb28181.simulator.device import Device, DeviceConfig, Output, Transmit
from xueliang.gb28181.sip import (
    NameAddr,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from xueliang.gb28181.sip.dialog import Dialog
from xueliang.gb28181.subscriptions import (
    Topic,
    event_header,
    granted,
    refresh_delay,
    refused,
    subscribe_body,
    subscription_state,
    topic_of,
)
from xueliang.registry.schemas import ChannelUpdate, OrgCreate

API = "/api/v1"
PASSWORD = "Viewer-Passw0rd-1"
DOMAIN = "3402000000"
SERVER_ID = "34020000002000000001"
T0 = 1_780_000_000.0


# --- sans-I/O: bodies, timing, headers -----------------------------------------------------------


def test_subscribe_bodies_are_the_standards_queries() -> None:
    dev = "34020000001320000001"
    catalog = subscribe_body(Topic.CATALOG, dev, 7)
    assert b'encoding="GB2312"' in catalog
    assert b"<Query>" in catalog and b"<CmdType>Catalog</CmdType>" in catalog
    assert b"<SN>7</SN>" in catalog and f"<DeviceID>{dev}</DeviceID>".encode() in catalog
    alarm = subscribe_body(Topic.ALARM, dev, 8)
    for element in (
        b"<CmdType>Alarm</CmdType>",
        b"<StartAlarmPriority>1</StartAlarmPriority>",
        b"<EndAlarmPriority>4</EndAlarmPriority>",
        b"<AlarmMethod>0</AlarmMethod>",
    ):
        assert element in alarm
    position = subscribe_body(Topic.POSITION, dev, 9, interval=5)
    assert b"<CmdType>MobilePosition</CmdType>" in position
    assert b"<Interval>5</Interval>" in position
    parsed = manscdp.parse_message(position)
    assert parsed == manscdp.MobilePositionQuery(device_id=dev, sn=9, interval=5)
    assert [topic_of(b) for b in (catalog, alarm, position, b"<x/>")] == [
        Topic.CATALOG,
        Topic.ALARM,
        Topic.POSITION,
        None,
    ]
    assert event_header(Topic.CATALOG) == "Catalog"
    assert event_header(Topic.ALARM) == event_header(Topic.POSITION) == "presence"


def test_refresh_timing_granted_expires_and_refusals() -> None:
    assert refresh_delay(3600) == 2880  # 80 % of an hour
    assert refresh_delay(60) == 30  # half a minute early, but not before half of it
    assert refresh_delay(10) == 5
    assert refresh_delay(1) == 1
    request = make_request(
        "SUBSCRIBE",
        "sip:34020000001320000001@127.0.0.1:5060",
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        from_=NameAddr(SipUri(host=DOMAIN, user=SERVER_ID), params={"tag": new_tag()}),
        to=NameAddr(SipUri(host=DOMAIN, user="34020000001320000001")),
        call_id=new_call_id(),
        cseq=1,
    )
    assert granted(make_response(request, 200, headers=[("Expires", "600")]), 3600) == 600
    assert granted(make_response(request, 200), 3600) == 3600
    assert granted(make_response(request, 200, headers=[("Expires", "0")]), 3600) == 3600
    assert all(refused(s) for s in (400, 403, 404, 405, 481, 489, 501, 603))
    assert not any(refused(s) for s in (408, 429, 500, 503))


def test_subscription_state_header() -> None:
    assert subscription_state(None) is None
    active = subscription_state("active;expires=3599")
    assert active is not None and (active.state, active.expires) == ("active", 3599)
    ended = subscription_state("Terminated; reason=timeout")
    assert ended is not None and (ended.state, ended.reason) == ("terminated", "timeout")


# --- sans-I/O: the simulated device as notifier --------------------------------------------------


def _device(channels: int = 1, **overrides: Any) -> Device:
    config = DeviceConfig(
        device_id=device_id(DOMAIN, 0, nvr=channels > 1),
        server_id=SERVER_ID,
        domain=DOMAIN,
        password="12345678",
        channels=make_channels(DOMAIN, 0, channels),
        **overrides,
    )
    return Device(config)


def _sent(outputs: list[Output]) -> list[SipRequest | SipResponse]:
    return [parse_message(o.data) for o in outputs if isinstance(o, Transmit)]


def _subscribe(device: Device, topic: Topic, now: float, expires: int = 3600) -> Dialog:
    """SUBSCRIBE as the platform does; the 200 checked; the dialog it creates."""
    target = device.config.device_id
    request = make_request(
        "SUBSCRIBE",
        f"sip:{target}@127.0.0.1:5061",
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch(), "rport": None}),
        from_=NameAddr(SipUri(host=DOMAIN, user=SERVER_ID), params={"tag": new_tag()}),
        to=NameAddr(SipUri(host=DOMAIN, user=target)),
        call_id=new_call_id(),
        cseq=5,
        contact=NameAddr(SipUri(host="127.0.0.1", user=SERVER_ID, port=5060)),
        headers=[("Event", event_header(topic)), ("Expires", str(expires))],
        body=subscribe_body(topic, target, 11, interval=2),
        content_type="Application/MANSCDP+xml",
    )
    (response,) = _sent(device.receive(request.to_bytes(), now, ("127.0.0.1", 5060)))
    assert isinstance(response, SipResponse) and response.status == 200
    assert response.to.tag and response.expires == expires
    assert response.contacts and response.contacts[0].uri.user == target
    return Dialog.from_response(request, response)


def _answered(device: Device, outputs: list[Output], now: float) -> SipRequest:
    """The one request the device sent, answered 200 (no retransmissions later)."""
    (request,) = _sent(outputs)
    assert isinstance(request, SipRequest)
    device.receive(make_response(request, 200).to_bytes(), now, ("127.0.0.1", 5060))
    return request


def _notify(
    device: Device, outputs: list[Output], dialog: Dialog, now: float
) -> tuple[SipRequest, manscdp.Message]:
    request = _answered(device, outputs, now)
    assert isinstance(request, SipRequest) and request.method == "NOTIFY"
    assert dialog.matches(request), "the NOTIFY must be in the subscription's dialog"
    assert request.uri == f"sip:{SERVER_ID}@127.0.0.1:5060"  # the platform's Contact
    state = subscription_state(request.headers.get("Subscription-State"))
    assert state is not None and state.state == "active"
    return request, manscdp.parse_message(request.body)


def test_simulated_device_notifies_alarms_positions_and_catalogue_changes() -> None:
    device = _device(channels=2, mobile=True)
    alarms = _subscribe(device, Topic.ALARM, T0)
    positions = _subscribe(device, Topic.POSITION, T0)
    catalog = _subscribe(device, Topic.CATALOG, T0)
    assert device.subscribed("Alarm") and device.subscribed("MobilePosition")

    first = device.config.channels[1]
    raised = device.raise_alarm(T0 + 1, first.channel_id, priority=2)
    request, alarm = _notify(device, raised, alarms, T0 + 1)
    assert request.headers.get("Event") == "presence"
    assert isinstance(alarm, manscdp.Alarm)
    assert (alarm.device_id, alarm.alarm_priority, alarm.alarm_method) == (
        first.channel_id,
        2,
        "5",
    )
    # Outside a subscription, as devices also do: a MESSAGE.
    message = _answered(device, device.raise_alarm(T0 + 1, subscribed=False), T0 + 1)
    assert message.method == "MESSAGE"

    # A mobile device moves every interval (2 s asked), all channels in one 2022 list.
    assert device.next_deadline is not None and device.next_deadline <= T0 + 2
    _, moved = _notify(device, device.tick(T0 + 2), positions, T0 + 2)
    assert isinstance(moved, manscdp.MobilePosition) and len(moved.positions) == 2
    _, again = _notify(device, device.tick(T0 + 4), positions, T0 + 4)
    assert isinstance(again, manscdp.MobilePosition)
    assert again.positions[0].longitude != moved.positions[0].longitude

    extra = Channel("34020000001310000099", "新增点位", 3, 120.2, 30.3)
    _, added = _notify(device, device.add_channel(T0 + 5, extra), catalog, T0 + 5)
    assert isinstance(added, manscdp.Catalog) and added.kind is manscdp.Kind.NOTIFY
    assert [(i.device_id, i.event) for i in added.items] == [(extra.channel_id, "ADD")]
    _, removed = _notify(device, device.remove_channel(T0 + 6, first.channel_id), catalog, T0 + 6)
    assert isinstance(removed, manscdp.Catalog)
    assert [(i.device_id, i.event) for i in removed.items] == [(first.channel_id, "DEL")]


def test_simulated_device_refreshes_ends_and_refuses_subscriptions() -> None:
    device = _device()
    dialog = _subscribe(device, Topic.CATALOG, T0, expires=60)
    refresh = dialog.request(
        "SUBSCRIBE",
        Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        body=subscribe_body(Topic.CATALOG, device.config.device_id, 12),
        content_type="Application/MANSCDP+xml",
        headers=[("Event", "Catalog"), ("Expires", "60")],
    )
    (ok,) = _sent(device.receive(refresh.to_bytes(), T0 + 50, ("127.0.0.1", 5060)))
    assert isinstance(ok, SipResponse) and ok.status == 200 and ok.to.tag == dialog.remote_tag
    device.tick(T0 + 100)  # still alive: refreshed at T0 + 50 for 60 s
    assert device.subscribed("Catalog")
    device.tick(T0 + 111)  # never refreshed again: gone
    assert not device.subscribed("Catalog")
    (gone,) = _sent(device.receive(refresh.to_bytes(), T0 + 112, ("127.0.0.1", 5060)))
    assert isinstance(gone, SipResponse) and gone.status == 481

    stubborn = _device(refuse_subscribe=405)
    request = make_request(
        "SUBSCRIBE",
        f"sip:{stubborn.config.device_id}@127.0.0.1:5061",
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        from_=NameAddr(SipUri(host=DOMAIN, user=SERVER_ID), params={"tag": new_tag()}),
        to=NameAddr(SipUri(host=DOMAIN, user=stubborn.config.device_id)),
        call_id=new_call_id(),
        cseq=1,
        body=subscribe_body(Topic.ALARM, stubborn.config.device_id, 1),
        content_type="Application/MANSCDP+xml",
    )
    (no,) = _sent(stubborn.receive(request.to_bytes(), T0, ("127.0.0.1", 5060)))
    assert isinstance(no, SipResponse) and no.status == 405


# --- through the platform ------------------------------------------------------------------------


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    platform.settings.gb28181.position_interval = 1
    platform.gb28181.subscriptions.settle = 0.2
    with gb_platform(platform):
        yield platform


@pytest.fixture
def sim(gb: Platform) -> Iterator[SimThread]:
    with sim_thread(gb, channels=2, keepalive=1.0, mobile=True) as thread:
        yield thread


def _subscribed(gb: Platform, device: Device) -> None:
    """Wait until the platform holds all three subscriptions of the device, active."""

    def active() -> bool:
        views = gb.gb28181.subscriptions.subscriptions(device.config.device_id)
        return len(views) == 3 and all(v.state == "active" for v in views)

    wait_until(active, 30, "three active subscriptions")
    for topic in ("Catalog", "Alarm", "MobilePosition"):
        assert device.subscribed(topic), topic


def _channels(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = client.get(f"{API}/channels", headers=headers)
    assert r.status_code == 200, r.text
    return {c["id"]: c for c in r.json()["items"]}


@pytest.fixture
def device(
    gb: Platform, sim: SimThread, client: TestClient, admin_headers: dict[str, str]
) -> Device:
    """The simulated NVR, registered, its two channels in the register, all three topics
    subscribed."""
    device = sim.start()
    wait_until(lambda: len(_channels(client, admin_headers)) == 2, 30, "the NVR's channels")
    _subscribed(gb, device)
    return device


def _events(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"{API}/events", headers=headers, params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _towns(gb: Platform) -> None:
    for code, name, level, parent in [
        ("340202", "县", "county", None),
        (TOWN_A, "甲镇", "town", "340202"),
        (TOWN_B, "乙镇", "town", "340202"),
    ]:
        gb.orgs.create(SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent))


def _user(gb: Platform, client: TestClient, name: str, org: str) -> dict[str, str]:
    gb.users.create_user(
        SYSTEM,
        UserCreate(username=name, password=PASSWORD, roles=["viewer"], scope=ScopeSpec(orgs=[org])),
    )
    return login(client, name, PASSWORD)


def test_alarms_become_events_seen_only_in_their_area(
    gb: Platform, sim: SimThread, device: Device, client: TestClient, admin_headers: dict[str, str]
) -> None:
    first, second = (ch.channel_id for ch in device.config.channels)
    _towns(gb)
    gb.channels.update(SYSTEM, second, ChannelUpdate(org=TOWN_A))

    raised = datetime.now(UTC)
    sim.act(lambda d, now: d.raise_alarm(now, second, priority=2, description="区域入侵"))
    found = wait_until(
        lambda: _events(client, admin_headers, kind="gb.alarm"), 15, "the alarm as an event"
    )
    (event,) = found
    assert event["channel_id"] == second
    assert event["device_id"] == device.config.device_id
    assert (event["priority"], event["method"], event["type"]) == (2, "5", "2")
    assert event["description"] == "区域入侵"
    occurred = datetime.fromisoformat(event["occurred_at"])
    assert abs((occurred - raised).total_seconds()) < 5  # device local time read as Beijing
    assert event["longitude"] is not None and event["latitude"] is not None
    # The platform answered the alarm with its own Response (Result OK), as the standard wants.
    wait_until(lambda: device.alarm_answers, 10, "the platform's answer to the alarm")
    assert device.alarm_answers[0].ok and device.alarm_answers[0].device_id == second

    # An alarm a device sends on its own, as a MESSAGE, is an event all the same.
    sim.act(lambda d, now: d.raise_alarm(now, first, priority=4, subscribed=False))
    wait_until(lambda: len(_events(client, admin_headers)) == 2, 15, "the MESSAGE alarm")
    assert [e["channel_id"] for e in _events(client, admin_headers, channel_id=first)] == [first]

    inside = _user(gb, client, "town-a", TOWN_A)
    outside = _user(gb, client, "town-b", TOWN_B)
    assert [e["id"] for e in _events(client, inside)] == [event["id"]]
    assert _events(client, outside) == []
    assert _events(client, outside, channel_id=second) == []
    later = datetime.now(UTC).isoformat()
    assert _events(client, admin_headers, start=later) == []
    r = client.get(f"{API}/events", headers=admin_headers, params={"limit": 1})
    assert r.json()["total"] == 2 and len(r.json()["items"]) == 1


def test_positions_make_a_track_and_move_the_channel(
    gb: Platform, device: Device, client: TestClient, admin_headers: dict[str, str]
) -> None:
    ch = device.config.channels[0]
    url = f"{API}/channels/{ch.channel_id}/track"

    def points() -> list[dict[str, Any]] | None:
        r = client.get(url, headers=admin_headers)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items if len(items) >= 3 else None

    track = wait_until(points, 30, "three positions of the mobile device")
    times = [datetime.fromisoformat(p["at"]) for p in track]
    assert times == sorted(times)
    assert all(p["speed"] == 20.0 and p["altitude"] == 12.0 for p in track)
    assert len({(p["longitude"], p["latitude"]) for p in track}) >= 2  # it moved
    assert all(abs(p["longitude"] - ch.longitude) < 0.01 for p in track)

    def moved() -> bool:
        channel = _channels(client, admin_headers)[ch.channel_id]
        r = client.get(url, headers=admin_headers, params={"limit": 1000})
        last = r.json()["items"][-1]
        return bool(
            (channel["longitude"], channel["latitude"]) == (last["longitude"], last["latitude"])
        )

    wait_until(moved, 10, "the channel's coordinates at its newest position")
    r = client.get(url, headers=admin_headers, params={"start": datetime.now(UTC).isoformat()})
    assert r.status_code == 200 and all(
        datetime.fromisoformat(p["at"]) >= times[-1] for p in r.json()["items"]
    )
    assert (
        client.get(f"{API}/channels/34020000001319999999/track", headers=admin_headers).status_code
        == 404
    )
    _towns(gb)
    outside = _user(gb, client, "town-b", TOWN_B)
    assert client.get(url, headers=outside).status_code == 403


def test_catalogue_changes_add_and_remove_channels(
    gb: Platform, sim: SimThread, device: Device, client: TestClient, admin_headers: dict[str, str]
) -> None:
    new = Channel(channel_id(DOMAIN, 50, 0, 1), "新增点位", 3, 120.2, 30.3)
    sim.act(lambda d, now: d.add_channel(now, new))
    wait_until(lambda: new.channel_id in _channels(client, admin_headers), 15, "the added channel")
    assert _channels(client, admin_headers)[new.channel_id]["name"] == "新增点位"

    # Status changes with their reason.
    kept = device.config.channels[1].channel_id
    sim.act(lambda d, now: d.channel_status(now, kept, "VLOST"))
    wait_until(lambda: _channels(client, admin_headers)[kept]["status"] == "offline", 15, "VLOST")
    assert "video lost" in _channels(client, admin_headers)[kept]["status_reason"]
    sim.act(lambda d, now: d.channel_status(now, kept, "ON"))
    wait_until(lambda: _channels(client, admin_headers)[kept]["status"] == "online", 15, "ON")

    gone = device.config.channels[0].channel_id
    sim.act(lambda d, now: d.remove_channel(now, gone))
    wait_until(lambda: gone not in _channels(client, admin_headers), 15, "the removed channel gone")
    assert set(_channels(client, admin_headers)) == {
        device.config.channels[1].channel_id,
        new.channel_id,
    }


def test_a_device_refusing_subscriptions_is_asked_once(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    with sim_thread(gb, channels=1, keepalive=1.0, refuse_subscribe=405) as thread:
        device = thread.start()
        subs = gb.gb28181.subscriptions

        def refused_all() -> bool:
            views = subs.subscriptions(device.config.device_id)
            return len(views) == 3 and all(v.state == "refused" for v in views)

        wait_until(refused_all, 30, "three refused subscriptions")
        assert all((v.reason or "").startswith("405") for v in subs.subscriptions())
        sent = subs.sent
        # Time passes (the timers run far into the future), keepalives go on: nothing is
        # asked again.
        loop = gb.gb28181.loop
        assert loop is not None
        loop.call_soon_threadsafe(subs.tick, time.monotonic() + 100_000)
        seen = device.counters.keepalives_ok
        wait_until(lambda: device.counters.keepalives_ok >= seen + 2, 15, "two more keepalives")
        assert device.counters.subscribes == 3
        assert subs.sent == sent == 3
        assert device.registered


def test_subscriptions_are_refreshed_in_their_dialogs_and_made_anew_when_forgotten(
    gb: Platform, sim: SimThread, client: TestClient, admin_headers: dict[str, str]
) -> None:
    device = sim.start()
    _subscribed(gb, device)
    subs = gb.gb28181.subscriptions
    loop = gb.gb28181.loop
    assert loop is not None
    dialogs = set(device.subscriptions)
    assert len(dialogs) == 3 and device.counters.subscribes == 3

    # The refresh time comes (the timers run an hour ahead): re-SUBSCRIBE in each dialog.
    loop.call_soon_threadsafe(subs.tick, time.monotonic() + 3600)
    wait_until(lambda: device.counters.subscribes == 6, 10, "three refreshes")
    assert set(device.subscriptions) == dialogs
    wait_until(lambda: all(v.state == "active" for v in subs.subscriptions()), 10, "still active")

    # The device forgets them (a reboot): the next refresh meets 481 and subscribes anew.
    def forget(d: Device, now: float) -> list[Output]:
        d.subscriptions.clear()
        return []

    sim.act(forget)
    wait_until(lambda: not device.subscriptions, 10, "the device forgetting")
    loop.call_soon_threadsafe(subs.tick, time.monotonic() + 7200)
    wait_until(lambda: len(device.subscriptions) == 3, 10, "three new subscriptions")
    assert not set(device.subscriptions) & dialogs
    _subscribed(gb, device)
    # The new dialogs work: an alarm in one becomes an event.
    sim.act(lambda d, now: d.raise_alarm(now, priority=3))
    wait_until(lambda: _events(client, admin_headers), 15, "the alarm in the new dialog")


def test_catalogue_changes_in_the_register_spare_held_channels(platform: Platform) -> None:
    from sqlalchemy import select

    from xueliang.gb28181.registrar import Address
    from xueliang.store.models import Channel as ChannelRow
    from xueliang.store.models import Hold

    directory = platform.gb28181.directory
    nvr = device_id(DOMAIN, 7, nvr=True)
    chans = make_channels(DOMAIN, 7, 3)
    directory.online(nvr, Address("127.0.0.1", 5070), renewed=False)
    items = [manscdp.CatalogItem(device_id=c.channel_id, name=c.name, status="ON") for c in chans]
    directory.catalog(nvr, items, complete=True)
    now = datetime.now(UTC)
    with platform.db.transaction() as s:
        held = s.scalar(select(ChannelRow).where(ChannelRow.gb_id == chans[0].channel_id))
        assert held is not None
        s.add(Hold(channel_pk=held.pk, start=now, end=now, reason="case 7", created_by="admin"))

    def change(item: manscdp.CatalogItem, event: str) -> manscdp.CatalogItem:
        return manscdp.CatalogItem(device_id=item.device_id, name=item.name, event=event)

    directory.catalog_changes(
        nvr,
        [change(items[0], "DEL"), change(items[1], "DEL"), change(items[2], "DEFECT")],
    )
    with platform.db.read() as s:
        rows = {c.gb_id: (c.status, c.status_reason) for c in s.scalars(select(ChannelRow))}
    assert chans[1].channel_id not in rows  # an explicit DEL removes it
    # Under a legal hold: kept, offline, with the reason.
    assert rows[chans[0].channel_id] == ("offline", "removed by the device (kept: legal hold)")
    assert rows[chans[2].channel_id] == ("offline", "faulty (reported by the device)")
    audit, _ = platform.audit_records.list(SYSTEM, action="channel.delete")
    assert [a.target for a in audit] == [f"channel:{chans[1].channel_id}"]
