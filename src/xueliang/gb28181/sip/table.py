"""Matching messages to transactions (RFC 3261 17.1.3, 17.2.3) and driving many of them.

Client side: a response belongs to the transaction whose branch and CSeq method it carries.

Server side: RFC 3261 matches by top Via branch, sent-by and method. Some GB/T 28181 devices
reuse one branch for every request (a constant branch on each keepalive MESSAGE, or a branch
without the z9hG4bK cookie that repeats); keyed on the branch alone, each new keepalive would
look like a retransmission of the last and be answered with the old response and never reach
the platform. The key here adds the Call-ID and the CSeq number, which a true retransmission
repeats exactly, so reused branches are harmless. The RFC 2543 fallback is not implemented.

The ACK for a 2xx is a new transaction with its own branch (RFC 3261 17.1.1.3); it is routed
to the INVITE server transaction waiting in Accepted by Call-ID and CSeq number.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from xueliang.gb28181.sip.message import SipRequest, SipResponse
from xueliang.gb28181.sip.transaction import (
    DEFAULT_TIMERS,
    Action,
    ClientTransaction,
    Deliver,
    ServerTransaction,
    State,
    Terminated,
    Timers,
)

Transaction = ClientTransaction | ServerTransaction


@dataclass(frozen=True)
class ClientKey:
    branch: str
    method: str


@dataclass(frozen=True)
class ServerKey:
    branch: str
    sent_by: str
    method: str
    call_id: str
    seq: int


def client_key(message: SipRequest | SipResponse) -> ClientKey:
    """The key of the client transaction a request starts or a response answers."""
    return ClientKey(branch=message.top_via.branch or "", method=message.cseq.method)


def server_key(request: SipRequest) -> ServerKey:
    """The key of the server transaction a request belongs to (an ACK maps to its INVITE)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    return ServerKey(
        branch=via.branch or "",
        sent_by=via.sent_by.lower(),
        method=method,
        call_id=request.call_id,
        seq=request.cseq.seq,
    )


class TransactionTable:
    """All live transactions of one SIP endpoint; removes them once terminated.

    Header accessors used for matching raise ParseError on malformed messages; the caller
    answers 400 or drops them.
    """

    def __init__(self, timers: Timers = DEFAULT_TIMERS) -> None:
        self.timers = timers
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey, ServerTransaction] = {}
        self._accepted: dict[tuple[str, int], ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    # --- client side

    def start_client(
        self, request: SipRequest, *, reliable: bool, now: float
    ) -> tuple[ClientTransaction, list[Action]]:
        key = client_key(request)
        if key in self._clients:
            raise ValueError(f"a client transaction with branch {key.branch!r} exists")
        transaction = ClientTransaction(request, reliable=reliable, timers=self.timers)
        self._clients[key] = transaction
        return transaction, self._after(transaction, transaction.start(now))

    def client_for(self, response: SipResponse) -> ClientTransaction | None:
        """The client transaction a response belongs to, if it is still live."""
        return self._clients.get(client_key(response))

    def on_response(self, response: SipResponse, now: float) -> list[Action] | None:
        """Actions for a response; None when no transaction matches (a stray response, or a
        2xx retransmitted after Timer M: the dialog layer may still want to ACK it)."""
        transaction = self._clients.get(client_key(response))
        if transaction is None:
            return None
        return self._after(transaction, transaction.receive(response, now))

    # --- server side

    def on_request(
        self, request: SipRequest, *, reliable: bool, now: float, auto_trying: bool = True
    ) -> tuple[ServerTransaction | None, list[Action]]:
        """Route a request: a retransmission or ACK to its transaction, anything else to a new
        server transaction (whose first action delivers it). An ACK matching nothing is
        delivered as it is, with no transaction."""
        key = server_key(request)
        transaction = self._servers.get(key)
        if transaction is None and request.method == "ACK":
            transaction = self._accepted.get((key.call_id, key.seq))
        if transaction is not None:
            return transaction, self._after(transaction, transaction.receive(request, now))
        if request.method == "ACK":
            return None, [Deliver(request)]
        transaction = ServerTransaction(
            request, reliable=reliable, timers=self.timers, auto_trying=auto_trying
        )
        self._servers[key] = transaction
        return transaction, self._after(transaction, transaction.start(now))

    def send_response(
        self, transaction: ServerTransaction, response: SipResponse, now: float
    ) -> list[Action]:
        actions = self._after(transaction, transaction.send(response, now))
        if transaction.state is State.ACCEPTED:
            self._accepted[(transaction.request.call_id, transaction.request.cseq.seq)] = (
                transaction
            )
        return actions

    def invite_for_cancel(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (RFC 3261 9.2)."""
        key = server_key(cancel)
        return self._servers.get(ServerKey(key.branch, key.sent_by, "INVITE", key.call_id, key.seq))

    # --- time

    @property
    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, transaction = self._heap[0]
            if transaction.next_deadline == deadline and not transaction.terminated:
                return deadline
            heapq.heappop(self._heap)  # stale entry: the transaction moved on
        return None

    def tick(self, now: float) -> list[tuple[Transaction, Action]]:
        """Fire every due timer of every transaction."""
        fired: list[tuple[Transaction, Action]] = []
        seen: set[int] = set()
        while self._heap and self._heap[0][0] <= now:
            _, _, transaction = heapq.heappop(self._heap)
            if id(transaction) in seen or transaction.terminated:
                continue
            seen.add(id(transaction))
            for action in self._after(transaction, transaction.tick(now)):
                fired.append((transaction, action))
        return fired

    def _after(self, transaction: Transaction, actions: list[Action]) -> list[Action]:
        if any(isinstance(action, Terminated) for action in actions) or transaction.terminated:
            self._forget(transaction)
        else:
            deadline = transaction.next_deadline
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, next(self._order), transaction))
        return actions

    def _forget(self, transaction: Transaction) -> None:
        if isinstance(transaction, ClientTransaction):
            key = client_key(transaction.request)
            if self._clients.get(key) is transaction:
                del self._clients[key]
            return
        skey = server_key(transaction.request)
        if self._servers.get(skey) is transaction:
            del self._servers[skey]
        dialog = (skey.call_id, skey.seq)
        if self._accepted.get(dialog) is transaction:
            del self._accepted[dialog]
