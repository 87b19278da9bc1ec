"""RFC 3261 section 17 transactions as sans-I/O state machines.

A transaction is driven by explicit calls, each taking the current time in seconds:
``start``, ``receive(message, now)``, ``send(response, now)`` (server side) and ``tick(now)``.
Every call returns the actions the caller carries out in order: :class:`Send` these bytes to the
peer, :class:`Deliver` this message to the transaction user, :class:`Timeout` (the peer never
answered), :class:`Terminated` (forget the transaction). ``next_deadline`` says when to call
``tick`` next.

Reliable transports (TCP) send nothing twice and drop the wait states (timers D, I, J, K are
zero), as RFC 3261 says. INVITE 2xx handling follows RFC 6026: both sides keep an Accepted state
(timers L and M) instead of ending at once, and the server side also retransmits its 2xx until
the ACK arrives (RFC 3261 13.3.1.4 gives that job to the TU; doing it here means the server
code above needs no timer of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from xueliang.gb28181.sip.headers import Headers
from xueliang.gb28181.sip.message import SipMessage, SipRequest, SipResponse, make_response


@dataclass(frozen=True)
class Timers:
    """RFC 3261 table 4 base values, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L, M."""
        return 64 * self.t1


DEFAULT_TIMERS = Timers()


@dataclass(frozen=True)
class Send:
    message: SipMessage
    data: bytes
    retransmission: bool = False


@dataclass(frozen=True)
class Deliver:
    message: SipMessage


@dataclass(frozen=True)
class Timeout:
    """The transaction gave up: ``timer`` is B or F (no answer), H (no ACK for a failure
    response), L (no ACK for a 2xx) or ``transport`` (the transport reported an error)."""

    timer: str


@dataclass(frozen=True)
class Terminated:
    pass


Action = Send | Deliver | Timeout | Terminated


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class _Transaction:
    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.is_invite = request.method == "INVITE"
        self.state = State.TERMINATED
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    @property
    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def tick(self, now: float) -> list[Action]:
        """Fire every timer due by ``now``, earliest first."""
        actions: list[Action] = []
        while self.state is not State.TERMINATED:
            due = [(at, name) for name, at in self._deadlines.items() if at <= now]
            if not due:
                break
            _, name = min(due)
            del self._deadlines[name]
            actions += self._fire(name, now)
        return actions

    def transport_error(self, now: float) -> list[Action]:
        """The transport could not send (RFC 3261 17.1.4 / 17.2.4)."""
        if self.state is State.TERMINATED:
            return []
        return [Timeout("transport"), *self._terminate()]

    def _fire(self, name: str, now: float) -> list[Action]:
        raise NotImplementedError

    def _arm(self, name: str, now: float, delay: float) -> None:
        self._deadlines[name] = now + delay

    def _arm_retransmit(self, name: str, now: float, interval: float) -> None:
        self._intervals[name] = interval
        self._deadlines[name] = now + interval

    def _cancel(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self) -> list[Action]:
        self.state = State.TERMINATED
        self._deadlines.clear()
        return [Terminated()]

    def _wait_or_end(self, name: str, now: float, delay: float) -> list[Action]:
        """Enter a wait state's timer, or end now on a reliable transport (delay zero)."""
        if self.reliable:
            return self._terminate()
        self._arm(name, now, delay)
        return []


class ClientTransaction(_Transaction):
    """Sends a request and collects its responses (RFC 3261 17.1)."""

    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        if request.method == "ACK":
            raise ValueError("ACK is sent outside a client transaction")
        self._data = request.to_bytes()
        self._ack: Send | None = None

    def start(self, now: float) -> list[Action]:
        """Send the request and start the timers."""
        if self.state is not State.TERMINATED or self._deadlines:
            raise RuntimeError("transaction already started")
        if self.is_invite:
            self.state = State.CALLING
            retransmit, timeout = "A", "B"
        else:
            self.state = State.TRYING
            retransmit, timeout = "E", "F"
        if not self.reliable:
            self._arm_retransmit(retransmit, now, self.timers.t1)
        self._arm(timeout, now, self.timers.timeout)
        return [Send(self.request, self._data)]

    def receive(self, response: SipResponse, now: float) -> list[Action]:
        if self.is_invite:
            return self._receive_invite(response, now)
        return self._receive_non_invite(response, now)

    def _receive_invite(self, response: SipResponse, now: float) -> list[Action]:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                self.state = State.PROCEEDING
                # Retransmissions stop and Timer B no longer applies once the far end has
                # answered (17.1.1.2); how long to let a call ring is the TU's choice.
                self._cancel("A", "B")
                return [Deliver(response)]
            self._cancel("A", "B")
            if status < 300:
                self.state = State.ACCEPTED
                self._arm("M", now, self.timers.timeout)
                return [Deliver(response)]
            self.state = State.COMPLETED
            ack = self._make_ack(response)
            self._ack = Send(ack, ack.to_bytes())
            actions: list[Action] = [self._ack, Deliver(response)]
            return actions + self._wait_or_end("D", now, 32.0)
        if self.state is State.ACCEPTED and 200 <= status < 300:
            # A retransmitted 2xx: the TU (dialog) must ACK it again.
            return [Deliver(response)]
        if self.state is State.COMPLETED and status >= 300 and self._ack is not None:
            return [Send(self._ack.message, self._ack.data, retransmission=True)]
        return []

    def _receive_non_invite(self, response: SipResponse, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # retransmitted finals are absorbed in Completed
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Deliver(response)]
        self.state = State.COMPLETED
        self._cancel("E", "F")
        return [Deliver(response), *self._wait_or_end("K", now, self.timers.t4)]

    def _make_ack(self, response: SipResponse) -> SipRequest:
        """The ACK for a non-2xx final response (17.1.1.3): same Request-URI, Call-ID, From and
        top Via as the INVITE, To from the response, CSeq number with method ACK."""
        request = self.request
        headers = Headers()
        vias = request.headers.get_all("Via")
        if vias:
            headers.add("Via", vias[0])
        from_ = request.headers.get("From")
        if from_ is not None:
            headers.add("From", from_)
        to = response.headers.get("To") or request.headers.get("To")
        if to is not None:
            headers.add("To", to)
        call_id = request.headers.get("Call-ID")
        if call_id is not None:
            headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{request.cseq.seq} ACK")
        for route in request.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        return SipRequest(method="ACK", uri=request.uri, headers=headers)

    def _fire(self, name: str, now: float) -> list[Action]:
        if name in ("A", "E"):
            interval = self._intervals[name]
            if name == "A":
                interval *= 2  # INVITE: doubles without a cap until Timer B
            elif self.state is State.PROCEEDING:
                interval = self.timers.t2
            else:
                interval = min(interval * 2, self.timers.t2)
            self._arm_retransmit(name, now, interval)
            return [Send(self.request, self._data, retransmission=True)]
        if name in ("B", "F"):
            return [Timeout(name), *self._terminate()]
        # D, K, M: the wait state is over.
        return self._terminate()


class ServerTransaction(_Transaction):
    """Receives a request and sends the TU's responses (RFC 3261 17.2)."""

    def __init__(
        self,
        request: SipRequest,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        auto_trying: bool = True,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        if request.method == "ACK":
            raise ValueError("ACK does not create a server transaction")
        self.auto_trying = auto_trying
        self._last: Send | None = None
        self.acked = False

    def start(self, now: float) -> list[Action]:
        """Hand the request to the TU; an INVITE is answered 100 Trying at once (17.2.1), so
        the device stops retransmitting while the platform prepares the media."""
        if self.state is not State.TERMINATED or self._deadlines or self._last is not None:
            raise RuntimeError("transaction already started")
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        actions: list[Action] = [Deliver(self.request)]
        if self.is_invite and self.auto_trying:
            trying = make_response(self.request, 100)
            self._last = Send(trying, trying.to_bytes())
            actions.append(self._last)
        return actions

    def receive(self, request: SipRequest, now: float) -> list[Action]:
        """A retransmission of the request, or (INVITE) the ACK."""
        if request.method == "ACK":
            return self._receive_ack(request, now)
        if self.state in (State.PROCEEDING, State.COMPLETED) and self._last is not None:
            return [Send(self._last.message, self._last.data, retransmission=True)]
        return []  # Trying, Accepted (absorbed per RFC 6026), Confirmed

    def _receive_ack(self, ack: SipRequest, now: float) -> list[Action]:
        if not self.is_invite:
            return []
        if self.state is State.COMPLETED:
            self.state = State.CONFIRMED
            self._cancel("G", "H")
            return self._wait_or_end("I", now, self.timers.t4)
        if self.state is State.ACCEPTED and not self.acked:
            self.acked = True
            self._cancel("G2xx")
            return [Deliver(ack)]
        return []

    def send(self, response: SipResponse, now: float) -> list[Action]:
        """Send a response from the TU. Once a final response went out, later ones are
        dropped (a TU racing a timeout must not crash the transaction layer)."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self._last = Send(response, response.to_bytes())
        actions: list[Action] = [self._last]
        status = response.status
        if status < 200:
            self.state = State.PROCEEDING
            return actions
        if self.is_invite and status < 300:
            self.state = State.ACCEPTED
            if not self.reliable:
                self._arm_retransmit("G2xx", now, self.timers.t1)
            self._arm("L", now, self.timers.timeout)
            return actions
        self.state = State.COMPLETED
        if self.is_invite:
            if not self.reliable:
                self._arm_retransmit("G", now, self.timers.t1)
            self._arm("H", now, self.timers.timeout)
            return actions
        return actions + self._wait_or_end("J", now, self.timers.timeout)

    def _fire(self, name: str, now: float) -> list[Action]:
        if name in ("G", "G2xx"):
            self._arm_retransmit(name, now, min(self._intervals[name] * 2, self.timers.t2))
            assert self._last is not None  # a final response is what G retransmits
            return [Send(self._last.message, self._last.data, retransmission=True)]
        if name == "H":
            return [Timeout("H"), *self._terminate()]
        if name == "L" and not self.acked:
            return [Timeout("L"), *self._terminate()]
        # I, J, L after the ACK: the wait state is over.
        return self._terminate()
