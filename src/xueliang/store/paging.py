"""One page of a query and the total it was cut from."""

from __future__ import annotations

from typing import Any, TypeVarTuple

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

Ts = TypeVarTuple("Ts")


def count(s: Session, stmt: Select[*tuple[Any, ...]]) -> int:
    return s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def page_rows(
    s: Session, stmt: Select[*Ts], *, offset: int, limit: int
) -> tuple[list[Row[*Ts]], int]:
    """Rows ``offset … offset+limit`` of an ordered statement, and the total count."""
    return list(s.execute(stmt.offset(offset).limit(limit))), count(s, stmt)
