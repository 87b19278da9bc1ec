"""Fuzz the API against its own OpenAPI description: whatever arrives, never a 500.

Schemathesis reads /api/v1/openapi.json from the application in-process (ASGI) and sends each
operation valid and invalid requests as the admin, over a register seeded with two towns so
that paths name real organisations, devices, channels, users, roles and API keys as well as
made-up ones. Logging out would end the token for every later case and so is left out; logging
in is fuzzed without a token on a platform of its own, so that repeated bad passwords for
``admin`` cannot lock the account the authenticated run uses.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.conftest import (
    ADMIN_PASSWORD,
    GRID_A,
    TOWN_A,
    TOWN_B,
    VILLAGE_A,
    VILLAGE_B,
    login,
    seed_two_towns,
)
from tests.support.onvif_app import offline_onvif
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import RoleCreate, UserCreate
from xueliang.api.app import create_app
from xueliang.api.routers.onvif import onvif_service
from xueliang.app import Platform

# Random cases per operation (valid and invalid), on top of schemathesis' coverage phase
# (boundary values, missing and malformed parts, other methods). Derandomised with a fixed
# seed, so a run is repeatable and a failure can be replayed.
# Fewer on the PostgreSQL pass, which repeats the suite's store tests after the SQLite one
# (CI's time budget); the coverage phase's boundary cases are the same on both.
MAX_EXAMPLES = 20 if os.environ.get("XUELIANG_TEST_DB") == "postgresql" else 50
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # Each operation's examples share its platform, client and token on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
    print_blob=True,
)


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 20240601,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        }
    )


def _real_path_values(
    p: Platform, client: TestClient, headers: dict[str, str]
) -> dict[str, list[Any]]:
    """Seed the register and accounts; return real values for each path parameter name."""
    seeded = seed_two_towns(p)
    victim = p.users.create_user(
        SYSTEM, UserCreate(username="fuzz_victim", password="Victim-Passw0rd-123")
    )
    role = p.users.create_role(SYSTEM, RoleCreate(name="fuzz_role", permissions=["registry.read"]))
    key = client.post("/api/v1/auth/api-keys", headers=headers, json={"name": "fuzz-key"})
    assert key.status_code == 201, key.text
    admin = client.get("/api/v1/auth/me", headers=headers).json()
    return {
        "code": ["340202", TOWN_A, TOWN_B, VILLAGE_A, VILLAGE_B, GRID_A],
        "grid": [GRID_A],
        "device_id": [*seeded["devices_a"], *seeded["devices_b"], seeded["nvr"]],
        "channel_id": [*seeded["a"], *seeded["b"]],
        "user_id": [victim.id],
        "name": ["viewer", "admin", role.name],
        "key_id": [key.json()["id"]],
        "admin_user_id": [admin["id"]],
    }


# The operations come from the application's own description; it does not depend on the
# platform behind the app, so it is read once at import from an app with none. Each operation
# is then its own test with a fresh platform (the fixtures), and each case is sent in-process to
# that platform's app (``case.call(app=...)``). (schemathesis.pytest.from_fixture would load the
# schema from a fixture instead, but 4.32.5 sets ``Node._nodeid``, which pytest 9.2 no longer
# has.)
_DESCRIBED = create_app(cast(Platform, None))
# Real path values of the platform under test, filled by the fixture before generation starts.
REAL: dict[str, list[Any]] = {}
# Body fields that name other objects, and which of the real values fit them.
BODY_REFS = {"device": "device_id", "org": "code", "parent": "code", "grid": "grid"}


def _schema() -> Any:
    # The description as the app serves it at /api/v1/openapi.json (read without starting the
    # app: its lifespan would start the platform it does not have).
    schema = schemathesis.openapi.from_dict(_DESCRIBED.openapi(), config=_config())

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
        # Paths name objects that exist (so GET/PATCH/DELETE reach the service code behind the
        # 404) as well as whatever was generated. Real values come first: Hypothesis leans
        # towards the first choice, and made-up IDs reach nothing but 404.
        return _with_real(path_parameters, {n: n for n in REAL})

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        # Likewise for references inside bodies (a channel's device, an organisation's parent):
        # without them nearly every create would stop at "does not exist".
        return _with_real(body, _body_refs(context.operation.path))

    return schema


def _body_refs(path: str) -> dict[str, str]:
    """Body fields of this operation that name objects, and the real values that fit each."""
    refs = dict(BODY_REFS)
    if path.endswith("/devices"):
        refs["id"] = "device_id"  # an existing ID: the create must answer 409
    elif path.endswith("/channels"):
        refs["id"] = "channel_id"
    return refs


def _with_real(values: Any, refs: dict[str, str]) -> Any:
    """A strategy: ``values`` with each field named in ``refs`` maybe replaced by a real one."""
    keys = [k for k in values if k in refs and refs[k] in REAL] if isinstance(values, dict) else []
    if not keys:
        return st.just(values)
    real = st.fixed_dictionaries(
        {k: st.one_of(st.sampled_from(REAL[refs[k]]), st.just(values[k])) for k in keys}
    )
    return real.map(lambda new: {**values, **new})


class Fuzz:
    """What one authenticated run needs: the app, the admin's token, real path values."""

    def __init__(self, app: Any, headers: dict[str, str], real: dict[str, list[Any]]) -> None:
        self.app = app
        self.headers = headers
        self.real = real


@pytest.fixture
def fuzz(platform: Platform, client: TestClient) -> Iterator[Fuzz]:
    # ONVIF operations reach real devices: the fuzz's made-up hosts and interfaces must not be
    # probed, nor multicast sent on the host's network. The real service (permissions, audit,
    # registration) answers, over canned device answers.
    cast(Any, client.app).dependency_overrides[onvif_service] = lambda: offline_onvif(platform)
    headers = login(client, "admin", ADMIN_PASSWORD)
    REAL.clear()
    REAL.update(_real_path_values(platform, client, headers))
    try:
        yield Fuzz(client.app, headers, REAL)
    finally:
        REAL.clear()
    # The run must not have cut the admin off; otherwise later cases only met 401s and 403s.
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert "user.manage" in me.json()["permissions"]


def _means(value: Any, ids: list[int]) -> bool:
    """Whether a generated path value would reach one of these numeric IDs ("1", "01", "+1", …)."""
    try:
        return int(float(str(value).strip())) in ids
    except (ValueError, OverflowError):
        return False


def _point_valid_coverage_cases_at_real_objects(case: Any, real: dict[str, list[Any]]) -> None:
    """The coverage phase does not pass through the hooks: its valid cases would only ever name
    made-up objects and stop at 404. Point them at real ones, picked by the case's content."""
    meta = case.meta
    if meta is None or (meta.phase.name, meta.generation.mode) != ("coverage", "positive"):
        return
    pick = zlib.crc32(repr((case.body, case.query)).encode())
    refs = (
        {n: n for n in real},
        {k: v for k, v in _body_refs(case.operation.path).items() if k != "id"},
    )
    for values, names in zip((case.path_parameters, case.body), refs, strict=True):
        for name, value in values.items() if isinstance(values, dict) else ():
            if name in names and value not in real[names[name]]:
                options = real[names[name]]
                values[name] = options[pick % len(options)]


authenticated = _schema().exclude(path_regex=r"^/api/v1/auth/(login|logout)$")


@authenticated.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_as_admin(case: Any, fuzz: Fuzz) -> None:
    _point_valid_coverage_cases_at_real_objects(case, fuzz.real)
    # The admin may not disable or delete itself (409), but could change its own password,
    # roles or area and so lose the token the rest of the run uses: aim those at a victim.
    if case.path_parameters and _means(
        case.path_parameters.get("user_id"), fuzz.real["admin_user_id"]
    ):
        case.path_parameters["user_id"] = fuzz.real["user_id"][0]
    response = case.call(app=fuzz.app, headers=fuzz.headers)
    case.validate_response(response, checks=[not_a_server_error])


anonymous = _schema().exclude(path_regex=r"^/api/v1/auth/logout$")


@anonymous.parametrize()
@settings(FUZZ_SETTINGS, max_examples=10)
def test_no_server_errors_without_a_token(
    case: Any, platform: Platform, client: TestClient
) -> None:
    """Login is fuzzed here (on this test's own platform, so lockouts touch nobody else);
    every other operation must refuse: 401, or 400/422 when the request cannot even be read
    (the body is parsed before the token is looked at), or 405 for a method probe."""
    response = case.call(app=client.app)
    case.validate_response(response, checks=[not_a_server_error])
    path = case.operation.path
    if path in ("/api/v1/auth/login", "/api/v1/health"):
        return
    if path.startswith("/api/v1/device-snapshots/upload/"):
        # Devices cannot log in: the one-time token in the path is the credential, and one
        # nobody issued is not found (before the body is read).
        assert response.status_code in (400, 404, 405, 422), (path, response.status_code)
        return
    allowed = (400, 401, 422) if case.method.upper() == case.operation.method.upper() else (405,)
    assert response.status_code in allowed, (case.method, path, response.status_code)
    if response.status_code != 405:
        assert response.json()["error"]["code"] in ("invalid", "unauthenticated")


# --- what the fuzzer found, pinned ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        # A JSON null for a column that cannot be empty reached the database (IntegrityError).
        ("PATCH", "/api/v1/devices/{device}", {"enabled": None}),
        ("PATCH", "/api/v1/devices/{device}", {"name": None}),
        # NUL characters: PostgreSQL text columns refuse them (DataError), SQLite stores them.
        ("POST", "/api/v1/orgs", {"code": "3402029", "name": "a\x00", "level": "town"}),
        ("PATCH", "/api/v1/channels/{channel}", {"address": "\x00"}),
        ("POST", "/api/v1/users", {"username": "nul_user", "display_name": "\x00"}),
        ("POST", "/api/v1/roles", {"name": "nul_role", "permissions": ["registry.read\x00"]}),
        ("POST", "/api/v1/auth/login", {"username": "admin\x00", "password": "x"}),
        ("GET", "/api/v1/channels?q=%00", None),
        ("GET", "/api/v1/audit?actor=a%00", None),
        ("GET", "/api/v1/devices/%00", None),
        ("DELETE", "/api/v1/orgs/%00", None),
    ],
)
def test_found_by_fuzzing_is_invalid_input(
    platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    method: str,
    url: str,
    body: Any,
) -> None:
    seeded = seed_two_towns(platform)
    url = url.format(device=seeded["devices_a"][0], channel=seeded["a"][0])
    r = client.request(method, url, headers=admin_headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    # Nothing changed: the device is still enabled and named, the channel's address unset.
    device = client.get(f"/api/v1/devices/{seeded['devices_a'][0]}", headers=admin_headers)
    assert (device.json()["enabled"], device.json()["name"]) == (True, "a-cam-0")
    channel = client.get(f"/api/v1/channels/{seeded['a'][0]}", headers=admin_headers)
    assert channel.json()["address"] is None
