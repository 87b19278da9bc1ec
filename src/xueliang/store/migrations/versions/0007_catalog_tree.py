"""GB/T 28181 catalogue trees: devices' business groups, virtual organisations and regions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_nodes",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.pk"],
            name=op.f("fk_catalog_nodes_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_catalog_nodes")),
        sa.UniqueConstraint("device_pk", "node_id", name=op.f("uq_catalog_nodes_device_pk")),
    )
    with op.batch_alter_table("catalog_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_nodes_device_pk"), ["device_pk"], unique=False)
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catalog_parent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("catalog_parent")
    with op.batch_alter_table("catalog_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_nodes_device_pk"))
    op.drop_table("catalog_nodes")
