"""Bad input gets one clear error body and changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _error(r: object) -> dict[str, object]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert {"code", "message", "details"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


def test_malformed_json(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/orgs",
        content=b'{"code": "34", "name": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert _error(r)["code"] == "invalid"
    assert client.get("/api/v1/orgs", headers=admin_headers).json()["total"] == 0


def test_unknown_field_and_bad_values(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/orgs",
        json={"code": "34", "name": "省", "level": "province", "colour": "red"},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert any("colour" in d["loc"] for d in _error(r)["details"])  # type: ignore[union-attr]
    r = client.post(
        "/api/v1/devices",
        json={"name": "x", "protocol": "rtsp", "url": "rtsp://127.0.0.1/x", "id": "123"},
        headers=admin_headers,
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/devices", json={"name": "x", "protocol": "rtsp"}, headers=admin_headers
    )
    assert r.status_code == 422
    assert "url" in str(_error(r)["message"])
    assert client.get("/api/v1/devices", headers=admin_headers).json()["total"] == 0


def test_not_found_and_wrong_method(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.get("/api/v1/channels/34020000001310000001", headers=admin_headers)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"
    r = client.get("/api/v1/nothing-here", headers=admin_headers)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"
    r = client.put("/api/v1/orgs", headers=admin_headers)
    assert r.status_code == 405 and _error(r)["code"] == "method_not_allowed"


def test_conflicts(client: TestClient, admin_headers: dict[str, str]) -> None:
    org = {"code": "34", "name": "省", "level": "province"}
    assert client.post("/api/v1/orgs", json=org, headers=admin_headers).status_code == 201
    r = client.post("/api/v1/orgs", json=org, headers=admin_headers)
    assert r.status_code == 409 and _error(r)["code"] == "conflict"
    town = {"code": "3402001", "name": "镇", "level": "town", "parent": "34"}
    assert client.post("/api/v1/orgs", json=town, headers=admin_headers).status_code == 201
    r = client.delete("/api/v1/orgs/34", headers=admin_headers)
    assert r.status_code == 409
    # A level may not sit above its parent's.
    r = client.post(
        "/api/v1/orgs",
        json={"code": "3402001001", "name": "市", "level": "city", "parent": "3402001"},
        headers=admin_headers,
    )
    assert r.status_code == 422


def test_org_move_keeps_the_subtree(client: TestClient, admin_headers: dict[str, str]) -> None:
    for body in (
        {"code": "34", "name": "省", "level": "province"},
        {"code": "3401", "name": "甲市", "level": "city", "parent": "34"},
        {"code": "3402", "name": "乙市", "level": "city", "parent": "34"},
        {"code": "340101", "name": "县", "level": "county", "parent": "3401"},
        {"code": "340101001", "name": "镇", "level": "town", "parent": "340101"},
    ):
        assert client.post("/api/v1/orgs", json=body, headers=admin_headers).status_code == 201
    r = client.patch("/api/v1/orgs/340101", json={"parent": "3402"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["parent"] == "3402"
    under = client.get("/api/v1/orgs", params={"parent": "340101"}, headers=admin_headers).json()
    assert [o["id"] for o in under["items"]] == ["340101001"]
    # Moving under its own descendant is refused.
    r = client.patch("/api/v1/orgs/3402", json={"parent": "340101001"}, headers=admin_headers)
    assert r.status_code == 422
    # The moved subtree now lies within its new parent's area.
    client.post(
        "/api/v1/users",
        json={
            "username": "viewer1",
            "password": "Viewer-passw0rd",
            "roles": ["viewer"],
            "scope": {"orgs": ["3402"]},
        },
        headers=admin_headers,
    )
    from tests.conftest import login

    viewer = login(client, "viewer1", "Viewer-passw0rd")
    seen = {o["id"] for o in client.get("/api/v1/orgs", headers=viewer).json()["items"]}
    assert seen == {"3402", "340101", "340101001"}
