"""Area scope: the organisation subtrees and single channels where a principal's permissions apply.

The scope turns into SQL filters so that every list is narrowed in the database, and into
checks for single objects. Every registry query goes through here; there is no second path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from xueliang.store.models import Channel, Device, Org


@dataclass(frozen=True, slots=True)
class Scope:
    everything: bool = False
    # Materialised paths of the organisation roots the scope covers ("/1/7/").
    org_paths: tuple[str, ...] = ()
    channel_pks: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def all(cls) -> Scope:
        return cls(everything=True)

    @property
    def empty(self) -> bool:
        return not self.everything and not self.org_paths and not self.channel_pks

    def covers_path(self, path: str | None) -> bool:
        if self.everything:
            return True
        return path is not None and any(path.startswith(root) for root in self.org_paths)

    # --- SQL filters -------------------------------------------------------------------------

    def _org_pk_in_scope(self, column: InstrumentedAttribute[int | None]) -> ColumnElement[bool]:
        if not self.org_paths:
            return false()
        subtree = select(Org.pk).where(or_(*(Org.path.startswith(p) for p in self.org_paths)))
        # Never NULL (an unplaced object is simply not in scope), so that ~filter means "outside".
        return and_(column.is_not(None), column.in_(subtree))

    def org_filter(self) -> ColumnElement[bool]:
        """Organisations visible: the covered subtrees (single-channel grants show no tree)."""
        if self.everything:
            return true()
        if not self.org_paths:
            return false()
        return or_(*(Org.path.startswith(p) for p in self.org_paths))

    def channel_filter(self) -> ColumnElement[bool]:
        if self.everything:
            return true()
        clauses: list[ColumnElement[bool]] = []
        if self.org_paths:
            clauses.append(self._org_pk_in_scope(Channel.org_pk))
            clauses.append(self._org_pk_in_scope(Channel.grid_pk))
        if self.channel_pks:
            clauses.append(Channel.pk.in_(sorted(self.channel_pks)))
        return or_(*clauses) if clauses else false()

    def device_filter(self) -> ColumnElement[bool]:
        """A device is visible when it sits in scope or any of its channels does."""
        if self.everything:
            return true()
        if self.empty:
            return false()
        has_channel = exists().where(and_(Channel.device_pk == Device.pk, self.channel_filter()))
        return or_(self._org_pk_in_scope(Device.org_pk), has_channel)
