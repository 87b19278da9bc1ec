"""Users and roles: create, change, list, and keep the built-in roles in place."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from xueliang.access.audit import AuditLog
from xueliang.access.passwords import (
    check_password_policy,
    generate_password,
    hash_password,
)
from xueliang.access.permissions import BUILTIN_ROLES, Permission, parse_permissions
from xueliang.access.principal import Principal
from xueliang.access.schemas import (
    RoleCreate,
    RoleUpdate,
    RoleView,
    ScopeSpec,
    UserCreate,
    UserCreated,
    UserUpdate,
    UserView,
)
from xueliang.core.clock import Clock
from xueliang.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from xueliang.store.db import Database
from xueliang.store.models import Channel, Org, Role, Token, User, UserScope
from xueliang.store.paging import page_rows


def user_view(user: User) -> UserView:
    spec = ScopeSpec(
        all=any(s.kind == "all" for s in user.scopes),
        orgs=[s.org.code for s in user.scopes if s.kind == "org" and s.org is not None],
        channels=[
            s.channel.gb_id for s in user.scopes if s.kind == "channel" and s.channel is not None
        ],
    )
    return UserView(
        id=user.pk,
        username=user.username,
        display_name=user.display_name,
        enabled=user.enabled,
        roles=[r.name for r in user.roles],
        scope=spec,
        locked_until=user.locked_until,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
    )


def role_view(role: Role) -> RoleView:
    return RoleView(
        name=role.name, title=role.title, builtin=role.builtin, permissions=sorted(role.permissions)
    )


def _require_manage(principal: Principal) -> None:
    """Accounts and roles are managed only by principals whose area is everything.

    Someone scoped to one town who could edit accounts could widen their own scope or hand out
    roles beyond their area; so account management is a platform-wide duty.
    """
    principal.require(Permission.USER_MANAGE)
    if not principal.scope.everything:
        raise PermissionDenied("managing accounts and roles needs an area scope of everything")


_USER_LOAD = (
    selectinload(User.roles),
    selectinload(User.scopes).selectinload(UserScope.org),
    selectinload(User.scopes).selectinload(UserScope.channel),
)


class UserService:
    def __init__(
        self, db: Database, audit: AuditLog, clock: Clock, *, min_password_length: int
    ) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._min_password_length = min_password_length

    # --- roles -------------------------------------------------------------------------------

    def ensure_builtin_roles(self, session: Session) -> None:
        existing = {r.name: r for r in session.scalars(select(Role))}
        for name, (title, perms) in BUILTIN_ROLES.items():
            role = existing.get(name)
            if role is None:
                session.add(Role(name=name, title=title, builtin=True, permissions=sorted(perms)))
            else:
                role.builtin, role.title, role.permissions = True, title, sorted(perms)
        session.flush()

    def list_roles(self, principal: Principal) -> list[RoleView]:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            return [role_view(r) for r in s.scalars(select(Role).order_by(Role.pk))]

    def get_role(self, principal: Principal, name: str) -> RoleView:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            return role_view(self._role(s, name))

    def create_role(self, principal: Principal, spec: RoleCreate) -> RoleView:
        _require_manage(principal)
        perms = parse_permissions(spec.permissions)
        with self._db.transaction() as s:
            if s.scalar(select(Role).where(Role.name == spec.name)) is not None:
                raise Conflict(f"role {spec.name!r} already exists")
            role = Role(
                name=spec.name,
                title=spec.title or spec.name,
                builtin=False,
                permissions=sorted(perms),
            )
            s.add(role)
            self._audit.append(
                s,
                principal,
                "role.create",
                target=f"role:{spec.name}",
                detail={"permissions": sorted(perms)},
            )
            s.flush()
            return role_view(role)

    def update_role(self, principal: Principal, name: str, spec: RoleUpdate) -> RoleView:
        _require_manage(principal)
        with self._db.transaction() as s:
            role = self._role(s, name)
            if role.builtin:
                raise Conflict(f"built-in role {name!r} cannot be changed")
            if spec.title is not None:
                role.title = spec.title
            if spec.permissions is not None:
                role.permissions = sorted(parse_permissions(spec.permissions))
            self._audit.append(
                s,
                principal,
                "role.update",
                target=f"role:{name}",
                detail=spec.model_dump(exclude_none=True),
            )
            return role_view(role)

    def delete_role(self, principal: Principal, name: str) -> None:
        _require_manage(principal)
        with self._db.transaction() as s:
            role = self._role(s, name)
            if role.builtin:
                raise Conflict(f"built-in role {name!r} cannot be deleted")
            holders = s.scalar(
                select(func.count()).select_from(User).where(User.roles.any(Role.pk == role.pk))
            )
            if holders:
                raise Conflict(f"role {name!r} is held by {holders} user(s)")
            s.delete(role)
            self._audit.append(s, principal, "role.delete", target=f"role:{name}")

    @staticmethod
    def _role(s: Session, name: str) -> Role:
        role = s.scalar(select(Role).where(Role.name == name))
        if role is None:
            raise NotFound(f"role {name!r} not found")
        return role

    # --- users -------------------------------------------------------------------------------

    def _check_password(self, password: str) -> None:
        check_password_policy(password, min_length=self._min_password_length)

    def _roles(self, s: Session, names: list[str]) -> list[Role]:
        roles = list(s.scalars(select(Role).where(Role.name.in_(names))))
        missing = sorted(set(names) - {r.name for r in roles})
        if missing:
            raise InvalidInput(f"unknown role(s): {', '.join(missing)}")
        return roles

    def _scopes(self, s: Session, spec: ScopeSpec) -> list[UserScope]:
        if spec.all:
            return [UserScope(kind="all")]
        scopes: list[UserScope] = []
        if spec.orgs:
            orgs = {o.code: o for o in s.scalars(select(Org).where(Org.code.in_(spec.orgs)))}
            missing = sorted(set(spec.orgs) - orgs.keys())
            if missing:
                raise InvalidInput(f"unknown organisation(s) in scope: {', '.join(missing)}")
            scopes += [UserScope(kind="org", org_pk=orgs[c].pk) for c in dict.fromkeys(spec.orgs)]
        if spec.channels:
            chans = {
                c.gb_id: c
                for c in s.scalars(select(Channel).where(Channel.gb_id.in_(spec.channels)))
            }
            missing = sorted(set(spec.channels) - chans.keys())
            if missing:
                raise InvalidInput(f"unknown channel(s) in scope: {', '.join(missing)}")
            scopes += [
                UserScope(kind="channel", channel_pk=chans[c].pk)
                for c in dict.fromkeys(spec.channels)
            ]
        return scopes

    def create_user(self, principal: Principal, spec: UserCreate) -> UserCreated:
        _require_manage(principal)
        generated = None
        password = spec.password
        if password is None:
            password = generated = generate_password()
        self._check_password(password)
        with self._db.transaction() as s:
            if s.scalar(select(User).where(User.username == spec.username)) is not None:
                raise Conflict(f"user {spec.username!r} already exists")
            user = User(
                username=spec.username,
                display_name=spec.display_name,
                password_hash=hash_password(password),
                password_changed_at=self._clock.now(),
                created_at=self._clock.now(),
                roles=self._roles(s, spec.roles),
                scopes=self._scopes(s, spec.scope),
            )
            s.add(user)
            s.flush()
            self._audit.append(
                s,
                principal,
                "user.create",
                target=f"user:{spec.username}",
                detail={"roles": spec.roles, "scope": spec.scope.model_dump()},
            )
            view = user_view(self._load(s, user.pk))
        return UserCreated(**view.model_dump(), generated_password=generated)

    def _load(self, s: Session, pk: int) -> User:
        user = s.scalar(select(User).where(User.pk == pk).options(*_USER_LOAD))
        if user is None:
            raise NotFound(f"user {pk} not found")
        return user

    def _by_name(self, s: Session, username: str) -> User:
        user = s.scalar(select(User).where(User.username == username).options(*_USER_LOAD))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user

    def get_user(self, principal: Principal, pk: int) -> UserView:
        if principal.user_pk != pk:
            _require_manage(principal)
        with self._db.read() as s:
            return user_view(self._load(s, pk))

    def get_user_by_name(self, principal: Principal, username: str) -> UserView:
        _require_manage(principal)
        with self._db.read() as s:
            return user_view(self._by_name(s, username))

    def list_users(
        self, principal: Principal, *, q: str | None, offset: int, limit: int
    ) -> tuple[list[UserView], int]:
        _require_manage(principal)
        stmt = select(User)
        if q:
            like = f"%{q}%"
            stmt = stmt.where(User.username.ilike(like) | User.display_name.ilike(like))
        with self._db.read() as s:
            rows, total = page_rows(
                s, stmt.options(*_USER_LOAD).order_by(User.pk), offset=offset, limit=limit
            )
            return [user_view(u) for (u,) in rows], total

    def update_user(self, principal: Principal, pk: int, spec: UserUpdate) -> UserView:
        _require_manage(principal)
        if spec.password is not None:
            self._check_password(spec.password)
        with self._db.transaction() as s:
            user = self._load(s, pk)
            if pk == principal.user_pk and spec.enabled is False:
                raise Conflict("you cannot disable your own account")
            if spec.display_name is not None:
                user.display_name = spec.display_name
            if spec.enabled is not None:
                user.enabled = spec.enabled
            if spec.roles is not None:
                user.roles = self._roles(s, spec.roles)
            if spec.scope is not None:
                user.scopes.clear()
                s.flush()
                user.scopes.extend(self._scopes(s, spec.scope))
            if spec.unlock:
                user.locked_until, user.failed_logins = None, 0
            changed = spec.model_dump(exclude_none=True, exclude={"password"})
            if spec.password is not None:
                self._set_password(s, user, spec.password)
                changed["password"] = "changed"  # noqa: S105
            if spec.enabled is False:
                self._revoke_sessions(s, user.pk)
            self._audit.append(
                s, principal, "user.update", target=f"user:{user.username}", detail=changed
            )
            s.flush()
            return user_view(self._load(s, pk))

    def delete_user(self, principal: Principal, pk: int) -> None:
        _require_manage(principal)
        with self._db.transaction() as s:
            user = self._load(s, pk)
            if pk == principal.user_pk:
                raise Conflict("you cannot delete your own account")
            s.delete(user)
            self._audit.append(s, principal, "user.delete", target=f"user:{user.username}")

    def _set_password(self, s: Session, user: User, password: str) -> None:
        user.password_hash = hash_password(password)
        user.password_changed_at = self._clock.now()
        user.failed_logins, user.locked_until = 0, None
        self._revoke_sessions(s, user.pk)

    def _revoke_sessions(self, s: Session, user_pk: int) -> None:
        s.execute(delete(Token).where(Token.user_pk == user_pk, Token.kind == "session"))

    def set_password(self, principal: Principal, username: str, password: str) -> None:
        """Set a password by name (CLI ``user passwd``, and the admin at ``init``)."""
        _require_manage(principal)
        self._check_password(password)
        with self._db.transaction() as s:
            user = self._by_name(s, username)
            self._set_password(s, user, password)
            self._audit.append(
                s, principal, "user.password", target=f"user:{username}", detail={"by": "admin"}
            )

    def bootstrap_admin(self, password: str) -> None:
        """Create the ``admin`` account at ``init``; a no-op when it exists."""
        self._check_password(password)
        with self._db.transaction() as s:
            self.ensure_builtin_roles(s)
            if s.scalar(select(User).where(User.username == "admin")) is not None:
                return
            user = User(
                username="admin",
                display_name="系统管理员",
                password_hash=hash_password(password),
                password_changed_at=self._clock.now(),
                created_at=self._clock.now(),
                roles=self._roles(s, ["admin"]),
                scopes=[UserScope(kind="all")],
            )
            s.add(user)
            self._audit.append(s, "system", "user.create", target="user:admin", source="init")
