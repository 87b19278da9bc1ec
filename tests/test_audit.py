"""The audit chain: every change recorded, tamper-evident, read-only through the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.conftest import login
from xueliang.access.principal import SYSTEM
from xueliang.app import Platform
from xueliang.cli.main import app as cli
from xueliang.datadir import DataDir
from xueliang.registry.schemas import OrgCreate
from xueliang.store.models import AuditRecord

runner = CliRunner()


def _make_records(platform: Platform, n: int) -> None:
    for i in range(n):
        platform.orgs.create(SYSTEM, OrgCreate(code=f"{10 + i}", name=f"省{i}", level="province"))


def _verify(data_dir: DataDir) -> tuple[int, str]:
    result = runner.invoke(cli, ["audit", "verify", "--data", str(data_dir.root)])
    return result.exit_code, result.output


def test_intact_chain_verifies(platform: Platform, data_dir: DataDir) -> None:
    _make_records(platform, 5)
    code, out = _verify(data_dir)
    assert code == 0, out
    assert "intact: 6 records" in out  # admin creation + 5 organisations


def test_edited_record_is_named(platform: Platform, data_dir: DataDir) -> None:
    _make_records(platform, 5)
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET actor = 'someone-else' WHERE seq = 4"))
    code, out = _verify(data_dir)
    assert code == 1
    assert "BROKEN at record 4" in out


def test_deleted_record_is_named(platform: Platform, data_dir: DataDir) -> None:
    _make_records(platform, 5)
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 3"))
    code, out = _verify(data_dir)
    assert code == 1
    assert "BROKEN at record 3" in out and "missing" in out


def test_recomputed_plain_hash_does_not_pass(platform: Platform, data_dir: DataDir) -> None:
    """An attacker with database access but without the key cannot re-seal an edited record."""
    import hashlib

    _make_records(platform, 3)
    with platform.db.engine.begin() as conn:
        prev = conn.execute(text("SELECT hash FROM audit_records WHERE seq = 1")).scalar_one()
        forged = hashlib.sha256(f"{prev}forged".encode()).hexdigest()
        conn.execute(
            text("UPDATE audit_records SET reason = 'nothing to see', hash = :h WHERE seq = 2"),
            {"h": forged},
        )
    code, out = _verify(data_dir)
    assert code == 1 and "record 2" in out


def test_truncated_tail_is_noticed(platform: Platform, data_dir: DataDir) -> None:
    _make_records(platform, 4)
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 5"))
    code, out = _verify(data_dir)
    assert code == 1 and "record 5" in out


def test_changes_are_audited_with_who_what_where(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/orgs",
        json={"code": "34", "name": "示范省", "level": "province"},
        headers=admin_headers,
    )
    assert r.status_code == 201
    records = client.get(
        "/api/v1/audit", params={"action": "org.create"}, headers=admin_headers
    ).json()["items"]
    assert len(records) == 1
    rec = records[0]
    assert rec["actor"] == "admin"
    assert rec["target"] == "org:34"
    assert rec["source"] == "testclient"
    assert rec["detail"]["name"] == "示范省"


def test_device_passwords_never_reach_the_audit(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/devices",
        json={"name": "cam", "protocol": "rtsp", "url": "rtsp://u:s3cret-pw@127.0.0.1:8554/x"},
        headers=admin_headers,
    )
    assert r.status_code == 201
    assert r.json()["url"] == "rtsp://127.0.0.1:8554/x"
    assert r.json()["has_password"] is True
    body = client.get("/api/v1/audit", params={"action": "device."}, headers=admin_headers).text
    assert "s3cret-pw" not in body


def test_audit_filters(client: TestClient, admin_headers: dict[str, str]) -> None:
    client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"})
    failed = client.get(
        "/api/v1/audit", params={"action": "auth.login", "outcome": "failed"}, headers=admin_headers
    ).json()
    assert failed["total"] == 1
    by_prefix = client.get(
        "/api/v1/audit", params={"action": "auth."}, headers=admin_headers
    ).json()
    assert by_prefix["total"] >= 2
    none = client.get("/api/v1/audit", params={"actor": "nobody"}, headers=admin_headers).json()
    assert none["total"] == 0 and none["items"] == []
    # By the client's address (TestClient calls itself "testclient"), or its beginning.
    here = client.get("/api/v1/audit", params={"source": "testcl"}, headers=admin_headers).json()
    assert here["total"] >= 2 and {i["source"] for i in here["items"]} == {"testclient"}
    elsewhere = client.get("/api/v1/audit", params={"source": "10.9."}, headers=admin_headers)
    assert elsewhere.json()["total"] == 0


def test_nobody_can_delete_or_change_audit_records(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert client.delete("/api/v1/audit", headers=admin_headers).status_code == 405
    assert client.delete("/api/v1/audit/1", headers=admin_headers).status_code in (404, 405)
    assert client.patch("/api/v1/audit/1", json={}, headers=admin_headers).status_code in (404, 405)
    verify = client.get("/api/v1/audit/verify", headers=admin_headers).json()
    assert verify["ok"] is True


def test_auditor_reads_audit_viewer_does_not(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for name, role in (("aud", "auditor"), ("view", "viewer")):
        client.post(
            "/api/v1/users",
            json={
                "username": name,
                "password": "Some-passw0rd",
                "roles": [role],
                "scope": {"all": True},
            },
            headers=admin_headers,
        )
    auditor = login(client, "aud", "Some-passw0rd")
    viewer = login(client, "view", "Some-passw0rd")
    assert client.get("/api/v1/audit", headers=auditor).status_code == 200
    assert client.get("/api/v1/audit/verify", headers=auditor).status_code == 200
    assert client.get("/api/v1/audit", headers=viewer).status_code == 403


def test_long_values_are_clipped_and_kept_whole_in_the_detail(
    platform: Platform, data_dir: DataDir
) -> None:
    """The target and source columns are bounded (PostgreSQL refuses longer values): a record
    with a long device address still goes in, the whole value in its detail, and verifies."""
    long_target = "onvif:" + "0" * 300 + ":80"
    long_source = "10.0.0.1, " * 20
    with platform.db.transaction() as s:
        record = platform.audit.append(
            s, "admin", "onvif.probe", target=long_target, source=long_source
        )
        seq = record.seq
    with platform.db.read() as s:
        stored = s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).one()
        assert len(stored.target) == 128 and stored.target.endswith("…")
        assert stored.detail["target"] == long_target
        assert len(stored.source) == 64 and stored.detail["source"] == long_source
    code, out = _verify(data_dir)
    assert code == 0, out
