"""GB/T 28181 subscriptions: the platform SUBSCRIBEs to each device's catalogue changes, alarms
and mobile positions, keeps the subscriptions refreshed, and hands what the devices then
NOTIFY (or send as MESSAGE on their own) to a sink that stores it.

A device that registers (not a refresh) is subscribed ``settle`` seconds later, once its first
catalogue has had time to arrive, and at most ``rate`` devices a second (a fleet registering
at once after a restart must not have its keepalives crowded out by 3 x N SUBSCRIBEs):
Catalog (``Event: Catalog``, a CatalogQuery body), Alarm and MobilePosition (``Event:
presence``, as the standard's examples and the devices in the field use, with an AlarmQuery or
a MobilePosition query carrying the interval). Each subscription is
a dialog; it is refreshed inside it (re-SUBSCRIBE) before the granted Expires runs out, and
made anew when the device has forgotten it (481, or a NOTIFY saying it terminated).

Devices differ, and none of that is an error loop:
- many refuse some subscriptions (405, 488, 400, 403…): that is logged once and not tried again
  until the device registers anew;
- some never answer a SUBSCRIBE: tried ``MAX_TRIES`` times with a growing pause, then left;
- alarms and positions also come as MESSAGE outside any subscription, and catalogue changes as
  NOTIFY pages in the dialog or as MESSAGE: all of them end in the same handling;
- a catalogue sent in full as NOTIFY pages after the SUBSCRIBE (items without Event) is
  assembled like the answer to a query (a partial one never deletes); only an explicit DEL
  removes a channel.

An Alarm is answered as the standard wants: 200 to the request, then a MESSAGE with a Response
(CmdType Alarm, the alarm's SN, Result OK).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from xueliang.gb28181 import manscdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.server import MANSCDP, GbServer
from xueliang.gb28181.sip import SipRequest, SipResponse
from xueliang.gb28181.sip.dialog import Dialog

log = logging.getLogger(__name__)

EXPIRES = 3600  # seconds a subscription is asked for
POSITION_INTERVAL = 5  # seconds between a device's MobilePosition notifies
SETTLE = 2.0  # seconds after a registration before subscribing (the first catalogue arrives)
# Devices subscribed per second at most: after a platform restart thousands register at once,
# and their subscriptions must not crowd out keepalives and catalogues.
RATE = 50.0
ANSWER_TIMEOUT = 10.0  # a SUBSCRIBE left unanswered this long counts as a failure
MAX_TRIES = 3  # a device that never answers is tried this often, then left alone
RETRY_BASE = 30.0  # first pause after a failure that is not a refusal; doubles, up to an hour
RETRY_MAX = 3600.0
TICK = 1.0


class Topic(StrEnum):
    CATALOG = "Catalog"
    ALARM = "Alarm"
    POSITION = "MobilePosition"


TOPICS = (Topic.CATALOG, Topic.ALARM, Topic.POSITION)
# The names in the settings (``[gb28181] subscribe``).
TOPIC_SETTINGS = {"catalog": Topic.CATALOG, "alarm": Topic.ALARM, "position": Topic.POSITION}


# --- sans-I/O pieces -----------------------------------------------------------------------------


def event_header(topic: Topic) -> str:
    """The Event header: ``Catalog`` for the catalogue; alarms and positions are subscribed
    under ``presence`` (the standard's examples; what devices in the field expect)."""
    return "Catalog" if topic is Topic.CATALOG else "presence"


def subscribe_body(
    topic: Topic,
    device_id: str,
    sn: int,
    *,
    interval: int = POSITION_INTERVAL,
    encoding: str = "GB2312",
) -> bytes:
    """The MANSCDP query a SUBSCRIBE carries for ``topic``."""
    message: manscdp.Message
    if topic is Topic.CATALOG:
        message = manscdp.CatalogQuery(device_id=device_id, sn=sn)
    elif topic is Topic.ALARM:
        # All levels (1 highest .. 4) and every method (0: all), as the standard's AlarmQuery.
        message = manscdp.Unknown(
            kind=manscdp.Kind.QUERY,
            cmd_type="Alarm",
            device_id=device_id,
            sn=sn,
            fields={"StartAlarmPriority": "1", "EndAlarmPriority": "4", "AlarmMethod": "0"},
        )
    else:
        message = manscdp.MobilePositionQuery(device_id=device_id, sn=sn, interval=interval)
    return manscdp.to_xml(message, encoding)


def topic_of(body: bytes) -> Topic | None:
    """Which subscription a SUBSCRIBE body asks for (the device side reads it so)."""
    try:
        message = manscdp.parse_message(body)
    except ParseError:
        return None
    cmd = manscdp.cmd_type_of(message)
    return next((t for t in TOPICS if t.value == cmd), None)


def granted(response: SipResponse, asked: int) -> int:
    """The lifetime the device granted: its Expires, else what was asked."""
    try:
        value = response.expires
    except ParseError:
        value = None
    return value if value is not None and value > 0 else asked


def refresh_delay(expires: int) -> float:
    """Seconds until a refresh: at 80 % of a long lifetime, half a minute before the end of a
    shorter one, never later than half of it."""
    return max(1.0, expires * 0.5, min(expires * 0.8, expires - 30.0))


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    state: str  # active, pending, terminated (lower case)
    reason: str | None = None
    expires: int | None = None


def subscription_state(value: str | None) -> SubscriptionState | None:
    """The Subscription-State header of a NOTIFY (RFC 6665); None when absent."""
    if not value:
        return None
    state, *params = (part.strip() for part in value.split(";"))
    found: dict[str, str] = {}
    for param in params:
        name, _, text = param.partition("=")
        found[name.strip().lower()] = text.strip().strip('"')
    expires = found.get("expires")
    return SubscriptionState(
        state.lower(),
        found.get("reason"),
        int(expires) if expires and expires.isdigit() else None,
    )


def refused(status: int) -> bool:
    """A final answer that says "not this subscription" (as opposed to "not now")."""
    return (400 <= status < 500 and status not in (408, 423, 429)) or status in (501, 603)


# --- what the notifications become ---------------------------------------------------------------


class NotificationSink(Protocol):
    """Where notifications are stored; every method blocks (called in a worker thread)."""

    def alarm(self, device_id: str, alarm: manscdp.Alarm) -> None: ...

    def positions(self, device_id: str, message: manscdp.MobilePosition) -> None: ...

    def catalog_changes(self, device_id: str, items: list[manscdp.CatalogItem]) -> None: ...


# --- the platform's subscriptions ----------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    device_id: str
    topic: Topic
    state: str = "new"  # new, subscribing, active, refused, failed, ended
    call_id: str | None = None
    dialog: Dialog | None = None
    to: Address | None = None
    expires: int = 0
    refresh_at: float | None = None  # when to refresh (active) or try again (failed)
    tries: int = 0
    reason: str | None = None
    busy: bool = False  # a SUBSCRIBE of it is in flight
    notifies: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    device_id: str
    topic: str
    state: str
    expires: int
    reason: str | None
    notifies: int


class GbSubscriptions:
    def __init__(
        self,
        server: Callable[[], GbServer | None],
        sink: NotificationSink,
        *,
        expires: int = EXPIRES,
        interval: int = POSITION_INTERVAL,
        settle: float = SETTLE,
        rate: float = RATE,
        answer_timeout: float = ANSWER_TIMEOUT,
        topics: tuple[Topic, ...] = TOPICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._sink = sink
        self.expires = expires
        self.interval = interval
        self.settle = settle
        self.rate = rate
        self._next_slot = 0.0  # the loop's time the next device's subscriptions may start
        self.answer_timeout = answer_timeout
        self.topics = topics
        self._clock = clock
        self._subs: dict[tuple[str, Topic], Subscription] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.sent = 0  # SUBSCRIBEs sent, refreshes included (a storm shows here)
        self.alarms = 0
        self.positions = 0

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        server = self._server()
        if server is None:
            return
        self._loop = asyncio.get_running_loop()
        server.presence_listeners.append(self._presence)
        server.notify_listeners.append(self._on_notify)
        self._ticker = self._loop.create_task(self._tick_forever())

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        # (Called on the server's loop; a stop from elsewhere hands the work over to it.)
        if loop is not asyncio.get_running_loop():
            if loop.is_running():
                done = asyncio.run_coroutine_threadsafe(self._stop_on(), loop)
                await asyncio.wrap_future(done)
            return
        await self._stop_on()

    async def _stop_on(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        server = self._server()
        if server is not None:
            if self._presence in server.presence_listeners:
                server.presence_listeners.remove(self._presence)
            if self._on_notify in server.notify_listeners:
                server.notify_listeners.remove(self._on_notify)
            # Tell the devices (Expires: 0), without waiting for their answers.
            for sub in self._subs.values():
                if sub.state == "active" and sub.dialog is not None and sub.to is not None:
                    request = self._request_in_dialog(server, sub, expires=0)
                    server.send_request(request, sub.to).add_done_callback(_ignore)
                if sub.call_id is not None:
                    server.forget_dialog(sub.call_id)
        self._subs.clear()

    def subscriptions(self, device_id: str | None = None) -> list[SubscriptionView]:
        return [
            SubscriptionView(s.device_id, s.topic.value, s.state, s.expires, s.reason, s.notifies)
            for s in self._subs.values()
            if device_id is None or s.device_id == device_id
        ]

    # --- devices arriving and leaving ----------------------------------------------------------

    def _presence(self, device_id: str, online: bool) -> None:
        self._drop(device_id)
        if not online or self._loop is None:
            return
        at = max(self._loop.time() + self.settle, self._next_slot)
        self._next_slot = at + 1.0 / max(self.rate, 0.001)
        self._pending[device_id] = self._loop.call_at(at, self._subscribe_device, device_id)

    def _drop(self, device_id: str) -> None:
        handle = self._pending.pop(device_id, None)
        if handle is not None:
            handle.cancel()
        server = self._server()
        for topic in TOPICS:
            sub = self._subs.pop((device_id, topic), None)
            if sub is not None:
                sub.state = "ended"
                if server is not None and sub.call_id is not None:
                    server.forget_dialog(sub.call_id)

    def _subscribe_device(self, device_id: str) -> None:
        self._pending.pop(device_id, None)
        for topic in self.topics:
            sub = self._subs[(device_id, topic)] = Subscription(device_id, topic)
            self._later(self._subscribe(sub))

    # --- SUBSCRIBE -----------------------------------------------------------------------------

    async def _subscribe(self, sub: Subscription) -> None:
        """A new subscription (out of any dialog)."""
        server = self._server()
        if server is None or sub.busy or sub.state == "ended":
            return
        try:
            to = server.target(sub.device_id)
        except LookupError:
            return
        sub.busy, sub.state, sub.tries = True, "subscribing", sub.tries + 1
        if sub.call_id is not None:
            server.forget_dialog(sub.call_id)
        request = server.make_request(
            "SUBSCRIBE",
            sub.device_id,
            to,
            body=subscribe_body(sub.topic, sub.device_id, server.next_sn(), interval=self.interval),
            content_type=MANSCDP,
            headers=self._headers(sub.topic, self.expires),
        )
        sub.call_id, sub.to, sub.dialog = request.call_id, to, None
        # Before sending: a device may NOTIFY before its 200 arrives here.
        server.on_dialog(request.call_id, lambda r: self._in_dialog(sub, r))
        try:
            response = await self._send(server, request, to)
        finally:
            sub.busy = False
        if sub.state == "ended":
            return
        if response is None or not response.success:
            server.forget_dialog(request.call_id)
            sub.call_id = None
            self._failed(sub, response)
            return
        sub.dialog = Dialog.from_response(request, response)
        self._active(sub, response)

    async def _refresh(self, sub: Subscription) -> None:
        server = self._server()
        if server is None or sub.busy or sub.dialog is None or sub.to is None:
            return
        sub.busy = True
        try:
            response = await self._send(server, self._request_in_dialog(server, sub), sub.to)
        finally:
            sub.busy = False
        if sub.state == "ended":
            return
        if response is not None and response.success:
            self._active(sub, response)
            return
        # The device forgot the dialog (481, a reboot) or did not answer: subscribe anew.
        log.info(
            "GB/T 28181: refreshing the %s subscription of %s failed (%s): subscribing anew",
            sub.topic.value,
            sub.device_id,
            f"{response.status} {response.reason}" if response is not None else "no answer",
        )
        sub.tries = 0
        await self._subscribe(sub)

    def _request_in_dialog(
        self, server: GbServer, sub: Subscription, *, expires: int | None = None
    ) -> SipRequest:
        assert sub.dialog is not None and sub.to is not None
        return sub.dialog.request(
            "SUBSCRIBE",
            server.via(sub.to),
            body=subscribe_body(sub.topic, sub.device_id, server.next_sn(), interval=self.interval),
            content_type=MANSCDP,
            headers=[
                ("Contact", str(server.contact())),
                *self._headers(sub.topic, self.expires if expires is None else expires),
            ],
        )

    def _headers(self, topic: Topic, expires: int) -> list[tuple[str, str]]:
        return [("Event", event_header(topic)), ("Expires", str(expires))]

    async def _send(self, server: GbServer, request: SipRequest, to: Address) -> SipResponse | None:
        self.sent += 1
        try:
            return await asyncio.wait_for(server.send_request(request, to), self.answer_timeout)
        except (TimeoutError, OSError):
            return None

    def _active(self, sub: Subscription, response: SipResponse) -> None:
        first = sub.state != "active"
        sub.state, sub.tries, sub.reason = "active", 0, None
        sub.expires = granted(response, self.expires)
        sub.refresh_at = self._clock() + refresh_delay(sub.expires)
        if first:
            log.info(
                "GB/T 28181: subscribed to %s of %s for %d s",
                sub.topic.value,
                sub.device_id,
                sub.expires,
            )

    def _failed(self, sub: Subscription, response: SipResponse | None) -> None:
        if response is not None and refused(response.status):
            sub.state, sub.refresh_at = "refused", None
            sub.reason = f"{response.status} {response.reason}".strip()
            log.info(
                "GB/T 28181: %s does not take %s subscriptions (%s); not asked again until it "
                "registers anew",
                sub.device_id,
                sub.topic.value,
                sub.reason,
            )
            return
        sub.reason = f"{response.status} {response.reason}" if response else "no answer"
        if sub.tries >= MAX_TRIES:
            sub.state, sub.refresh_at = "refused", None
            log.info(
                "GB/T 28181: %s left the %s subscription unanswered %d times (%s); given up",
                sub.device_id,
                sub.topic.value,
                sub.tries,
                sub.reason,
            )
            return
        sub.state = "failed"
        sub.refresh_at = self._clock() + min(RETRY_MAX, RETRY_BASE * 2 ** (sub.tries - 1))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick(self._clock())
            except Exception:
                log.exception("GB/T 28181: subscription timers failed")

    def tick(self, now: float) -> None:
        for sub in list(self._subs.values()):
            if sub.busy or sub.refresh_at is None or sub.refresh_at > now:
                continue
            sub.refresh_at = None
            if sub.state == "active":
                self._later(self._refresh(sub))
            elif sub.state == "failed":
                self._later(self._subscribe(sub))

    # --- what the devices send -----------------------------------------------------------------

    def _in_dialog(self, sub: Subscription, request: SipRequest) -> int:
        """A request in a subscription's dialog: NOTIFY (anything else is not expected)."""
        if request.method != "NOTIFY":
            return 200 if request.method == "BYE" else 405
        state = subscription_state(request.headers.get("Subscription-State"))
        if state is not None and state.state == "terminated" and sub.state != "ended":
            # The device ended it (a timeout, a restart): subscribe anew after a pause, unless
            # it says it will not have us (rejected, noresource).
            if state.reason in ("rejected", "noresource", "invariant"):
                sub.state, sub.refresh_at, sub.reason = "refused", None, state.reason
            else:
                sub.state, sub.tries = "failed", 0
                sub.refresh_at = self._clock() + RETRY_BASE
        if not request.body:
            return 200
        try:
            message = manscdp.parse_message(request.body)
        except ParseError as exc:
            log.info("GB/T 28181: unreadable NOTIFY from %s: %s", sub.device_id, exc)
            return 400
        sub.notifies += 1
        self._handle(sub.device_id, message, in_dialog=True)
        return 200

    def _on_notify(self, sender: str, message: manscdp.Message, request: SipRequest) -> None:
        """MESSAGE or out-of-dialog NOTIFY from a registered device (already answered 200)."""
        self._handle(sender, message, in_dialog=False)

    def _handle(self, device_id: str, message: manscdp.Message, *, in_dialog: bool) -> None:
        server = self._server()
        if server is None:
            return
        sink = self._sink
        if isinstance(message, manscdp.Alarm):
            self.alarms += 1
            answer = manscdp.Result(
                cmd_type="Alarm", device_id=message.device_id or device_id, sn=message.sn
            )
            server.query(device_id, answer).add_done_callback(_ignore)
            server._spawn(device_id, lambda: sink.alarm(device_id, message))
        elif isinstance(message, manscdp.MobilePosition):
            if message.positions:
                self.positions += len(message.positions)
                server._spawn(device_id, lambda: sink.positions(device_id, message))
        elif isinstance(message, manscdp.Catalog) and message.kind is not manscdp.Kind.QUERY:
            changes = [item for item in message.items if item.event]
            if changes:
                server._spawn(device_id, lambda: sink.catalog_changes(device_id, changes))
            elif in_dialog:
                # The whole catalogue, sent as NOTIFY pages: assembled as a query's answer.
                server._catalog_page(device_id, message, server._clock())

    def _later(self, work: object) -> None:
        if self._loop is None or not asyncio.iscoroutine(work):
            return
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("GB/T 28181: a subscription task failed", exc_info=task.exception())


def _ignore(future: asyncio.Future[SipResponse]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: an unanswered Expires: 0 or Alarm answer is no error
