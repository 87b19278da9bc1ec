"""Who is registered and who went quiet: the registrar's pure state, with time passed in."""

from __future__ import annotations

from xueliang.gb28181.registrar import Address, Registrar

A = Address("127.0.0.1", 5060)
B = Address("10.0.0.9", 40001, "udp")


def test_register_renew_and_unregister() -> None:
    r = Registrar()
    first = r.register("d1", A, "<sip:d1@127.0.0.1:5060>", 3600, now=0)
    assert not first.renewed and "d1" in r and len(r) == 1
    again = r.register("d1", B, "<sip:d1@10.0.0.9>", 3600, now=10)
    assert again.renewed
    reg = r.get("d1")
    assert reg is not None and reg.address == B  # the NAT binding moved: the new one counts
    gone = r.unregister("d1")
    assert gone is not None and gone.reason == "unregistered"
    assert r.unregister("d1") is None and "d1" not in r


def test_missed_keepalives_and_expiry_take_devices_offline_with_the_reason() -> None:
    r = Registrar(keepalive_seconds=60, keepalive_missed=3)
    r.register("quiet", A, "", 3600, now=0)
    r.register("short", B, "", 100, now=0)
    r.register("alive", A, "", 3600, now=0)
    for t in range(60, 400, 60):
        assert r.seen("alive", A, now=t, keepalive=True)
    assert r.expire(now=99) == []
    gone = {o.device_id: o.reason for o in r.expire(now=181)}
    assert gone == {"short": "registration expired", "quiet": "no keepalive for 181 s (3 missed)"}
    assert "alive" in r and r.next_deadline == 360 + 180
    assert not r.seen("quiet", A, now=200, keepalive=True)  # it must register again


def test_requested_lifetimes_are_clamped() -> None:
    r = Registrar(min_expires=60, max_expires=86400)
    assert (r.clamp(5), r.clamp(3600), r.clamp(10**9), r.clamp(None)) == (60, 3600, 86400, 3600)


def test_ten_thousand_devices_cost_a_heap_operation_each() -> None:
    r = Registrar(keepalive_seconds=60, keepalive_missed=3)
    for i in range(10_000):
        r.register(f"d{i}", A, "", 3600, now=0)
    for t in (60, 120, 170):
        for i in range(0, 10_000, 2):  # half keep alive
            r.seen(f"d{i}", A, now=t, keepalive=True)
    gone = r.expire(now=200)
    assert len(gone) == 5_000 and all(int(o.device_id[1:]) % 2 for o in gone)
    assert len(r) == 5_000


def test_a_keepalive_from_another_host_is_not_believed() -> None:
    """Anyone can write a device's ID into a keepalive: one from another host neither keeps
    the device alive nor moves where requests to it go; one from a new port of the same host
    (a NAT binding that moved) does."""
    r = Registrar(keepalive_seconds=60, keepalive_missed=3)
    r.register("d1", A, "", 3600, now=0)
    assert not r.seen("d1", B, now=10, keepalive=True)
    assert not r.seen("d1", Address(A.host, A.port, "tcp"), now=10, keepalive=True)
    reg = r.get("d1")
    assert reg is not None and reg.address == A and reg.keepalives == 0
    moved = Address(A.host, 40002)
    assert r.seen("d1", moved, now=20, keepalive=True)
    reg = r.get("d1")
    assert reg is not None and reg.address == moved and reg.keepalives == 1
    # It really moved host: it registers again (with its password) and is believed there.
    r.register("d1", B, "", 3600, now=30)
    assert r.seen("d1", B, now=40, keepalive=True)


def test_a_new_call_id_while_registered_is_a_restart_not_a_renewal() -> None:
    r = Registrar()
    first = r.register("d1", A, "<sip:d1@127.0.0.1>", 3600, now=0, call_id="boot-1")
    assert not first.renewed and not first.restarted
    again = r.register("d1", A, "<sip:d1@127.0.0.1>", 3600, now=60, call_id="boot-1")
    assert again.renewed and not again.restarted  # a refresh in the same boot
    rebooted = r.register("d1", B, "<sip:d1@10.0.0.9>", 3600, now=120, call_id="boot-2")
    assert rebooted.restarted and not rebooted.renewed
    reg = r.get("d1")
    assert reg is not None and reg.restarts == 1 and reg.registered_at == 120
    assert reg.address == B and reg.call_id == "boot-2" and "d1" in r  # never unregistered
    # A device that sends no Call-ID worth comparing is only ever renewed.
    assert r.register("d1", B, "", 3600, now=130).renewed
