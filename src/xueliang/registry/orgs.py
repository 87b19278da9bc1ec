"""The organisation tree: administrative areas down to grids, plus virtual organisations."""

from __future__ import annotations

from sqlalchemy import String, delete, func, literal, select, update
from sqlalchemy.orm import Session, aliased

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from xueliang.registry.common import org_by_code, require_org_in_scope
from xueliang.registry.schemas import LEVEL_DEPTH, OrgCreate, OrgUpdate, OrgView
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Org, UserScope
from xueliang.store.paging import page_rows


def org_view(org: Org, parent_code: str | None) -> OrgView:
    return OrgView(
        id=org.code, name=org.name, level=org.level, parent=parent_code, created_at=org.created_at
    )


def _check_levels(level: str, parent: Org | None) -> None:
    if parent is None or level == "virtual" or parent.level == "virtual":
        return
    if LEVEL_DEPTH[level] <= LEVEL_DEPTH[parent.level]:
        raise InvalidInput(f"a {level} cannot sit under a {parent.level}")


class OrgService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def list(
        self,
        principal: Principal,
        *,
        parent: str | None = None,
        level: str | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[OrgView], int]:
        principal.require(Permission.REGISTRY_READ)
        parent_org = aliased(Org)
        stmt = (
            select(Org, parent_org.code)
            .outerjoin(parent_org, Org.parent_pk == parent_org.pk)
            .where(principal.scope.org_filter())
        )
        if parent is not None:
            stmt = stmt.where(parent_org.code == parent)
        if level is not None:
            stmt = stmt.where(Org.level == level)
        if q:
            stmt = stmt.where(
                Org.name.contains(q, autoescape=True) | Org.code.startswith(q, autoescape=True)
            )
        with self._db.read() as s:
            rows, total = page_rows(
                s, stmt.order_by(Org.path, Org.code), offset=offset, limit=limit
            )
            return [org_view(org, pcode) for org, pcode in rows], total

    def _visible(self, s: Session, principal: Principal, code: str) -> Org:
        org = s.scalar(select(Org).where(Org.code == code))
        if org is None:
            raise NotFound(f"organisation {code} not found")
        if not principal.scope.covers_path(org.path):
            raise PermissionDenied(f"organisation {code} is outside your area")
        return org

    def get(self, principal: Principal, code: str) -> OrgView:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            org = self._visible(s, principal, code)
            return org_view(org, org.parent.code if org.parent else None)

    def create(self, principal: Principal, spec: OrgCreate) -> OrgView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            parent = org_by_code(s, spec.parent) if spec.parent else None
            require_org_in_scope(principal, parent)
            _check_levels(spec.level, parent)
            if s.scalar(select(Org.pk).where(Org.code == spec.code)) is not None:
                raise Conflict(f"organisation {spec.code} already exists")
            org = Org(code=spec.code, name=spec.name, level=spec.level, parent=parent, path="")
            s.add(org)
            s.flush()
            org.path = f"{parent.path if parent else '/'}{org.pk}/"
            self._audit.append(
                s,
                principal,
                "org.create",
                target=f"org:{spec.code}",
                detail=spec.model_dump(exclude_none=True),
            )
            return org_view(org, spec.parent)

    def update(self, principal: Principal, code: str, spec: OrgUpdate) -> OrgView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            org = self._visible(s, principal, code)
            if spec.name is not None:
                org.name = spec.name
            if spec.parent is not None and (org.parent is None or org.parent.code != spec.parent):
                self._move(s, principal, org, org_by_code(s, spec.parent))
            self._audit.append(
                s,
                principal,
                "org.update",
                target=f"org:{code}",
                detail=spec.model_dump(exclude_none=True),
            )
            return org_view(org, org.parent.code if org.parent else None)

    def _move(self, s: Session, principal: Principal, org: Org, parent: Org) -> None:
        require_org_in_scope(principal, parent)
        if parent.path.startswith(org.path):
            raise InvalidInput("an organisation cannot move under itself")
        _check_levels(org.level, parent)
        old, new = org.path, f"{parent.path}{org.pk}/"
        # Rewrite the whole subtree's paths in one statement.
        s.execute(
            update(Org)
            .where(Org.path.startswith(old))
            .values(path=literal(new, String) + func.substr(Org.path, len(old) + 1))
            .execution_options(synchronize_session=False)
        )
        s.expire_all()
        org.parent_pk = parent.pk

    def delete(self, principal: Principal, code: str) -> None:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            org = self._visible(s, principal, code)
            if s.scalar(select(func.count()).select_from(Org).where(Org.parent_pk == org.pk)):
                raise Conflict(f"organisation {code} still has sub-organisations")
            used = (
                s.scalar(
                    select(func.count())
                    .select_from(Channel)
                    .where((Channel.org_pk == org.pk) | (Channel.grid_pk == org.pk))
                )
                or 0
            ) + (
                s.scalar(select(func.count()).select_from(Device).where(Device.org_pk == org.pk))
                or 0
            )
            if used:
                raise Conflict(f"organisation {code} still holds {used} device(s) or channel(s)")
            s.execute(delete(UserScope).where(UserScope.org_pk == org.pk))
            s.delete(org)
            self._audit.append(s, principal, "org.delete", target=f"org:{code}")
