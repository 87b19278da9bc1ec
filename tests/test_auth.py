"""Login, lockout, token expiry, API keys, password changes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, login
from xueliang.app import Platform
from xueliang.core.clock import ManualClock


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    ).status_code


def test_only_health_and_login_are_open(client: TestClient) -> None:
    assert client.get("/api/v1/health").status_code == 200
    for path in (
        "/api/v1/orgs",
        "/api/v1/devices",
        "/api/v1/channels",
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/audit",
        "/api/v1/auth/me",
    ):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(client: TestClient) -> None:
    r = client.get("/api/v1/channels", headers={"Authorization": "Bearer xls_nonsense"})
    assert r.status_code == 401


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    a = client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    b = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_five_failures_lock_the_account_for_the_configured_time(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    lockout = platform.settings.auth.lockout_seconds
    for _ in range(4):
        assert _login(client, "admin", "wrong-password") == 401
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert r.status_code == 423
    assert r.json()["error"]["code"] == "locked"
    # Locked: even the right password is refused, with Retry-After.
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 423
    assert 0 < int(r.headers["retry-after"]) <= lockout
    clock.advance(lockout - 1)
    assert _login(client, "admin", ADMIN_PASSWORD) == 423
    clock.advance(2)
    assert _login(client, "admin", ADMIN_PASSWORD) == 200
    # The lock and the failures are audited.
    headers = login(client, "admin", ADMIN_PASSWORD)
    records = client.get(
        "/api/v1/audit", params={"action": "auth.login", "limit": 100}, headers=headers
    ).json()["items"]
    outcomes = [rec["outcome"] for rec in records]
    assert outcomes.count("failed") == 4
    assert outcomes.count("locked") == 3  # the locking attempt and two while locked
    assert all(rec["source"] == "testclient" for rec in records)


def test_success_resets_the_failure_count(client: TestClient) -> None:
    for _ in range(4):
        assert _login(client, "admin", "wrong-password") == 401
    assert _login(client, "admin", ADMIN_PASSWORD) == 200
    for _ in range(4):
        assert _login(client, "admin", "wrong-password") == 401
    assert _login(client, "admin", ADMIN_PASSWORD) == 200


def test_admin_can_unlock(client: TestClient, admin_headers: dict[str, str]) -> None:
    client.post(
        "/api/v1/users",
        json={
            "username": "op",
            "password": "Operator-pass-1",
            "roles": ["operator"],
            "scope": {"all": True},
        },
        headers=admin_headers,
    )
    for _ in range(5):
        _login(client, "op", "bad")
    assert _login(client, "op", "Operator-pass-1") == 423
    users = client.get("/api/v1/users", params={"q": "op"}, headers=admin_headers).json()["items"]
    uid = next(u["id"] for u in users if u["username"] == "op")
    assert users[0]["locked_until"] is not None
    r = client.patch(f"/api/v1/users/{uid}", json={"unlock": True}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["locked_until"] is None
    assert _login(client, "op", "Operator-pass-1") == 200


def test_token_expires(client: TestClient, platform: Platform, clock: ManualClock) -> None:
    headers = login(client, "admin", ADMIN_PASSWORD)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    clock.advance(platform.settings.auth.token_ttl_minutes * 60 + 1)
    r = client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_logout_ends_the_session(client: TestClient) -> None:
    headers = login(client, "admin", ADMIN_PASSWORD)
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_api_key_lifecycle(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/auth/api-keys", json={"name": "nightly-export"}, headers=admin_headers)
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert key.startswith("xlk_")
    machine = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/channels", headers=machine).status_code == 200
    listed = client.get("/api/v1/auth/api-keys", headers=admin_headers).json()
    assert [k["name"] for k in listed] == ["nightly-export"]
    assert "key" not in listed[0]
    assert (
        client.delete(f"/api/v1/auth/api-keys/{key_id}", headers=admin_headers).status_code == 204
    )
    assert client.get("/api/v1/channels", headers=machine).status_code == 401


def test_password_change_and_policy(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/auth/password",
        json={"old_password": "wrong", "new_password": "Another-Passw0rd"},
        headers=admin_headers,
    )
    assert r.status_code == 401
    r = client.post(
        "/api/v1/auth/password",
        json={"old_password": ADMIN_PASSWORD, "new_password": "short"},
        headers=admin_headers,
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/auth/password",
        json={"old_password": ADMIN_PASSWORD, "new_password": "Another-Passw0rd"},
        headers=admin_headers,
    )
    assert r.status_code == 204
    assert _login(client, "admin", ADMIN_PASSWORD) == 401
    assert _login(client, "admin", "Another-Passw0rd") == 200


def test_generated_password_is_returned_once_and_works(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/users", json={"username": "gen", "roles": ["viewer"]}, headers=admin_headers
    )
    assert r.status_code == 201
    password = r.json()["generated_password"]
    assert password and len(password) >= 16
    assert _login(client, "gen", password) == 200
    again = client.get(f"/api/v1/users/{r.json()['id']}", headers=admin_headers).json()
    assert "generated_password" not in again


def test_passwords_are_argon2_hashed(platform: Platform) -> None:
    from sqlalchemy import select

    from xueliang.store.models import User

    with platform.db.read() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "admin"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in stored


def test_disabled_user_cannot_log_in_and_loses_sessions(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/users",
        json={"username": "temp", "password": "Temp-passw0rd", "roles": ["viewer"]},
        headers=admin_headers,
    )
    uid = r.json()["id"]
    headers = login(client, "temp", "Temp-passw0rd")
    client.patch(f"/api/v1/users/{uid}", json={"enabled": False}, headers=admin_headers)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert _login(client, "temp", "Temp-passw0rd") == 401


def test_admin_cannot_disable_or_delete_self(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    me = client.get("/api/v1/auth/me", headers=admin_headers).json()
    r = client.patch(f"/api/v1/users/{me['id']}", json={"enabled": False}, headers=admin_headers)
    assert r.status_code == 409
    assert client.delete(f"/api/v1/users/{me['id']}", headers=admin_headers).status_code == 409


def test_custom_role_from_permissions(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/roles",
        json={
            "name": "exporter",
            "title": "导出员",
            "permissions": ["registry.read", "video.export"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 201
    assert r.json()["permissions"] == ["registry.read", "video.export"]
    bad = client.post(
        "/api/v1/roles",
        json={"name": "bad", "permissions": ["launch.missiles"]},
        headers=admin_headers,
    )
    assert bad.status_code == 422
    client.post(
        "/api/v1/users",
        json={
            "username": "ex",
            "password": "Exporter-pass1",
            "roles": ["exporter"],
            "scope": {"all": True},
        },
        headers=admin_headers,
    )
    me = client.get("/api/v1/auth/me", headers=login(client, "ex", "Exporter-pass1")).json()
    assert sorted(me["permissions"]) == ["registry.read", "video.export"]
    # Held roles cannot be deleted; built-in roles cannot be changed.
    assert client.delete("/api/v1/roles/exporter", headers=admin_headers).status_code == 409
    assert (
        client.patch(
            "/api/v1/roles/viewer", json={"permissions": []}, headers=admin_headers
        ).status_code
        == 409
    )
    names = {r["name"] for r in client.get("/api/v1/roles", headers=admin_headers).json()}
    assert {"admin", "operator", "viewer", "auditor", "grid_worker", "exporter"} <= names
