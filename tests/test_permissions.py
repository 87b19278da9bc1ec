"""Permissions on accounts, roles and the audit trail.

Only a holder of ``user.manage`` may list, create, change or delete users and change roles; only
``audit.read`` opens the audit trail. Every refusal is 403 ``forbidden`` and changes nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TOWN_A, login, seed_two_towns
from xueliang.app import Platform

API = "/api/v1"
PASSWORD = "Perm-Passw0rd-for-tests"
NON_MANAGERS = ["viewer", "operator", "auditor", "grid_worker"]
Headers = dict[str, str]


@dataclass
class Accounts:
    client: TestClient
    admin: Headers
    admin_id: int
    other_id: int  # a plain viewer the callers below try to change
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def user(self, roles: list[str], scope: dict[str, Any] | None = None) -> tuple[Headers, int]:
        name = f"caller{next(self._names)}"
        r = self.client.post(
            f"{API}/users",
            headers=self.admin,
            json={
                "username": name,
                "password": PASSWORD,
                "roles": roles,
                "scope": scope or {"orgs": [TOWN_A]},
            },
        )
        assert r.status_code == 201, r.text
        return login(self.client, name, PASSWORD), r.json()["id"]

    def snapshot(self) -> tuple[Any, Any]:
        users = self.client.get(f"{API}/users", headers=self.admin, params={"limit": 1000})
        roles = self.client.get(f"{API}/roles", headers=self.admin)
        assert users.status_code == roles.status_code == 200
        people = [
            {k: v for k, v in u.items() if k != "last_login_at"} for u in users.json()["items"]
        ]
        return people, roles.json()


@pytest.fixture
def accounts(platform: Platform, client: TestClient, admin_headers: Headers) -> Accounts:
    seed_two_towns(platform)
    me = client.get(f"{API}/auth/me", headers=admin_headers).json()
    other = client.post(
        f"{API}/users",
        headers=admin_headers,
        json={"username": "other", "password": PASSWORD, "roles": ["viewer"]},
    )
    assert other.status_code == 201, other.text
    role = client.post(
        f"{API}/roles",
        headers=admin_headers,
        json={"name": "custom", "title": "自定义", "permissions": ["registry.read"]},
    )
    assert role.status_code == 201, role.text
    return Accounts(client, admin_headers, me["id"], other.json()["id"])


def assert_forbidden(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


# (id, method, path with {self}/{other}/{admin}, body, status for the admin)
ACCOUNT_ACTIONS: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("list-users", "GET", "/users", None, 200),
    ("read-other-user", "GET", "/users/{other}", None, 200),
    ("read-admin", "GET", "/users/{admin}", None, 200),
    (
        "create-user",
        "POST",
        "/users",
        {"username": "newbie", "password": PASSWORD, "roles": ["admin"], "scope": {"all": True}},
        201,
    ),
    ("rename-other-user", "PATCH", "/users/{other}", {"display_name": "x"}, 200),
    ("disable-other-user", "PATCH", "/users/{other}", {"enabled": False}, 200),
    ("reset-other-password", "PATCH", "/users/{other}", {"password": "Reset-Passw0rd-1"}, 200),
    ("widen-own-scope", "PATCH", "/users/{self}", {"scope": {"all": True}}, 200),
    ("grant-self-admin", "PATCH", "/users/{self}", {"roles": ["admin"]}, 200),
    ("delete-other-user", "DELETE", "/users/{other}", None, 204),
    ("create-role", "POST", "/roles", {"name": "custom2", "permissions": ["user.manage"]}, 201),
    ("update-role", "PATCH", "/roles/custom", {"permissions": ["user.manage"]}, 200),
    ("delete-role", "DELETE", "/roles/custom", None, 204),
]


def _send(a: Accounts, headers: Headers, self_id: int, action: tuple[Any, ...]) -> Any:
    _, method, path, body, _ = action
    url = API + path.format(self=self_id, other=a.other_id, admin=a.admin_id)
    return a.client.request(method, url, headers=headers, json=body)


@pytest.mark.parametrize("role", NON_MANAGERS)
@pytest.mark.parametrize("action", ACCOUNT_ACTIONS, ids=[x[0] for x in ACCOUNT_ACTIONS])
def test_without_user_manage_accounts_and_roles_are_refused(
    accounts: Accounts, role: str, action: tuple[Any, ...]
) -> None:
    headers, self_id = accounts.user([role])
    before = accounts.snapshot()
    assert_forbidden(_send(accounts, headers, self_id, action))
    assert accounts.snapshot() == before
    # The caller's own rights are unchanged too.
    me = accounts.client.get(f"{API}/auth/me", headers=headers).json()
    assert me["roles"] == [role] and me["scope"]["all"] is False


@pytest.mark.parametrize("action", ACCOUNT_ACTIONS, ids=[x[0] for x in ACCOUNT_ACTIONS])
def test_admin_may_do_each_refused_action(accounts: Accounts, action: tuple[Any, ...]) -> None:
    """The refusals above come from the missing permission, not from bad requests."""
    _, self_id = accounts.user(["viewer"])
    r = _send(accounts, accounts.admin, self_id, action)
    assert r.status_code == action[4], r.text


def test_a_custom_role_with_user_manage_opens_the_user_list(accounts: Accounts) -> None:
    r = accounts.client.post(
        f"{API}/roles",
        headers=accounts.admin,
        json={"name": "clerk", "permissions": ["registry.read", "user.manage"]},
    )
    assert r.status_code == 201, r.text
    clerk, _ = accounts.user(["clerk"], {"all": True})
    town_clerk, _ = accounts.user(["clerk"])
    viewer, _ = accounts.user(["viewer"])
    assert accounts.client.get(f"{API}/users", headers=clerk).status_code == 200
    # Account management is platform-wide: a clerk scoped to one town may not do it.
    assert_forbidden(accounts.client.get(f"{API}/users", headers=town_clerk))
    assert_forbidden(accounts.client.get(f"{API}/users", headers=viewer))


def test_anyone_reads_their_own_record_and_the_roles(accounts: Accounts) -> None:
    headers, self_id = accounts.user(["viewer"])
    me = accounts.client.get(f"{API}/users/{self_id}", headers=headers)
    assert me.status_code == 200 and me.json()["scope"]["orgs"] == [TOWN_A]
    roles = accounts.client.get(f"{API}/roles", headers=headers)
    assert roles.status_code == 200
    assert {"admin", "viewer", "custom"} <= {r["name"] for r in roles.json()}
    assert accounts.client.get(f"{API}/roles/viewer", headers=headers).status_code == 200
    assert "user.manage" in accounts.client.get(f"{API}/permissions", headers=headers).json()


@pytest.mark.parametrize("path", ["/audit", "/audit/verify"])
@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("auditor", True),
        ("admin", True),
        ("viewer", False),
        ("operator", False),
        ("grid_worker", False),
    ],
)
def test_audit_trail_is_open_to_audit_read_only(
    accounts: Accounts, path: str, role: str, allowed: bool
) -> None:
    headers, _ = accounts.user([role])
    r = accounts.client.get(f"{API}{path}", headers=headers)
    if not allowed:
        assert_forbidden(r)
        return
    assert r.status_code == 200, r.text
    body = r.json()
    if path == "/audit/verify":
        assert body["ok"] is True and body["checked"] > 0
    else:
        actions = {rec["action"] for rec in body["items"]}
        assert {"user.create", "role.create", "channel.create"} <= actions
        assert body["total"] >= len(body["items"]) > 0


def test_auditor_cannot_write_the_registry(accounts: Accounts) -> None:
    headers, _ = accounts.user(["auditor"])
    r = accounts.client.post(
        f"{API}/orgs",
        headers=headers,
        json={"code": "340202001009", "name": "x", "level": "village", "parent": TOWN_A},
    )
    assert_forbidden(r)


@pytest.mark.parametrize("path", ["/users", "/roles", "/audit", "/orgs", "/devices", "/channels"])
def test_no_token_is_unauthenticated_not_forbidden(client: TestClient, path: str) -> None:
    r = client.get(f"{API}{path}")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"


def test_scoped_user_manager_cannot_manage_accounts(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """A town-scoped admin could otherwise widen its own area or hand out roles beyond it."""
    from tests.conftest import seed_two_towns

    seed_two_towns(client.app.state.platform)  # type: ignore[attr-defined]
    r = client.post(
        "/api/v1/users",
        json={
            "username": "town_admin",
            "password": "Town-admin-pw1",
            "roles": ["admin"],
            "scope": {"orgs": ["340202001"]},
        },
        headers=admin_headers,
    )
    assert r.status_code == 201
    me = r.json()["id"]
    town_admin = login(client, "town_admin", "Town-admin-pw1")
    widen = client.patch(f"/api/v1/users/{me}", json={"scope": {"all": True}}, headers=town_admin)
    assert widen.status_code == 403
    new_user = client.post(
        "/api/v1/users",
        json={"username": "x_user", "roles": ["admin"], "scope": {"all": True}},
        headers=town_admin,
    )
    assert new_user.status_code == 403
    role = client.post(
        "/api/v1/roles", json={"name": "god", "permissions": ["user.manage"]}, headers=town_admin
    )
    assert role.status_code == 403
    # It still administers its own town's register.
    assert client.get("/api/v1/channels", headers=town_admin).json()["total"] == 3
    check = client.get(f"/api/v1/users/{me}", headers=admin_headers).json()
    assert check["scope"] == {"all": False, "orgs": ["340202001"], "channels": []}
