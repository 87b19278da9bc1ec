"""Import and export of the camera register (点位表) as CSV and XLSX: API, service and CLI."""

from __future__ import annotations

import csv
import io
import os
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tests.conftest import (
    GRID_A,
    TOWN_A,
    TOWN_B,
    VILLAGE_A,
    VILLAGE_B,
    seed_two_towns,
)
from xueliang.access.principal import SYSTEM
from xueliang.app import Platform, build_platform
from xueliang.cli.main import app as cli_app
from xueliang.config import Settings
from xueliang.core.clock import ManualClock
from xueliang.core.errors import InvalidInput
from xueliang.core.gbcode import is_gb_id, parse_gb_id
from xueliang.datadir import DataDir
from xueliang.registry.schemas import OrgCreate

COUNTY = "340202"
# GB IDs as an integrator numbers them: centre 34020200, industry 00, type, network 0, serial.
NVR_1 = "34020200001180000001"
NVR_2 = "34020200001180000002"


def ch_id(serial: int) -> str:
    return f"34020200001310{serial:06d}"


ZH = ["通道编码", "点位名称", "设备编码", "组织编码", "经度", "纬度", "云台类型", "点位类别"]
EN = ["channel_id", "channel_name", "device_id", "org", "longitude", "latitude", "ptz_type"]


def seed_orgs(p: Platform) -> None:
    """The organisations of ``seed_two_towns`` without its devices."""
    for code, name, level, parent in [
        (COUNTY, "县", "county", None),
        (TOWN_A, "甲镇", "town", COUNTY),
        (TOWN_B, "乙镇", "town", COUNTY),
        (VILLAGE_A, "甲村", "village", TOWN_A),
        (VILLAGE_B, "乙村", "village", TOWN_B),
        (GRID_A, "甲村网格", "grid", VILLAGE_A),
    ]:
        p.orgs.create(SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent))  # type: ignore[arg-type]


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    ws = book.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(
    client: TestClient, headers: dict[str, str], data: bytes, filename: str = "register.csv"
) -> Any:
    return client.post(
        "/api/v1/registry/import",
        headers=headers,
        files={"file": (filename, data, "application/octet-stream")},
    )


def channels(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/channels", headers=headers, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"])
    return {c["id"]: c for c in body["items"]}


def channel_total(client: TestClient, headers: dict[str, str]) -> int:
    r = client.get("/api/v1/channels", headers=headers, params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def device_total(client: TestClient, headers: dict[str, str]) -> int:
    r = client.get("/api/v1/devices", headers=headers, params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def problems(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid"
    details = body["error"]["details"]
    assert isinstance(details, list)
    return details


@pytest.fixture
def orgs(platform: Platform) -> Platform:
    seed_orgs(platform)
    return platform


# --- valid sheets --------------------------------------------------------------------------


def test_csv_with_english_headers(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes(
        [
            [*EN, "address", "direction", "protocol", "device_kind", "grid", "url"],
            [ch_id(1), "East gate", NVR_1, VILLAGE_A, "117.38", "30.52", "dome", "Gate st 1", 90,
             "gb28181", "nvr", GRID_A, ""],
            [ch_id(2), "West gate", NVR_1, VILLAGE_B, 117.39, 30.53, "fixed", "", "",
             "gb28181", "nvr", "", "rtsp://10.0.0.2/ch2"],
        ]
    )  # fmt: skip
    r = upload(client, admin_headers, sheet)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "rows": 2,
        "devices_created": 1,
        "channels_created": 2,
        "channels_updated": 0,
        "ignored_columns": [],
    }
    got = channels(client, admin_headers)
    east, west = got[ch_id(1)], got[ch_id(2)]
    assert east["name"] == "East gate"
    assert east["device_id"] == NVR_1
    assert east["org"] == VILLAGE_A
    assert east["grid"] == GRID_A
    assert east["longitude"] == pytest.approx(117.38)
    assert east["latitude"] == pytest.approx(30.52)
    assert east["ptz_type"] == "dome"
    assert east["ptz"] is True
    assert east["address"] == "Gate st 1"
    assert east["direction"] == 90
    assert east["point_class"] == 3  # the default when the column is absent
    assert east["status"] == "offline"
    assert west["org"] == VILLAGE_B
    assert west["grid"] is None
    assert west["ptz_type"] == "fixed"
    assert west["ptz"] is False
    assert west["stream_url"] == "rtsp://10.0.0.2/ch2"
    device = client.get(f"/api/v1/devices/{NVR_1}", headers=admin_headers).json()
    assert (device["kind"], device["protocol"], device["channel_count"]) == ("nvr", "gb28181", 2)


def test_csv_with_chinese_headers_and_values(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes(
        [
            [*ZH, "设备类型", "接入协议", "安装地址", "备注"],
            [ch_id(1), "甲村东门", NVR_1, VILLAGE_A, "117.380001", "30.520002", "球机", "一类",
             "nvr", "国标", "甲村东门口", "新装"],
            [ch_id(2), "甲村西门", NVR_1, VILLAGE_A, "117.381", "30.521", "枪机", "二类",
             "nvr", "国标", "", ""],
            [ch_id(3), "乙村路口", NVR_1, VILLAGE_B, "", "", "半球", "三类", "nvr", "国标", "", ""],
        ]
    )  # fmt: skip
    r = upload(client, admin_headers, sheet, "点位表.csv")
    assert r.status_code == 200, r.text
    assert r.json()["channels_created"] == 3
    assert r.json()["ignored_columns"] == ["备注"]
    got = channels(client, admin_headers)
    assert got[ch_id(1)]["name"] == "甲村东门"
    assert got[ch_id(1)]["ptz_type"] == "dome"
    assert got[ch_id(1)]["point_class"] == 1
    assert got[ch_id(1)]["address"] == "甲村东门口"
    assert got[ch_id(1)]["longitude"] == pytest.approx(117.380001)
    assert got[ch_id(2)]["ptz_type"] == "fixed"
    assert got[ch_id(2)]["point_class"] == 2
    assert got[ch_id(3)]["ptz_type"] == "half_dome"
    assert got[ch_id(3)]["point_class"] == 3
    assert got[ch_id(3)]["org"] == VILLAGE_B
    assert got[ch_id(3)]["longitude"] is None
    # Channels in village A's subtree, found by the organisation filter.
    assert set(channels(client, admin_headers, org=VILLAGE_A)) == {ch_id(1), ch_id(2)}


def test_csv_saved_as_gb18030_keeps_chinese_names(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    # What Excel on a Chinese Windows writes for "CSV": GBK/GB18030, no BOM.
    sheet = csv_bytes(
        [
            ZH,
            [ch_id(1), "甲村东门卡口（北向南）", NVR_1, VILLAGE_A, "117.3", "30.5", "球机", "一类"],
        ],
        encoding="gb18030",
    )
    with pytest.raises(UnicodeDecodeError):
        sheet.decode("utf-8")
    r = upload(client, admin_headers, sheet, "点位表.csv")
    assert r.status_code == 200, r.text
    assert channels(client, admin_headers)[ch_id(1)]["name"] == "甲村东门卡口（北向南）"


def test_csv_with_semicolons_is_read(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    # European Excel separates with semicolons.
    sheet = "\r\n".join(
        ["点位名称;设备编码;组织编码;通道编码", f"甲村一号;{NVR_1};{VILLAGE_A};{ch_id(7)}", ""]
    ).encode()
    r = upload(client, admin_headers, sheet)
    assert r.status_code == 200, r.text
    assert channels(client, admin_headers)[ch_id(7)]["name"] == "甲村一号"


def test_xlsx_imports(orgs: Platform, client: TestClient, admin_headers: dict[str, str]) -> None:
    sheet = xlsx_bytes(
        [
            [*ZH, "取流地址"],
            # IDs as text (as Excel keeps them when the column is formatted as text); numbers
            # elsewhere are real numbers.
            [ch_id(1), "甲村东门", None, VILLAGE_A, 117.38, 30.52, "球机", "一类",
             "rtsp://admin:s3cret@10.0.0.1/main"],
            [None, None, None, None, None, None, None, None, None],  # a blank line is skipped
            [None, "乙村路口", None, VILLAGE_B, 117.4, 30.6, 3, 2, "rtsp://10.0.0.2/main"],
        ]
    )  # fmt: skip
    r = upload(client, admin_headers, sheet, "点位表.xlsx")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 2
    assert r.json()["devices_created"] == 2
    got = channels(client, admin_headers)
    assert got[ch_id(1)]["name"] == "甲村东门"
    assert got[ch_id(1)]["ptz_type"] == "dome"
    (other,) = [c for c in got.values() if c["name"] == "乙村路口"]
    assert other["ptz_type"] == "fixed"  # GB/T 28181 PTZType 3
    assert other["point_class"] == 2
    assert other["org"] == VILLAGE_B
    assert other["latitude"] == pytest.approx(30.6)
    # The camera's credentials were split off its URL and never come back through the API.
    device = client.get(
        f"/api/v1/devices/{got[ch_id(1)]['device_id']}", headers=admin_headers
    ).json()
    assert device["url"] == "rtsp://10.0.0.1/main"
    assert device["username"] == "admin"
    assert device["has_password"] is True
    assert "s3cret" not in str(device)


def test_xlsx_is_recognised_without_its_extension(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = xlsx_bytes([ZH, [ch_id(1), "甲村东门", NVR_1, VILLAGE_A, 1, 2, "球机", "一类"]])
    r = upload(client, admin_headers, sheet, "upload.bin")
    assert r.status_code == 200, r.text
    assert ch_id(1) in channels(client, admin_headers)


def test_rows_grouped_by_device_id_make_one_nvr(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    rows = [["通道编码", "点位名称", "设备编码", "设备名称", "设备类型", "接入协议", "组织编码"]]
    rows += [
        [ch_id(n), f"一号NVR-{n}", NVR_1, "一号NVR", "nvr", "gb28181", VILLAGE_A] for n in (1, 2, 3)
    ]
    rows += [
        [ch_id(n), f"二号NVR-{n}", NVR_2, "二号NVR", "nvr", "gb28181", VILLAGE_B] for n in (4, 5)
    ]
    before = device_total(client, admin_headers)
    r = upload(client, admin_headers, csv_bytes(rows))
    assert r.status_code == 200, r.text
    assert r.json()["devices_created"] == 2
    assert r.json()["channels_created"] == 5
    assert device_total(client, admin_headers) == before + 2
    for nvr, name, count in ((NVR_1, "一号NVR", 3), (NVR_2, "二号NVR", 2)):
        d = client.get(f"/api/v1/devices/{nvr}", headers=admin_headers).json()
        assert (d["name"], d["kind"], d["protocol"], d["channel_count"]) == (
            name, "nvr", "gb28181", count,
        )  # fmt: skip
        # A new NVR is placed where its first row's channel is.
        assert d["org"] == (VILLAGE_A if nvr == NVR_1 else VILLAGE_B)
    assert set(channels(client, admin_headers, device_id=NVR_1)) == {ch_id(1), ch_id(2), ch_id(3)}
    assert set(channels(client, admin_headers, device_id=NVR_2)) == {ch_id(4), ch_id(5)}


def test_rows_without_device_id_make_one_camera_each_with_generated_ids(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    rows: list[list[Any]] = [["点位名称", "组织编码", "取流地址", "纬度", "经度"]]
    rows += [[f"路口{n}", VILLAGE_A, f"rtsp://10.0.1.{n}/main", 30.5, 117.3] for n in range(1, 6)]
    before = device_total(client, admin_headers)
    r = upload(client, admin_headers, csv_bytes(rows))
    assert r.status_code == 200, r.text
    assert r.json()["devices_created"] == 5
    assert device_total(client, admin_headers) == before + 5
    got = list(channels(client, admin_headers).values())
    assert sorted(c["name"] for c in got) == [f"路口{n}" for n in range(1, 6)]
    assert len({c["device_id"] for c in got}) == 5
    centre = orgs.settings.registry.centre_code
    for c in got:
        assert is_gb_id(c["id"]) and is_gb_id(c["device_id"])
        channel, device = parse_gb_id(c["id"]), parse_gb_id(c["device_id"])
        assert (channel.centre, channel.type_code) == (centre, "131")
        assert (device.centre, device.type_code) == (centre, "132")
        d = client.get(f"/api/v1/devices/{c['device_id']}", headers=admin_headers).json()
        assert d["name"] == c["name"]  # the camera is named after its one channel
        assert d["org"] == VILLAGE_A
        assert d["url"] == f"rtsp://10.0.1.{c['name'][2:]}/main"
        assert d["channel_count"] == 1
    # A second sheet continues the numbering instead of colliding.
    r = upload(client, admin_headers, csv_bytes([rows[0], ["路口9", VILLAGE_B, "rtsp://h/x"]]))
    assert r.status_code == 200, r.text
    ids = list(channels(client, admin_headers))
    assert len(ids) == len(set(ids)) == 6


def test_generated_ids_skip_the_ones_the_sheet_gives(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    centre = orgs.settings.registry.centre_code
    given = f"{centre}001310000001"  # exactly what the first generated ID would be
    sheet = csv_bytes(
        [
            ["通道编码", "点位名称", "组织编码", "取流地址"],
            ["", "甲", VILLAGE_A, "rtsp://h/1"],
            [given, "乙", VILLAGE_A, "rtsp://h/2"],
        ]
    )
    r = upload(client, admin_headers, sheet)
    assert r.status_code == 200, r.text
    got = channels(client, admin_headers)
    assert got[given]["name"] == "乙"
    assert len(got) == 2
    (generated,) = [c for c in got.values() if c["name"] == "甲"]
    assert is_gb_id(generated["id"]) and generated["id"] != given


def test_reimport_updates_instead_of_duplicating(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    header = [*ZH, "设备类型", "接入协议"]
    first = [[ch_id(n), f"旧名{n}", NVR_1, VILLAGE_A, 117.3, 30.5, "枪机", "三类", "nvr", "国标"]
             for n in (1, 2)]  # fmt: skip
    r = upload(client, admin_headers, csv_bytes([header, *first]))
    assert r.status_code == 200, r.text
    devices_before = device_total(client, admin_headers)
    second = [[ch_id(n), f"新名{n}", NVR_1, VILLAGE_B, 118.0, 31.0, "球机", "一类", "nvr", "国标"]
              for n in (1, 2)]  # fmt: skip
    second.append([ch_id(3), "新增", NVR_1, VILLAGE_B, "", "", "", "", "nvr", "国标"])
    r = upload(client, admin_headers, csv_bytes([header, *second]))
    assert r.status_code == 200, r.text
    assert r.json()["channels_created"] == 1
    assert r.json()["channels_updated"] == 2
    assert r.json()["devices_created"] == 0
    assert device_total(client, admin_headers) == devices_before
    got = channels(client, admin_headers)
    assert set(got) == {ch_id(1), ch_id(2), ch_id(3)}
    for n in (1, 2):
        c = got[ch_id(n)]
        assert (c["name"], c["org"], c["ptz_type"], c["point_class"]) == (
            f"新名{n}", VILLAGE_B, "dome", 1,
        )  # fmt: skip
        assert c["longitude"] == pytest.approx(118.0)
    # Importing the same sheet again changes nothing but the update count.
    r = upload(client, admin_headers, csv_bytes([header, *second]))
    assert r.json()["channels_updated"] == 3
    assert r.json()["channels_created"] == 0
    assert channel_total(client, admin_headers) == 3


def test_reimport_of_seeded_channels_keeps_what_the_sheet_leaves_blank(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    seeded = seed_two_towns(platform)
    target = seeded["a"][0]
    before = channels(client, admin_headers)[target]
    r = upload(client, admin_headers, csv_bytes([["通道编码", "点位名称"], [target, "改名"]]))
    assert r.status_code == 200, r.text
    assert r.json()["channels_updated"] == 1
    after = channels(client, admin_headers)[target]
    assert after["name"] == "改名"
    assert (after["org"], after["device_id"]) == (before["org"], before["device_id"])
    assert channel_total(client, admin_headers) == 5


def test_service_import_as_system(orgs: Platform) -> None:
    sheet = csv_bytes([ZH, [ch_id(1), "甲村东门", NVR_1, VILLAGE_A, 117.3, 30.5, "球机", "一类"]])
    result = orgs.register.import_sheet(SYSTEM, sheet, filename="点位表.csv")
    assert (result.rows, result.channels_created, result.devices_created) == (1, 1, 1)
    (channel,), total = orgs.channels.list(SYSTEM, device=NVR_1)
    assert total == 1
    assert (channel.id, channel.name, channel.ptz_type, channel.point_class) == (
        ch_id(1), "甲村东门", "dome", 1,
    )  # fmt: skip
    records, _ = orgs.audit_records.list(SYSTEM, action="registry.import")
    assert records[0].detail["file"] == "点位表.csv"
    assert records[0].detail["channels_created"] == 1


# --- sheets that are refused as a whole ----------------------------------------------------

GOOD_ROWS = [
    [ch_id(1), "甲村东门", NVR_1, VILLAGE_A, "117.3", "30.5", "球机", "一类"],
    [ch_id(2), "甲村西门", NVR_1, VILLAGE_A, "117.3", "30.5", "枪机", "二类"],
]


@pytest.mark.parametrize(
    ("bad_row", "column", "needle"),
    [
        ([ch_id(3), "坏纬度", NVR_1, VILLAGE_A, "117.3", "95", "球机", "一类"], "纬度", "90"),
        ([ch_id(3), "坏经度", NVR_1, VILLAGE_A, "东经117", "30", "球机", "一类"], "经度", "number"),
        (["3402020000131000003", "短编码", NVR_1, VILLAGE_A, "", "", "", ""], "通道编码", ""),
        ([ch_id(3), "坏设备", "1234", VILLAGE_A, "", "", "", ""], "设备编码", ""),
        ([ch_id(3), "无此组织", NVR_1, "999999", "", "", "", ""], "组织编码", "999999"),
        ([ch_id(1), "重复编码", NVR_1, VILLAGE_A, "", "", "", ""], "通道编码", "line 2"),
        ([ch_id(3), "坏云台", NVR_1, VILLAGE_A, "", "", "转台", ""], "云台类型", ""),
        ([ch_id(3), "坏类别", NVR_1, VILLAGE_A, "", "", "", "四类"], "点位类别", ""),
        ([ch_id(3), "x" * 129, NVR_1, VILLAGE_A, "", "", "", ""], "点位名称", "128"),
        ([ch_id(3), "   ", NVR_1, VILLAGE_A, "", "", "", ""], "点位名称", ""),
    ],
    ids=[
        "latitude-95",
        "longitude-text",
        "channel-id-19-digits",
        "device-id-short",
        "unknown-org",
        "duplicate-channel-id",
        "unknown-ptz",
        "unknown-class",
        "name-too-long",
        "name-blank",
    ],
)
def test_one_bad_row_imports_nothing(
    platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    bad_row: list[str],
    column: str,
    needle: str,
) -> None:
    seed_two_towns(platform)
    channels_before = channel_total(client, admin_headers)
    devices_before = device_total(client, admin_headers)
    # The bad row is line 4: header 1, two good rows, then the bad one, then another good one.
    sheet = csv_bytes(
        [ZH, *GOOD_ROWS, bad_row, [ch_id(9), "甲村北门", NVR_1, VILLAGE_A, "", "", "", ""]]
    )
    r = upload(client, admin_headers, sheet)
    details = problems(r)
    assert "nothing was imported" in r.json()["error"]["message"]
    assert [(d["row"], d["column"]) for d in details] == [(4, column)], details
    assert needle in details[0]["message"]
    assert channel_total(client, admin_headers) == channels_before
    assert device_total(client, admin_headers) == devices_before
    r = client.get(f"/api/v1/devices/{NVR_1}", headers=admin_headers)
    assert r.status_code == 404


def test_every_problem_is_reported_with_the_sheets_own_headings(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes(
        [
            ["ID", "Name", "Lat", "Lon", "org", "URL"],
            [ch_id(1), "ok", "30", "117", VILLAGE_A, "rtsp://h/1"],
            ["", "", "-91", "181", "1", "rtsp://h/2"],
            [ch_id(1), "again", "", "", VILLAGE_A, "rtsp://h/3"],
        ]
    )
    details = problems(upload(client, admin_headers, sheet))
    got = {(d["row"], d["column"]) for d in details}
    assert {(3, "Name"), (3, "Lat"), (3, "Lon"), (3, "org"), (4, "ID")} <= got
    assert all(d["row"] in (3, 4) for d in details)
    assert channel_total(client, admin_headers) == 0


def test_blank_lines_keep_their_numbers_in_errors(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    data = "点位名称,纬度,取流地址\r\n甲,30,rtsp://h/1\r\n\r\n\r\n乙,99,rtsp://h/2\r\n".encode()
    details = problems(upload(client, admin_headers, data))
    assert [(d["row"], d["column"]) for d in details] == [(5, "纬度")]


def test_xlsx_errors_name_the_spreadsheet_row(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = xlsx_bytes(
        [
            ["点位名称", "组织编码", "取流地址", "纬度"],
            ["甲", VILLAGE_A, "rtsp://h/1", 30],
            ["乙", VILLAGE_A, "rtsp://h/2", 300],
        ]
    )
    details = problems(upload(client, admin_headers, sheet, "点位表.xlsx"))
    assert [(d["row"], d["column"]) for d in details] == [(3, "纬度")]
    assert channel_total(client, admin_headers) == 0


def test_new_camera_without_stream_url_is_refused(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes([["点位名称", "组织编码", "取流地址"], ["甲", VILLAGE_A, "rtsp://h/1"],
                       ["乙", VILLAGE_A, ""], ["丙", VILLAGE_A, "not a url"]])  # fmt: skip
    details = problems(upload(client, admin_headers, sheet))
    assert [(d["row"], d["column"]) for d in details] == [(3, "取流地址"), (4, "取流地址")]
    assert channel_total(client, admin_headers) == 0


def test_conflicting_device_columns_are_refused(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes(
        [
            ["通道编码", "点位名称", "设备编码", "设备名称"],
            [ch_id(1), "甲", NVR_1, "一号NVR"],
            [ch_id(2), "乙", NVR_1, "别的名字"],
        ]
    )
    details = problems(upload(client, admin_headers, sheet))
    assert [(d["row"], d["column"]) for d in details] == [(3, "设备名称")]
    assert "line 2" in details[0]["message"]
    assert channel_total(client, admin_headers) == 0


def test_missing_channel_name_column_is_reported(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes([["通道编码", "组织编码"], [ch_id(1), VILLAGE_A]])
    details = problems(upload(client, admin_headers, sheet))
    assert len(details) == 1
    assert details[0]["row"] == 1
    assert "channel_name" in details[0]["message"]
    assert "点位名称" in details[0]["message"]
    assert channel_total(client, admin_headers) == 0


def test_duplicate_column_is_reported(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes([["点位名称", "name"], ["甲", "乙"]])
    details = problems(upload(client, admin_headers, sheet))
    assert [(d["row"], d["column"]) for d in details] == [(1, "name")]


def _zip_without_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return out.getvalue()


def _damaged_xlsx() -> bytes:
    """A real workbook whose worksheet XML is cut short."""
    good = xlsx_bytes([["点位名称"], ["甲"]])
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "needle"),
    [
        (b"", "register.csv", "empty"),
        (b"", "register.xlsx", "XLSX"),
        (b"\xff\xfe\xfd" * 50, "register.csv", "UTF-8"),
        (random.Random(7).randbytes(2048).replace(b"PK", b"pk"), "register.xlsx", "XLSX"),
        (b"PK\x03\x04" + b"\x00" * 200, "register.csv", "XLSX"),
        (_zip_without_workbook(), "register.xlsx", "XLSX"),
        (_damaged_xlsx(), "register.xlsx", "XLSX"),
        ("点位名称,组织编码\r\n".encode(), "register.csv", "no rows"),
        (b"\r\n\r\n,,,\r\n", "register.csv", "header"),
        ('点位名称\r\n"unterminated'.encode() + b"x" * 200_000, "register.csv", "CSV"),
        ("点位名称,取流地址\r\n甲\x00,rtsp://h/1\r\n".encode(), "register.csv", "NUL"),
    ],
    ids=[
        "empty-csv",
        "empty-xlsx",
        "not-text",
        "random-bytes",
        "zip-magic-junk",
        "zip-not-workbook",
        "damaged-workbook",
        "header-only",
        "no-header",
        "field-too-large",
        "nul-character",
    ],
)
def test_unreadable_files_are_invalid_not_errors(
    orgs: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    data: bytes,
    filename: str,
    needle: str,
) -> None:
    r = upload(client, admin_headers, data, filename)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert needle in r.json()["error"]["message"]
    assert channel_total(client, admin_headers) == 0
    with pytest.raises(InvalidInput):
        orgs.register.import_sheet(SYSTEM, data, filename=filename)


def test_import_requires_authentication_and_a_file(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes([["点位名称", "取流地址"], ["甲", "rtsp://h/1"]])
    r = client.post("/api/v1/registry/import", files={"file": ("a.csv", sheet, "text/csv")})
    assert r.status_code == 401
    r = client.post("/api/v1/registry/import", headers=admin_headers)
    assert r.status_code == 422
    assert channel_total(client, admin_headers) == 0


# --- export --------------------------------------------------------------------------------


@pytest.fixture
def fresh_platform(
    tmp_path: Path,
    pg_server: str | None,
    pg_template: str | None,
    clock: ManualClock,
) -> Iterator[Platform]:
    """A second, empty platform with its own data directory and database."""
    if pg_server is None:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        admin = None
    else:
        name = f"xl_fresh_{os.getpid()}_{id(tmp_path)}"
        admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
        url = pg_server.rsplit("/", 1)[0] + "/" + name
    settings = Settings()
    settings.database.url = url
    d = DataDir(tmp_path / "fresh")
    d.create(settings)
    p = build_platform(d.root, settings=settings, clock=clock)
    try:
        yield p
    finally:
        p.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


_COMPARED = (
    "id", "device_id", "remote_id", "name", "longitude", "latitude", "direction", "address",
    "point_class", "ptz_type", "ptz", "org", "grid", "enabled",
)  # fmt: skip


def _register(p: Platform) -> dict[str, dict[str, Any]]:
    items, _ = p.channels.list(SYSTEM, limit=10_000)
    out = {}
    for c in items:
        view = c.model_dump()
        device = p.devices.get(SYSTEM, c.device_id)
        record = {k: view[k] for k in _COMPARED}
        record["device"] = (device.name, device.kind, device.protocol)
        # Where the stream comes from: the channel's own URL, else its camera's.
        record["stream"] = c.stream_url or device.url
        out[c.id] = record
    return out


def _fill(p: Platform, client: TestClient, headers: dict[str, str]) -> None:
    seed_two_towns(p)
    sheet = csv_bytes(
        [
            [*ZH, "设备名称", "设备类型", "接入协议", "方向", "安装地址", "网格编码", "设备侧编码",
             "取流地址"],
            [ch_id(1), "甲村东门", NVR_1, VILLAGE_A, 117.123456, 30.654321, "球机", "一类",
             "一号NVR", "nvr", "国标", 45, "东门, \"北\"侧", GRID_A, "1", ""],
            [ch_id(2), "乙村路口", NVR_1, VILLAGE_B, "", "", "遥控枪机", "二类",
             "一号NVR", "nvr", "国标", "", "", "", "2", "rtsp://10.1.1.1/2"],
            ["", "单独枪机", "", VILLAGE_B, 117.5, 30.5, "", "", "", "", "", "", "", "", "",
             "rtsp://10.1.1.9/main"],
        ]
    )  # fmt: skip
    r = upload(client, headers, sheet)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_export_csv_round_trips_into_a_fresh_platform(
    platform: Platform,
    fresh_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    lang: str,
) -> None:
    _fill(platform, client, admin_headers)
    r = client.get(
        "/api/v1/registry/export", headers=admin_headers, params={"format": "csv", "lang": lang}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="register.csv"' in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())  # so that Excel reads it as UTF-8
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(",")[:2] == (["通道编码", "点位名称"] if lang == "zh" else EN[:2])
    assert len(lines) == 1 + 8

    seed_orgs(fresh_platform)
    result = fresh_platform.register.import_sheet(SYSTEM, r.content, filename="register.csv")
    assert (result.rows, result.channels_created, result.ignored_columns) == (8, 8, [])
    original = _register(platform)
    assert len(original) == 8
    assert _register(fresh_platform) == original


def test_export_xlsx_can_be_read_and_reimported(
    platform: Platform,
    fresh_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    _fill(platform, client, admin_headers)
    r = client.get("/api/v1/registry/export", headers=admin_headers)  # xlsx, zh by default
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("通道编码", "点位名称", "设备编码")
    assert "密码" not in rows[0]  # passwords never leave the platform
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id[ch_id(1)][1] == "甲村东门"
    assert isinstance(by_id[ch_id(1)][0], str)  # IDs as text so that Excel keeps every digit
    seed_orgs(fresh_platform)
    fresh_platform.register.import_sheet(SYSTEM, r.content, filename="register.xlsx")
    assert _register(fresh_platform) == _register(platform)


def test_export_is_audited(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sheet = csv_bytes([["点位名称", "取流地址"], ["甲", "rtsp://h/1"], ["乙", "rtsp://h/2"]])
    assert upload(client, admin_headers, sheet).status_code == 200
    for fmt in ("csv", "xlsx"):
        r = client.get("/api/v1/registry/export", headers=admin_headers, params={"format": fmt})
        assert r.status_code == 200
    r = client.get("/api/v1/audit", headers=admin_headers, params={"action": "registry.export"})
    assert r.status_code == 200, r.text
    records = r.json()["items"]
    assert [rec["detail"]["format"] for rec in records] == ["xlsx", "csv"]  # newest first
    assert all(rec["actor"] == "admin" and rec["detail"]["rows"] == 2 for rec in records)
    assert all(rec["target"] == "registry" for rec in records)
    r = client.get("/api/v1/audit", headers=admin_headers, params={"action": "registry.import"})
    assert r.json()["total"] == 1
    assert client.get("/api/v1/audit/verify", headers=admin_headers).json()["ok"] is True


def test_export_refuses_unknown_format(
    orgs: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.get("/api/v1/registry/export", headers=admin_headers, params={"format": "pdf"})
    assert r.status_code == 422
    r = client.get("/api/v1/audit", headers=admin_headers, params={"action": "registry.export"})
    assert r.json()["total"] == 0


# --- command line --------------------------------------------------------------------------


def test_cli_import_and_export(orgs: Platform, data_dir: DataDir, tmp_path: Path) -> None:
    runner = CliRunner()
    sheet = tmp_path / "点位表.csv"
    sheet.write_bytes(
        csv_bytes([ZH, *GOOD_ROWS, [ch_id(3), "乙村路口", NVR_2, VILLAGE_B, "", "", "", ""]])
    )
    result = runner.invoke(cli_app, ["channel", "import", str(sheet), "--data", str(data_dir.root)])
    assert result.exit_code == 0, result.output
    assert "3 rows: 3 channels created, 0 updated, 2 devices created." in result.output
    # The CLI wrote to the same database the platform fixture reads.
    items, total = orgs.channels.list(SYSTEM)
    assert total == 3
    assert {c.id: c.name for c in items}[ch_id(3)] == "乙村路口"

    out = tmp_path / "out.csv"
    result = runner.invoke(
        cli_app, ["channel", "export", str(out), "--data", str(data_dir.root), "--lang", "en"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert rows[0][:2] == ["channel_id", "channel_name"]
    assert sorted(r[0] for r in rows[1:]) == [ch_id(1), ch_id(2), ch_id(3)]
    xlsx = tmp_path / "out.xlsx"
    result = runner.invoke(cli_app, ["channel", "export", str(xlsx), "--data", str(data_dir.root)])
    assert result.exit_code == 0, result.output
    assert xlsx.read_bytes()[:4] == b"PK\x03\x04"
    records, _ = orgs.audit_records.list(SYSTEM, action="registry.export")
    assert [(r.actor, r.source) for r in records] == [("cli", "cli"), ("cli", "cli")]


def test_cli_import_of_a_bad_sheet_fails_and_names_the_row(
    orgs: Platform, data_dir: DataDir, tmp_path: Path
) -> None:
    sheet = tmp_path / "bad.csv"
    sheet.write_bytes(csv_bytes([ZH, *GOOD_ROWS, [ch_id(3), "坏", NVR_1, VILLAGE_A, "", "95"]]))
    result = CliRunner().invoke(
        cli_app, ["channel", "import", str(sheet), "--data", str(data_dir.root)]
    )
    assert result.exit_code == 1
    assert "nothing was imported" in result.output
    assert "'row': 4" in result.output and "纬度" in result.output
    assert orgs.channels.list(SYSTEM)[1] == 0
