"""A GB/T 28181 channel's presets through the platform: PresetQuery to the device.

The platform's SIP server runs as in production; the project's simulator runs in this process on
a loop of its own and keeps a preset table per channel from the PTZCmds it receives (set adds,
delete removes), which it answers PresetQuery from. Without an answer, or with a refusal, the
list is a device error: never an empty list that would hide the failure.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import pytest
from fastapi.testclient import TestClient

from tests.support.gb import SimThread, is_registered, stop_and_unregister
from tests.support.wait import wait_until
from xueliang.app import Platform
from xueliang.core.errors import DeviceError, DeviceProtocolError, DeviceUnreachable
from xueliang.gb28181 import manscdp
from xueliang.gb28181.control import GbControl, GbPtzDriver, read_presets
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.gb28181.simulator.device import Device
from xueliang.ptz.driver import PresetView, PtzTarget

if TYPE_CHECKING:
    from xueliang.gb28181.server import GbServer

API = "/api/v1"
DEVICE = "34020000001180000001"
CHANNEL = "34020000001310000001"


def _preset(client: TestClient, headers: dict[str, str], channel: str, op: str, n: int) -> Any:
    return client.post(
        f"{API}/channels/{channel}/ptz",
        headers=headers,
        json={"action": "preset", "op": op, "preset": n},
    )


def _presets(client: TestClient, headers: dict[str, str], channel: str) -> Any:
    return client.get(f"{API}/channels/{channel}/ptz/presets", headers=headers)


# --- through the platform ---------------------------------------------------------------------


def test_presets_set_on_the_device_are_listed_and_a_removed_one_goes(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    ch = dome["id"]
    remote = device.config.channels[0].channel_id
    assert _presets(client, admin_headers, ch).json() == []  # nothing saved yet: truly empty
    for n in (7, 2):
        r = _preset(client, admin_headers, ch, "set", n)
        assert r.status_code == 200 and r.json() == {"token": str(n)}, r.text
    r = _presets(client, admin_headers, ch)
    assert r.status_code == 200, r.text
    # Sorted by number, named as the device names them.
    assert r.json() == [{"token": "2", "name": "预置点2"}, {"token": "7", "name": "预置点7"}]
    assert device.presets == {remote: {7: "预置点7", 2: "预置点2"}}

    r = _preset(client, admin_headers, ch, "remove", 7)
    assert r.status_code == 204, r.text
    r = _presets(client, admin_headers, ch)
    assert r.status_code == 200 and r.json() == [{"token": "2", "name": "预置点2"}], r.text
    # Going to a preset changes nothing in the table.
    assert _preset(client, admin_headers, ch, "goto", 2).status_code == 204
    assert [p["token"] for p in _presets(client, admin_headers, ch).json()] == ["2"]


def test_an_offline_device_is_an_error_not_an_empty_list(
    gb: Platform,
    sim: SimThread,
    device: Device,
    dome: dict[str, Any],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    dev = device.config.device_id
    assert _preset(client, admin_headers, dome["id"], "set", 1).status_code == 200
    stop_and_unregister(gb, sim, dev)
    r = _presets(client, admin_headers, dome["id"])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "device_unreachable", error
    assert error["message"] == f"device {dev} is offline (not registered)"


def test_a_device_answering_error_is_a_device_error(gb: Platform, device: Device) -> None:
    # The simulator refuses a PresetQuery for an ID that is not one of its channels.
    dev = device.config.device_id
    server = gb.gb28181.server
    assert server is not None
    wait_until(lambda: is_registered(gb, dev), 30, "the device to register")
    driver = GbPtzDriver(GbControl(lambda: gb.gb28181.server, lambda: gb.gb28181.loop))
    target = PtzTarget(dev, CHANNEL, "gb28181", "34020000001319999999", None)
    with pytest.raises(DeviceError, match="answered ERROR to the preset query") as caught:
        asyncio.run(driver.presets(target))
    assert caught.value.code == "device_error"


# --- the driver against a stand-in server ---------------------------------------------------


class FakeServer:
    """Answers every ask with ``answer`` (bytes as a device sends them) or raises ``fail``."""

    def __init__(self, answer: bytes | None = None, fail: Exception | None = None) -> None:
        self.answer = answer
        self.fail = fail
        self.asked: list[manscdp.Message] = []

    def next_sn(self) -> int:
        return 17

    async def ask(self, device_id: str, message: manscdp.Message) -> manscdp.Message:
        self.asked.append(message)
        if self.fail is not None:
            raise self.fail
        assert self.answer is not None
        return manscdp.parse_message(self.answer)


def _list(server: FakeServer) -> list[PresetView]:
    stand_in = cast("GbServer", server)
    driver = GbPtzDriver(GbControl(lambda: stand_in, lambda: None))
    return asyncio.run(driver.presets(PtzTarget(DEVICE, CHANNEL, "gb28181", "REMOTE", None)))


def _answer(body: str, encoding: str = "GB2312") -> bytes:
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\r\n<Response>\r\n'
        f"<CmdType>PresetQuery</CmdType>\r\n<SN>17</SN>\r\n<DeviceID>{CHANNEL}</DeviceID>\r\n"
        f"{body}</Response>\r\n"
    )
    return text.encode(encoding)


def test_the_query_names_the_channel_and_the_answer_is_read_sorted() -> None:
    server = FakeServer(
        _answer(
            '<SumNum>4</SumNum><PresetList Num="4">'
            "<Item><PresetID>12</PresetID><PresetName>北门</PresetName></Item>"
            "<Item><PresetID>3</PresetID><PresetName> 路口 </PresetName></Item>"
            "<Item><PresetID>0</PresetID><PresetName>not a preset</PresetName></Item>"
            "<Item><PresetID>5</PresetID></Item>"
            "<Item><PresetID>3</PresetID><PresetName>again</PresetName></Item>"
            "</PresetList>"
        )
    )
    assert _list(server) == [
        PresetView("3", "路口"),
        PresetView("5", None),
        PresetView("12", "北门"),
    ]
    (query,) = server.asked
    assert isinstance(query, manscdp.Unknown)
    assert (query.kind, query.cmd_type, query.device_id, query.sn) == (
        manscdp.Kind.QUERY,
        "PresetQuery",
        "REMOTE",
        17,
    )
    assert b"<CmdType>PresetQuery</CmdType>" in manscdp.to_xml(query)


def test_an_answer_without_presets_is_an_empty_list() -> None:
    assert _list(FakeServer(_answer('<PresetList Num="0"></PresetList>'))) == []
    assert _list(FakeServer(_answer("<Result>OK</Result>"))) == []


def test_failures_are_device_errors() -> None:
    with pytest.raises(DeviceUnreachable, match="did not answer the preset query"):
        _list(FakeServer(fail=TimeoutError()))
    with pytest.raises(DeviceUnreachable, match="offline"):
        _list(FakeServer(fail=LookupError(DEVICE)))
    with pytest.raises(DeviceProtocolError, match="refused the preset query"):
        _list(FakeServer(fail=DeviceRefused(403, "Forbidden")))
    with pytest.raises(DeviceError, match="answered ERROR") as caught:
        _list(FakeServer(_answer("<Result>ERROR</Result>")))
    assert caught.value.code == "device_error"
    assert caught.value.details == {"result": "ERROR"}
    with pytest.raises(DeviceUnreachable, match="server is not running"):
        asyncio.run(
            GbPtzDriver(GbControl(lambda: None, lambda: None)).presets(
                PtzTarget(DEVICE, CHANNEL, "gb28181", None, None)
            )
        )


def test_an_answer_of_another_kind_is_a_protocol_error() -> None:
    other = manscdp.Result(cmd_type="PresetQuery", device_id=CHANNEL, sn=17, result="OK")
    with pytest.raises(DeviceProtocolError, match="not a PresetQuery response"):
        read_presets(DEVICE, other)
