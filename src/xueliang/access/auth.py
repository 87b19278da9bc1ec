"""Authentication: login with lockout, bearer tokens with expiry, API keys for machines."""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from xueliang.access.audit import AuditLog
from xueliang.access.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.access.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyView, LoginResult
from xueliang.access.scope import Scope
from xueliang.access.users import user_view
from xueliang.core.clock import Clock
from xueliang.core.errors import AccountLocked, AuthenticationFailed, NotFound
from xueliang.store.db import Database
from xueliang.store.models import Token, User, UserScope

SESSION_PREFIX = "xls_"
API_KEY_PREFIX = "xlk_"
# A token's last use is written at most this often, not on every request.
_TOUCH_INTERVAL = timedelta(seconds=60)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    max_failed_logins: int
    lockout_seconds: int
    token_ttl_minutes: int
    min_password_length: int


def principal_for(user: User, *, source: str, via: str) -> Principal:
    perms: set[Permission] = set()
    for role in user.roles:
        perms.update(Permission(p) for p in role.permissions if p in Permission._value2member_map_)
    everything = any(s.kind == "all" for s in user.scopes)
    scope = Scope(
        everything=everything,
        org_paths=tuple(s.org.path for s in user.scopes if s.kind == "org" and s.org is not None),
        channel_pks=frozenset(s.channel_pk for s in user.scopes if s.channel_pk is not None),
    )
    return Principal(
        username=user.username,
        user_pk=user.pk,
        permissions=frozenset(perms),
        scope=scope,
        roles=tuple(r.name for r in user.roles),
        source=source,
        via=via,
    )


_PRINCIPAL_LOAD = (
    selectinload(User.roles),
    selectinload(User.scopes).selectinload(UserScope.org),
    selectinload(User.scopes).selectinload(UserScope.channel),
)


class AuthService:
    def __init__(self, db: Database, audit: AuditLog, clock: Clock, policy: AuthPolicy) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._policy = policy

    def login(self, username: str, password: str, *, source: str) -> LoginResult:
        """Check a password and hand out a session token.

        Failures are committed (counter, lockout, audit) before the error is raised, so a
        failed attempt is never rolled back with the error.
        """
        now = self._clock.now()
        failure: Exception | None = None
        result: LoginResult | None = None
        with self._db.transaction() as s:
            user = s.scalar(select(User).where(User.username == username).options(*_PRINCIPAL_LOAD))
            target = f"user:{username[:64]}"
            if user is not None and user.locked_until is not None and user.locked_until > now:
                retry = max(1, math.ceil((user.locked_until - now).total_seconds()))
                self._audit.append(
                    s, username[:64], "auth.login", target=target, outcome="locked", source=source
                )
                failure = AccountLocked(
                    f"account is locked after repeated failed logins; retry in {retry} s",
                    retry_after=retry,
                )
            elif user is None or not verify_password(user.password_hash, password):
                outcome = "failed"
                if user is not None:
                    user.failed_logins += 1
                    if user.failed_logins >= self._policy.max_failed_logins:
                        user.locked_until = now + timedelta(seconds=self._policy.lockout_seconds)
                        user.failed_logins = 0
                        outcome = "locked"
                self._audit.append(
                    s, username[:64], "auth.login", target=target, outcome=outcome, source=source
                )
                if outcome == "locked":
                    failure = AccountLocked(
                        "too many failed logins: the account is locked for "
                        f"{self._policy.lockout_seconds} s",
                        retry_after=self._policy.lockout_seconds,
                    )
                else:
                    failure = AuthenticationFailed("wrong username or password")
            elif not user.enabled:
                self._audit.append(
                    s, username, "auth.login", target=target, outcome="disabled", source=source
                )
                failure = AuthenticationFailed("wrong username or password")
            else:
                user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
                if needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                token = SESSION_PREFIX + secrets.token_urlsafe(32)
                expires = now + timedelta(minutes=self._policy.token_ttl_minutes)
                s.add(
                    Token(
                        user_pk=user.pk,
                        kind="session",
                        name="login",
                        token_hash=_token_hash(token),
                        prefix=token[:10],
                        created_at=now,
                        expires_at=expires,
                    )
                )
                self._audit.append(s, username, "auth.login", target=target, source=source)
                result = LoginResult(access_token=token, expires_at=expires, user=user_view(user))
        if failure is not None:
            raise failure
        assert result is not None
        return result

    def authenticate(self, token: str, *, source: str) -> Principal:
        """The principal behind a bearer token, or AuthenticationFailed."""
        now = self._clock.now()
        with self._db.read() as s:
            row = s.scalar(
                select(Token)
                .where(Token.token_hash == _token_hash(token))
                .options(selectinload(Token.user).options(*_PRINCIPAL_LOAD))
            )
            if row is None or row.revoked_at is not None:
                raise AuthenticationFailed("invalid or revoked token")
            if row.expires_at is not None and row.expires_at <= now:
                raise AuthenticationFailed("token expired; log in again")
            user = row.user
            if not user.enabled:
                raise AuthenticationFailed("account disabled")
            principal = principal_for(user, source=source, via=row.kind)
            stale = row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL
            token_pk = row.pk
        if stale:
            with self._db.transaction() as s:
                tok = s.get(Token, token_pk)
                if tok is not None:
                    tok.last_used_at = now
        return principal

    def logout(self, principal: Principal, token: str) -> None:
        with self._db.transaction() as s:
            row = s.scalar(select(Token).where(Token.token_hash == _token_hash(token)))
            if row is not None and row.kind == "session":
                s.delete(row)
            self._audit.append(s, principal, "auth.logout", target=f"user:{principal.username}")

    def change_own_password(self, principal: Principal, old: str, new: str) -> None:
        check_password_policy(new, min_length=self._policy.min_password_length)
        with self._db.transaction() as s:
            user = s.get(User, principal.user_pk) if principal.user_pk is not None else None
            if user is None or not verify_password(user.password_hash, old):
                failure = AuthenticationFailed("current password is wrong")
                self._audit.append(
                    s,
                    principal,
                    "user.password",
                    target=f"user:{principal.username}",
                    outcome="failed",
                )
            else:
                failure = None
                user.password_hash = hash_password(new)
                user.password_changed_at = self._clock.now()
                self._audit.append(
                    s,
                    principal,
                    "user.password",
                    target=f"user:{principal.username}",
                    detail={"by": "self"},
                )
        if failure is not None:
            raise failure

    # --- API keys ----------------------------------------------------------------------------

    @staticmethod
    def _key_view(t: Token) -> ApiKeyView:
        return ApiKeyView(
            id=t.pk,
            name=t.name,
            prefix=t.prefix,
            created_at=t.created_at,
            expires_at=t.expires_at,
            last_used_at=t.last_used_at,
            revoked=t.revoked_at is not None,
        )

    def create_api_key(self, principal: Principal, spec: ApiKeyCreate) -> ApiKeyCreated:
        if principal.user_pk is None:
            raise AuthenticationFailed("API keys belong to a user account")
        now = self._clock.now()
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        expires = now + timedelta(days=spec.expires_days) if spec.expires_days else None
        with self._db.transaction() as s:
            row = Token(
                user_pk=principal.user_pk,
                kind="api_key",
                name=spec.name,
                token_hash=_token_hash(key),
                prefix=key[:10],
                created_at=now,
                expires_at=expires,
            )
            s.add(row)
            s.flush()
            self._audit.append(
                s, principal, "apikey.create", target=f"apikey:{row.pk}", detail={"name": spec.name}
            )
            return ApiKeyCreated(**self._key_view(row).model_dump(), key=key)

    def list_api_keys(self, principal: Principal) -> list[ApiKeyView]:
        with self._db.read() as s:
            rows = s.scalars(
                select(Token)
                .where(Token.user_pk == principal.user_pk, Token.kind == "api_key")
                .order_by(Token.pk)
            )
            return [self._key_view(t) for t in rows]

    def revoke_api_key(self, principal: Principal, key_id: int) -> None:
        with self._db.transaction() as s:
            row = self._own_key(s, principal, key_id)
            row.revoked_at = self._clock.now()
            self._audit.append(s, principal, "apikey.revoke", target=f"apikey:{key_id}")

    @staticmethod
    def _own_key(s: Session, principal: Principal, key_id: int) -> Token:
        row = s.get(Token, key_id)
        if row is None or row.kind != "api_key" or row.user_pk != principal.user_pk:
            raise NotFound(f"API key {key_id} not found")
        return row
