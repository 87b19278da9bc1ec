"""events (alarms, later analytics) and positions of moving sources

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=20), nullable=True),
        sa.Column("device_id", sa.String(length=20), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=True),
        sa.Column("description", sa.String(length=512), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_channel_occurred", ["channel_id", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_events_kind_occurred", ["kind", "occurred_at"], unique=False)
        batch_op.create_index("ix_events_occurred", ["occurred_at"], unique=False)
    op.create_table(
        "positions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("direction", sa.Float(), nullable=True),
        sa.Column("altitude", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_positions")),
    )
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.create_index("ix_positions_channel_at", ["channel_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index("ix_positions_channel_at")
    op.drop_table("positions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_occurred")
        batch_op.drop_index("ix_events_kind_occurred")
        batch_op.drop_index("ix_events_channel_occurred")
    op.drop_table("events")
