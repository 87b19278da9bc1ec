"""Data classes at the access boundary: what services take and hand back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from xueliang.core.text import reject_nul

Username = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{2,64}$", strip_whitespace=True)
]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # Every string field: PostgreSQL text cannot hold NUL (see xueliang.core.text).
        return reject_nul(value)


class ScopeSpec(_In):
    """Where a user's permissions apply. ``all`` wins over the lists."""

    all: bool = False
    orgs: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=1000)
    channels: list[Annotated[str, Field(max_length=20)]] = Field(
        default_factory=list, max_length=10000
    )


class UserCreate(_In):
    username: Username
    password: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Left out: a password is generated and returned once."
    )
    display_name: Annotated[str, Field(max_length=128)] = ""
    roles: list[RoleName] = Field(default_factory=lambda: ["viewer"], max_length=32)
    scope: ScopeSpec = Field(default_factory=ScopeSpec)


class UserUpdate(_In):
    display_name: Annotated[str, Field(max_length=128)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    enabled: bool | None = None
    roles: list[RoleName] | None = Field(default=None, max_length=32)
    scope: ScopeSpec | None = None
    unlock: bool = False


class UserView(BaseModel):
    id: int
    username: str
    display_name: str
    enabled: bool
    roles: list[str]
    scope: ScopeSpec
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime


class UserCreated(UserView):
    generated_password: str | None = Field(
        default=None, description="Only when the platform generated it; shown this once."
    )


class RoleCreate(_In):
    name: RoleName
    title: Annotated[str, Field(max_length=128)] = ""
    permissions: list[Annotated[str, Field(max_length=64)]] = Field(max_length=64)


class RoleUpdate(_In):
    title: Annotated[str, Field(max_length=128)] | None = None
    permissions: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=64
    )


class RoleView(BaseModel):
    name: str
    title: str
    builtin: bool
    permissions: list[str]


class LoginResult(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_at: datetime
    user: UserView


class ApiKeyCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class ApiKeyView(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="The key itself; shown this once and never again.")
