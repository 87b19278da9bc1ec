from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, login


def test_health_and_login(client: TestClient) -> None:
    assert client.get("/api/v1/health").json()["status"] == "ok"
    headers = login(client, "admin", ADMIN_PASSWORD)
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert me["username"] == "admin"
    assert "audit.read" in me["permissions"]
