"""RFC 3261 transactions: retransmission schedules and timeouts over UDP and TCP, the INVITE
ACK rules, and matching (including devices that reuse one branch for every request)."""

from __future__ import annotations

import pytest

from xueliang.gb28181.sip import (
    Action,
    ClientTransaction,
    Deliver,
    NameAddr,
    Send,
    ServerTransaction,
    SipRequest,
    SipResponse,
    SipUri,
    State,
    Terminated,
    Timeout,
    TransactionTable,
    Via,
    make_request,
    make_response,
    parse_message,
)

DEVICE = "34020000001320000001"
PLATFORM = "34020000002000000001"


def request(
    method: str = "MESSAGE", *, branch: str = "z9hG4bK1", cseq: int = 1, call_id: str = "c1"
) -> SipRequest:
    return make_request(
        method,
        f"sip:{DEVICE}@192.168.1.64:5060",
        via=Via("UDP", "192.168.1.10", 5060, {"rport": None, "branch": branch}),
        from_=NameAddr(SipUri("3402000000", PLATFORM), params={"tag": "p1"}),
        to=NameAddr(SipUri("3402000000", DEVICE)),
        call_id=call_id,
        cseq=cseq,
    )


def response(req: SipRequest, status: int) -> SipResponse:
    # Responses go through the wire and back, as they would from a device.
    parsed = parse_message(make_response(req, status, to_tag="d1").to_bytes())
    assert isinstance(parsed, SipResponse)
    return parsed


def state(tx: ClientTransaction | ServerTransaction) -> State:
    # A function, so the type checker does not narrow tx.state across calls that change it.
    return tx.state


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def run_timers(
    tx: ClientTransaction | ServerTransaction, until: float
) -> list[tuple[float, Action]]:
    """Fire timers in order up to ``until``, recording when each action happened."""
    log: list[tuple[float, Action]] = []
    while (deadline := tx.next_deadline) is not None and deadline <= until:
        log += [(deadline, action) for action in tx.tick(deadline)]
    return log


# --- client, non-INVITE (17.1.2)


def test_non_invite_client_udp_retransmits_until_timer_f() -> None:
    tx = ClientTransaction(request(), reliable=False)
    [first] = tx.start(0.0)
    assert isinstance(first, Send) and not first.retransmission
    assert state(tx) is State.TRYING
    log = run_timers(tx, until=100.0)
    retransmits = [at for at, a in log if isinstance(a, Send)]
    # Timer E: T1, doubling, capped at T2 (4 s); Timer F at 64*T1 = 32 s.
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(a.data == first.data and a.retransmission for _, a in log if isinstance(a, Send))
    assert [(at, a) for at, a in log if not isinstance(a, Send)] == [
        (32.0, Timeout("F")),
        (32.0, Terminated()),
    ]
    assert tx.terminated and tx.next_deadline is None


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    req = request()
    tx = ClientTransaction(req, reliable=False)
    tx.start(0.0)
    assert tx.receive(response(req, 100), 0.3) == [Deliver(response(req, 100))]
    assert state(tx) is State.PROCEEDING
    log = run_timers(tx, until=14.0)
    # Timer E keeps its first expiry, then fires every T2 (17.1.2.2).
    assert [at for at, a in log if isinstance(a, Send)] == [0.5, 4.5, 8.5, 12.5]


def test_non_invite_client_final_response_then_timer_k() -> None:
    req = request()
    tx = ClientTransaction(req, reliable=False)
    tx.start(0.0)
    ok = response(req, 200)
    assert tx.receive(ok, 0.2) == [Deliver(ok)]
    assert state(tx) is State.COMPLETED
    assert tx.next_deadline == pytest.approx(5.2)  # Timer K = T4
    assert tx.receive(ok, 1.0) == []  # retransmitted final absorbed
    assert tx.tick(5.1) == []
    assert tx.tick(5.2) == [Terminated()]


def test_non_invite_client_tcp_sends_once_and_ends_at_once() -> None:
    req = request()
    tx = ClientTransaction(req, reliable=True)
    assert len(sends(tx.start(0.0))) == 1
    assert tx.next_deadline == 32.0  # only Timer F
    assert tx.receive(response(req, 200), 1.0) == [Deliver(response(req, 200)), Terminated()]
    timeout_tx = ClientTransaction(request(branch="z9hG4bK2"), reliable=True)
    timeout_tx.start(0.0)
    assert run_timers(timeout_tx, 100.0) == [(32.0, Timeout("F")), (32.0, Terminated())]


# --- client, INVITE (17.1.1)


def test_invite_client_udp_timer_a_doubles_until_timer_b() -> None:
    tx = ClientTransaction(request("INVITE"), reliable=False)
    tx.start(0.0)
    assert state(tx) is State.CALLING
    log = run_timers(tx, until=100.0)
    assert [at for at, a in log if isinstance(a, Send)] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert log[-2:] == [(32.0, Timeout("B")), (32.0, Terminated())]


def test_invite_client_provisional_stops_retransmission_and_timer_b() -> None:
    req = request("INVITE")
    tx = ClientTransaction(req, reliable=False)
    tx.start(0.0)
    ringing = response(req, 180)
    assert tx.receive(ringing, 0.3) == [Deliver(ringing)]
    assert state(tx) is State.PROCEEDING
    assert tx.next_deadline is None


def test_invite_client_failure_is_acked_and_ack_repeated() -> None:
    req = request("INVITE", cseq=5)
    tx = ClientTransaction(req, reliable=False)
    tx.start(0.0)
    busy = response(req, 486)
    actions = tx.receive(busy, 1.0)
    [ack_send] = sends(actions)
    assert actions[1] == Deliver(busy)
    ack = parse_message(ack_send.data)
    assert isinstance(ack, SipRequest)
    assert ack.method == "ACK" and ack.uri == req.uri
    assert str(ack.cseq) == "5 ACK"
    assert ack.branch == req.branch  # same transaction as the INVITE (17.1.1.3)
    assert ack.to.tag == "d1" and ack.from_.tag == "p1"
    assert ack.call_id == req.call_id
    assert state(tx) is State.COMPLETED
    again = tx.receive(busy, 2.0)
    assert len(again) == 1 and isinstance(again[0], Send) and again[0].retransmission
    assert again[0].data == ack_send.data
    assert tx.tick(32.9) == []
    assert tx.tick(33.0) == [Terminated()]  # Timer D, 32 s on UDP


def test_invite_client_tcp_failure_ends_after_ack() -> None:
    req = request("INVITE")
    tx = ClientTransaction(req, reliable=True)
    tx.start(0.0)
    actions = tx.receive(response(req, 404), 1.0)
    assert [type(a) for a in actions] == [Send, Deliver, Terminated]


def test_invite_client_2xx_accepted_and_retransmissions_delivered() -> None:
    req = request("INVITE")
    tx = ClientTransaction(req, reliable=False)
    tx.start(0.0)
    ok = response(req, 200)
    assert tx.receive(ok, 1.0) == [Deliver(ok)]
    assert state(tx) is State.ACCEPTED
    # The TU (dialog) ACKs 2xx itself, so each retransmitted 2xx is handed up again.
    assert tx.receive(ok, 1.5) == [Deliver(ok)]
    assert tx.receive(response(req, 486), 1.6) == []
    assert tx.next_deadline == 33.0  # Timer M, RFC 6026
    assert tx.tick(33.0) == [Terminated()]


def test_client_transport_error() -> None:
    tx = ClientTransaction(request(), reliable=True)
    tx.start(0.0)
    assert tx.transport_error(0.1) == [Timeout("transport"), Terminated()]
    assert tx.transport_error(0.2) == []


def test_client_refuses_ack_and_double_start() -> None:
    with pytest.raises(ValueError):
        ClientTransaction(request("ACK"), reliable=False)
    tx = ClientTransaction(request(), reliable=False)
    tx.start(0.0)
    with pytest.raises(RuntimeError):
        tx.start(1.0)


# --- server, non-INVITE (17.2.2)


def test_non_invite_server_udp() -> None:
    req = request()
    tx = ServerTransaction(req, reliable=False)
    assert tx.start(0.0) == [Deliver(req)]
    assert state(tx) is State.TRYING
    assert tx.receive(req, 0.1) == []  # retransmission before any response: absorbed
    [sent] = tx.send(make_response(req, 200, to_tag="t"), 0.2)
    assert isinstance(sent, Send)
    assert state(tx) is State.COMPLETED
    [again] = tx.receive(req, 1.0)
    assert isinstance(again, Send) and again.retransmission and again.data == sent.data
    assert tx.send(make_response(req, 500), 1.1) == []  # a late second final is dropped
    assert tx.next_deadline == pytest.approx(32.2)  # Timer J = 64*T1
    assert tx.tick(32.2) == [Terminated()]


def test_non_invite_server_provisional_then_final() -> None:
    req = request()
    tx = ServerTransaction(req, reliable=False)
    tx.start(0.0)
    tx.send(make_response(req, 100), 0.1)
    assert state(tx) is State.PROCEEDING
    [resent] = tx.receive(req, 0.2)
    assert (
        isinstance(resent, Send) and parse_message(resent.data).headers.get("CSeq") == "1 MESSAGE"
    )
    assert isinstance(resent.message, SipResponse) and resent.message.status == 100


def test_non_invite_server_tcp_ends_with_the_final_response() -> None:
    req = request()
    tx = ServerTransaction(req, reliable=True)
    tx.start(0.0)
    actions = tx.send(make_response(req, 200), 0.1)
    assert [type(a) for a in actions] == [Send, Terminated]


# --- server, INVITE (17.2.1)


def test_invite_server_sends_100_and_repeats_it() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=False)
    deliver, trying = tx.start(0.0)
    assert deliver == Deliver(req)
    assert isinstance(trying, Send) and isinstance(trying.message, SipResponse)
    assert trying.message.status == 100 and trying.message.to.tag is None
    [again] = tx.receive(req, 0.5)
    assert isinstance(again, Send) and again.data == trying.data
    quiet = ServerTransaction(req, reliable=False, auto_trying=False)
    assert quiet.start(0.0) == [Deliver(req)]


def test_invite_server_failure_timer_g_until_timer_h() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=False)
    tx.start(0.0)
    tx.send(make_response(req, 486, to_tag="t"), 0.0)
    assert state(tx) is State.COMPLETED
    log = run_timers(tx, 100.0)
    # Timer G: T1 doubling, capped at T2; Timer H at 64*T1.
    assert [at for at, a in log if isinstance(a, Send)] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert log[-2:] == [(32.0, Timeout("H")), (32.0, Terminated())]


def test_invite_server_failure_acked_then_timer_i() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=False)
    tx.start(0.0)
    final = make_response(req, 603, to_tag="t")
    tx.send(final, 0.0)
    ack = ClientTransaction(req, reliable=False)._make_ack(response(req, 603))
    assert tx.receive(ack, 0.7) == []
    assert state(tx) is State.CONFIRMED
    assert tx.receive(ack, 0.8) == []  # retransmitted ACKs absorbed
    assert tx.next_deadline == pytest.approx(5.7)  # Timer I = T4
    assert tx.tick(5.7) == [Terminated()]


def test_invite_server_tcp_failure_no_retransmission() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=True)
    tx.start(0.0)
    tx.send(make_response(req, 486), 0.0)
    assert tx.next_deadline == 32.0  # only Timer H
    ack = ClientTransaction(req, reliable=True)._make_ack(response(req, 486))
    assert tx.receive(ack, 0.1) == [Terminated()]  # Timer I is zero on TCP


def test_invite_server_2xx_retransmitted_until_ack() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=False)
    tx.start(0.0)
    [ok] = tx.send(make_response(req, 200, to_tag="t"), 0.0)
    assert state(tx) is State.ACCEPTED
    log = run_timers(tx, 4.0)
    assert [at for at, a in log if isinstance(a, Send)] == [0.5, 1.5, 3.5]
    assert all(a.data == ok.data for _, a in log if isinstance(a, Send))  # type: ignore[union-attr]
    assert tx.receive(req, 4.1) == []  # retransmitted INVITE absorbed (RFC 6026)
    ack = request("ACK", branch="z9hG4bKnew")
    assert tx.receive(ack, 4.2) == [Deliver(ack)]
    assert tx.receive(ack, 4.3) == []
    assert run_timers(tx, 100.0) == [(32.0, Terminated())]  # Timer L, no timeout: it was ACKed


def test_invite_server_2xx_never_acked_times_out() -> None:
    req = request("INVITE")
    tx = ServerTransaction(req, reliable=True)
    tx.start(0.0)
    tx.send(make_response(req, 200), 0.0)
    assert run_timers(tx, 100.0) == [(32.0, Timeout("L")), (32.0, Terminated())]


def test_custom_timer_values() -> None:
    from xueliang.gb28181.sip import Timers

    tx = ClientTransaction(request(), reliable=False, timers=Timers(t1=0.1, t2=0.4, t4=1.0))
    tx.start(0.0)
    log = run_timers(tx, 100.0)
    assert [round(at, 3) for at, a in log if isinstance(a, Send)][:4] == [0.1, 0.3, 0.7, 1.1]
    assert log[-1][0] == pytest.approx(6.4)
    assert log[-1][1] == Terminated()


# --- matching


def test_table_routes_responses_by_branch_and_method() -> None:
    table = TransactionTable()
    invite = request("INVITE", branch="z9hG4bKinv")
    tx, actions = table.start_client(invite, reliable=False, now=0.0)
    assert len(sends(actions)) == 1
    cancel = request("CANCEL", branch="z9hG4bKinv")
    cancel_tx, _ = table.start_client(cancel, reliable=False, now=0.1)
    assert table.on_response(response(cancel, 200), 0.2) == [Deliver(response(cancel, 200))]
    assert state(cancel_tx) is State.COMPLETED and state(tx) is State.CALLING
    assert table.on_response(response(request(branch="z9hG4bKother"), 200), 0.3) is None
    assert table.next_deadline == 0.5  # the INVITE's Timer A
    assert len(table) == 2


def test_table_device_reusing_one_branch() -> None:
    """Keepalives with a constant branch are separate requests, not retransmissions."""
    table = TransactionTable()
    first = request(branch="z9hG4bK412553914", cseq=20, call_id="k")
    second = request(branch="z9hG4bK412553914", cseq=21, call_id="k")
    tx1, actions1 = table.on_request(first, reliable=False, now=0.0)
    assert actions1 == [Deliver(first)]
    assert tx1 is not None
    table.send_response(tx1, make_response(first, 200), 0.1)
    tx2, actions2 = table.on_request(second, reliable=False, now=1.0)
    assert actions2 == [Deliver(second)] and tx2 is not tx1
    # A real retransmission of the first is answered from its transaction.
    again_tx, again = table.on_request(first, reliable=False, now=1.5)
    assert again_tx is tx1 and len(sends(again)) == 1 and sends(again)[0].retransmission
    # A branch without the magic cookie and a repeated CSeq on another Call-ID also differ.
    other, _ = table.on_request(request(branch="1", cseq=20, call_id="k2"), reliable=False, now=2.0)
    assert other is not tx1


def test_table_routes_2xx_ack_with_new_branch_and_forgets_finished() -> None:
    table = TransactionTable()
    invite = request("INVITE", branch="z9hG4bKinv", cseq=3, call_id="call")
    tx, actions = table.on_request(invite, reliable=True, now=0.0)
    assert tx is not None and len(sends(actions)) == 1  # 100 Trying
    cancel = request("CANCEL", branch="z9hG4bKinv", cseq=3, call_id="call")
    assert table.invite_for_cancel(cancel) is tx
    table.send_response(tx, make_response(invite, 200, to_tag="t"), 0.5)
    ack = request("ACK", branch="z9hG4bKack", cseq=3, call_id="call")
    ack_tx, ack_actions = table.on_request(ack, reliable=True, now=0.6)
    assert ack_tx is tx and ack_actions == [Deliver(ack)]
    stray = request("ACK", branch="z9hG4bKzzz", cseq=9, call_id="call")
    assert table.on_request(stray, reliable=True, now=0.7) == (None, [Deliver(stray)])
    fired = table.tick(100.0)
    assert fired == [(tx, Terminated())]
    assert len(table) == 0 and table.next_deadline is None


def test_table_tick_over_many_transactions() -> None:
    table = TransactionTable()
    for index in range(50):
        table.start_client(request(branch=f"z9hG4bK{index}"), reliable=False, now=index * 0.01)
    assert len(table.tick(0.6)) == 11  # those started by 0.1 are due by 0.6
    fired = table.tick(1.0)
    assert len([a for _, a in fired if isinstance(a, Send)]) == 39
    timeouts = table.tick(40.0)
    assert len([a for _, a in timeouts if isinstance(a, Timeout)]) == 50
    assert len(table) == 0
