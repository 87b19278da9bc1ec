from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from xueliang import __version__
from xueliang.api.deps import PlatformDep

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/health", response_model=Health, summary="Liveness and database reachability")
def health(p: PlatformDep) -> Health:
    try:
        with p.db.read() as s:
            s.execute(text("SELECT 1"))
        db = "ok"
    except Exception:  # the answer itself reports the failure
        db = "unreachable"
    return Health(status="ok" if db == "ok" else "degraded", version=__version__, database=db)
