"""The RTP port allocator: even ports of a range, thread-safe, no leaks, busy ports skipped."""

from __future__ import annotations

import random
import socket
import threading

import pytest

from xueliang.media.rtp_ports import PortsExhausted, RtpPortAllocator, can_bind


def _free_range(size: int) -> tuple[int, int]:
    """A range of ``size`` ports starting where the kernel just found a free one (even)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    first = min(port - (port & 1), 65535 - size)
    return first, first + size - 1


def test_even_ports_of_the_range_then_exhausted() -> None:
    alloc = RtpPortAllocator(30001, 30010, host="127.0.0.1", probe=lambda host, port: True)
    got = [alloc.allocate() for _ in range(alloc.size)]
    assert sorted(got) == [30002, 30004, 30006, 30008, 30010]
    with pytest.raises(PortsExhausted):
        alloc.allocate()
    alloc.release(30006)
    assert alloc.allocate() == 30006
    with pytest.raises(ValueError, match="not allocated"):
        alloc.release(30003)
    with pytest.raises(ValueError):
        RtpPortAllocator(30001, 30001, host="127.0.0.1")


def test_released_ports_are_reused_last() -> None:
    alloc = RtpPortAllocator(40000, 40009, host="127.0.0.1", probe=lambda host, port: True)
    first = alloc.allocate()
    alloc.release(first)
    # The four others come before the one just given back.
    assert [alloc.allocate() for _ in range(5)] == [40002, 40004, 40006, 40008, first]


def test_churn_from_threads_leaks_nothing() -> None:
    first, last = _free_range(64)
    alloc = RtpPortAllocator(first, last, host="127.0.0.1")
    size = alloc.size
    rounds = 10_000
    threads_n = 4
    errors: list[BaseException] = []
    owned: set[int] = set()  # held by some thread now: a port handed out twice would show
    owned_lock = threading.Lock()

    def churn(n: int) -> None:
        rng = random.Random(n)
        held: list[int] = []
        try:
            for _ in range(rounds // threads_n):
                if held and (rng.random() < 0.5 or len(held) >= size // threads_n):
                    port = held.pop(rng.randrange(len(held)))
                    with owned_lock:
                        owned.remove(port)
                    alloc.release(port)
                else:
                    port = alloc.allocate()
                    with owned_lock:
                        assert port not in owned, f"port {port} handed out twice"
                        owned.add(port)
                    held.append(port)
            for port in held:
                with owned_lock:
                    owned.remove(port)
                alloc.release(port)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=churn, args=(n,)) for n in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    assert alloc.in_use == 0
    assert alloc.available == size
    # Every port can be handed out again, each once.
    again = [alloc.allocate() for _ in range(size)]
    assert len(set(again)) == size and all(p % 2 == 0 and first <= p <= last for p in again)


def test_ports_that_cannot_be_bound_are_skipped() -> None:
    first, last = _free_range(8)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy = first + (first & 1) + 2
    try:
        blocker.bind(("127.0.0.1", busy))
        assert not can_bind("127.0.0.1", busy)
        alloc = RtpPortAllocator(first, last, host="127.0.0.1")
        got = []
        while True:
            try:
                got.append(alloc.allocate())
            except PortsExhausted:
                break
        assert busy not in got
        # Everything else was handed out (bar a port another program took meanwhile).
        evens = range(first + (first & 1), last + 1, 2)
        assert set(got) == {p for p in evens if p != busy and can_bind("127.0.0.1", p)}
    finally:
        blocker.close()
    # Once free, it is handed out after all.
    assert alloc.allocate() == busy
