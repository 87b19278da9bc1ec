"""The simulated device as a notifier: the platform's subscriptions and what they bring.

Accept Catalog, Alarm and MobilePosition subscriptions (200 with a To tag, Contact and the
granted Expires; refreshes inside the dialog; ``refuse_subscribe`` plays a device that
answers 405 and the like) and NOTIFY in them: ``raise_alarm``, ``add_channel`` /
``remove_channel`` / ``channel_status`` (catalogue changes: ADD, DEL, ON/OFF/VLOST/DEFECT),
and, for a ``mobile`` device, a MobilePosition every
interval along a small synthetic track. Without a subscription an alarm or a catalogue change
goes out as a MESSAGE, as devices also do.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

from xueliang.gb28181 import manscdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.simulator.catalog import Channel, catalog_items
from xueliang.gb28181.simulator.core import DeviceCore
from xueliang.gb28181.simulator.model import MANSCDP, USER_AGENT, Output, Subscription
from xueliang.gb28181.sip import SipRequest, make_request, make_response, new_tag
from xueliang.gb28181.sip.transaction import ServerTransaction


class SubscriptionsMixin(DeviceCore):
    """SUBSCRIBE answered, NOTIFY sent: alarms, catalogue changes, mobile positions."""

    def subscribed(self, topic: str) -> bool:
        return any(sub.topic == topic for sub in self.subscriptions.values())

    def _on_subscribe(
        self, request: SipRequest, transaction: ServerTransaction | None, now: float
    ) -> list[Output]:
        self.counters.subscribes += 1
        cfg = self.config
        if cfg.refuse_subscribe:
            return self._respond(transaction, make_response(request, cfg.refuse_subscribe), now)
        try:
            message = manscdp.parse_message(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 400), now)
        topic = manscdp.cmd_type_of(message)
        if topic not in ("Catalog", "Alarm", "MobilePosition"):
            return self._respond(transaction, make_response(request, 489, "Bad Event"), now)
        asked = request.expires
        expires = min(cfg.max_subscribe_expires, asked if asked is not None else 3600)
        existing = self.subscriptions.get(request.call_id)
        if request.to.tag is not None and existing is None:
            return self._respond(transaction, make_response(request, 481), now)
        if existing is None:
            contacts = request.contacts
            existing = Subscription(
                topic=topic,
                call_id=request.call_id,
                local=request.to.with_tag(new_tag()),
                remote=request.from_,
                target=str(contacts[0].uri) if contacts else request.uri,
                event=request.headers.get("Event") or topic,
                expires_at=now + expires,
            )
            self.subscriptions[request.call_id] = existing
        sub = existing
        sub.expires_at = now + expires
        if isinstance(message, manscdp.MobilePositionQuery):
            sub.interval = float(max(1, message.interval or 5))
            if cfg.mobile and sub.next_at is None:
                sub.next_at = now + sub.interval
        if expires == 0:
            del self.subscriptions[sub.call_id]
        response = make_response(
            request,
            200,
            to_tag=sub.local.tag,
            headers=[
                ("Contact", str(self._contact())),
                ("Expires", str(expires)),
                ("User-Agent", USER_AGENT),
            ],
        )
        return self._respond(transaction, response, now)

    def _notify(self, sub: Subscription, body: bytes, now: float) -> list[Output]:
        sub.cseq += 1
        left = max(0, int(sub.expires_at - now))
        request = make_request(
            "NOTIFY",
            sub.target,
            via=self._via(),
            from_=sub.local,
            to=sub.remote,
            call_id=sub.call_id,
            cseq=sub.cseq,
            headers=[
                ("Event", sub.event),
                ("Subscription-State", f"active;expires={left}"),
                ("User-Agent", USER_AGENT),
            ],
            body=body,
            content_type=MANSCDP,
        )
        self.counters.notifies_sent += 1
        return self._start_client(request, "notify", now)

    def _subscription(self, topic: str) -> Subscription | None:
        return next((s for s in self.subscriptions.values() if s.topic == topic), None)

    def _local_time(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, UTC).replace(tzinfo=None) + timedelta(
            hours=self.config.utc_offset_hours
        )

    def raise_alarm(
        self,
        now: float,
        channel_id: str | None = None,
        *,
        priority: int = 1,
        method: str = "5",
        alarm_type: int | None = 2,
        description: str = "移动侦测报警",
        subscribed: bool = True,
    ) -> list[Output]:
        """An alarm on a channel (the first when None): a NOTIFY in the Alarm subscription
        (``subscribed`` and there is one), else a MESSAGE as devices send on their own."""
        channel = self._channels.get(channel_id or "") or next(iter(self._channels.values()))
        alarm = manscdp.Alarm(
            device_id=channel.channel_id,
            sn=self._next_sn(),
            alarm_priority=priority,
            alarm_method=method,
            alarm_time=self._local_time(now),
            alarm_description=description,
            longitude=channel.longitude,
            latitude=channel.latitude,
            alarm_type=alarm_type,
        )
        body = manscdp.to_xml(alarm)
        sub = self._subscription("Alarm") if subscribed else None
        if sub is not None:
            return self._notify(sub, body, now)
        return self._send_message(now, body, "message")

    def add_channel(self, now: float, channel: Channel) -> list[Output]:
        """A new channel, announced as a catalogue change (Event ADD)."""
        self._channels[channel.channel_id] = channel
        return self._catalog_change(now, channel, "ADD")

    def remove_channel(self, now: float, channel_id: str) -> list[Output]:
        """A channel gone, announced as a catalogue change (Event DEL)."""
        channel = self._channels.pop(channel_id, None)
        if channel is None:
            return []
        return self._catalog_change(now, channel, "DEL")

    def channel_status(self, now: float, channel_id: str, event: str) -> list[Output]:
        """A channel's status change as a catalogue notify: ON, OFF, VLOST, DEFECT."""
        channel = self._channels.get(channel_id)
        if channel is None:
            return []
        return self._catalog_change(now, channel, event)

    def _catalog_change(self, now: float, channel: Channel, event: str) -> list[Output]:
        cfg = self.config
        (item,) = catalog_items(cfg.device_id, cfg.civil_code or cfg.domain[:6], (channel,))
        change = manscdp.Catalog(
            device_id=cfg.device_id,
            sn=self._next_sn(),
            sum_num=1,
            items=(dataclasses.replace(item, event=event),),
            kind=manscdp.Kind.NOTIFY,
        )
        body = manscdp.to_xml(change)
        sub = self._subscription("Catalog")
        if sub is not None:
            return self._notify(sub, body, now)
        return self._send_message(now, body, "message")

    def _send_positions(self, sub: Subscription, now: float) -> list[Output]:
        """Every channel a step along a small circle around its place: one point in the 2016
        form for a single channel, the 2022 list for several."""
        sub.step += 1
        angle = sub.step * math.pi / 12
        at = self._local_time(now)
        points = tuple(
            manscdp.Position(
                device_id=ch.channel_id,
                time=at,
                longitude=round(ch.longitude + 0.002 * math.cos(angle), 6),
                latitude=round(ch.latitude + 0.002 * math.sin(angle), 6),
                speed=20.0,
                direction=round(math.degrees(angle + math.pi / 2) % 360, 1),
                altitude=12.0,
            )
            for ch in self._channels.values()
        )
        if not points:
            return []
        named = points[0].device_id if len(points) == 1 else None
        message = manscdp.MobilePosition(
            device_id=named or self.config.device_id,
            sn=self._next_sn(),
            positions=points,
        )
        return self._notify(sub, manscdp.to_xml(message), now)
