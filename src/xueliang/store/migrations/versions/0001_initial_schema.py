"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 02:41:13.779853
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_target"), ["target"], unique=False)

    op.create_table(
        "orgs",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["parent_pk"], ["orgs.pk"], name=op.f("fk_orgs_parent_pk_orgs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_orgs")),
        sa.UniqueConstraint("code", name=op.f("uq_orgs_code")),
    )
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orgs_parent_pk"), ["parent_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_orgs_path"), ["path"], unique=False)

    op.create_table(
        "roles",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "users",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "devices",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("gb_id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("org_pk", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=256), nullable=True),
        sa.Column("status_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_pk"], ["orgs.pk"], name=op.f("fk_devices_org_pk_orgs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_devices")),
        sa.UniqueConstraint("gb_id", name=op.f("uq_devices_gb_id")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_org_pk"), ["org_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_protocol"), ["protocol"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_status"), ["status"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_tokens_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_pk"), ["user_pk"], unique=False)

    op.create_table(
        "user_roles",
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("role_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_pk"], ["roles.pk"], name=op.f("fk_user_roles_role_pk_roles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_user_roles_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_pk", "role_pk", name=op.f("pk_user_roles")),
    )
    op.create_table(
        "channels",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("gb_id", sa.String(length=20), nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("direction", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=256), nullable=True),
        sa.Column("point_class", sa.Integer(), nullable=False),
        sa.Column("ptz_type", sa.String(length=16), nullable=False),
        sa.Column("stream_url", sa.String(length=1024), nullable=True),
        sa.Column("org_pk", sa.Integer(), nullable=True),
        sa.Column("grid_pk", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=256), nullable=True),
        sa.Column("status_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.pk"],
            name=op.f("fk_channels_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["grid_pk"], ["orgs.pk"], name=op.f("fk_channels_grid_pk_orgs")),
        sa.ForeignKeyConstraint(["org_pk"], ["orgs.pk"], name=op.f("fk_channels_org_pk_orgs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_channels")),
        sa.UniqueConstraint("gb_id", name=op.f("uq_channels_gb_id")),
    )
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channels_device_pk"), ["device_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_channels_name"), ["name"], unique=False)
        batch_op.create_index("ix_channels_org_grid", ["org_pk", "grid_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_channels_status"), ["status"], unique=False)

    op.create_table(
        "user_scopes",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("org_pk", sa.Integer(), nullable=True),
        sa.Column("channel_pk", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_pk"],
            ["channels.pk"],
            name=op.f("fk_user_scopes_channel_pk_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_pk"], ["orgs.pk"], name=op.f("fk_user_scopes_org_pk_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_user_scopes_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_user_scopes")),
        sa.UniqueConstraint(
            "user_pk", "kind", "org_pk", "channel_pk", name=op.f("uq_user_scopes_user_pk")
        ),
    )
    with op.batch_alter_table("user_scopes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_scopes_user_pk"), ["user_pk"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("user_scopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_scopes_user_pk"))

    op.drop_table("user_scopes")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channels_status"))
        batch_op.drop_index("ix_channels_org_grid")
        batch_op.drop_index(batch_op.f("ix_channels_name"))
        batch_op.drop_index(batch_op.f("ix_channels_device_pk"))

    op.drop_table("channels")
    op.drop_table("user_roles")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_user_pk"))

    op.drop_table("tokens")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_status"))
        batch_op.drop_index(batch_op.f("ix_devices_protocol"))
        batch_op.drop_index(batch_op.f("ix_devices_org_pk"))

    op.drop_table("devices")
    op.drop_table("users")
    op.drop_table("roles")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orgs_path"))
        batch_op.drop_index(batch_op.f("ix_orgs_parent_pk"))

    op.drop_table("orgs")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_target"))
        batch_op.drop_index(batch_op.f("ix_audit_records_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_records_action"))

    op.drop_table("audit_records")
    op.drop_table("audit_head")
