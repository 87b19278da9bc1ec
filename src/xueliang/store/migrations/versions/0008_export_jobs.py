"""Exports as jobs (device downloads run a while, may end partial or failed); positions by age

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="platform", nullable=False)
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="done", nullable=False)
        )
        batch_op.add_column(sa.Column("progress", sa.Float(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_positions_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_positions_at"))
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
        batch_op.drop_column("error")
        batch_op.drop_column("progress")
        batch_op.drop_column("status")
        batch_op.drop_column("source")
