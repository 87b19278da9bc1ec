"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from xueliang.app import Platform
from xueliang.store import migrate
from xueliang.store.models import Base


def test_models_and_migrations_agree(platform: Platform) -> None:
    with platform.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_database_is_at_head_and_upgrade_is_idempotent(platform: Platform) -> None:
    assert migrate.is_current(platform.db)
    migrate.upgrade(platform.db)
    assert migrate.is_current(platform.db)
