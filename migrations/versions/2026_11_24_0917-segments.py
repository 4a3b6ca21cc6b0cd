"""Segments and their membership history.

Revision ID: 9093594212fb
Revises: 7e3f4a5b6c7d
Create Date: 2026-11-24 09:17:47.881572
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import disable_tenant_rls, enable_tenant_rls

TABLES = ("segments", "segment_members")
revision: str = "9093594212fb"
down_revision: str | None = "7e3f4a5b6c7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("refresh_every_minutes", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_segments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_segments")),
    )
    op.create_index("uq_segments_tenant_id_slug", "segments", ["tenant_id", "slug"], unique=True)
    op.create_table(
        "segment_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_segment_members_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["segments.tenant_id", "segments.id"],
            name=op.f("fk_segment_members_tenant_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_segment_members_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "segment_id", "customer_id", "entered_at", name=op.f("pk_segment_members")
        ),
    )
    op.create_index(
        "ix_segment_members_tenant_id_customer_id",
        "segment_members",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_index(
        "uq_segment_members_tenant_id_segment_id_customer_id_open",
        "segment_members",
        ["tenant_id", "segment_id", "customer_id"],
        unique=True,
        postgresql_where=sa.text("left_at IS NULL"),
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_index(
        "uq_segment_members_tenant_id_segment_id_customer_id_open",
        table_name="segment_members",
        postgresql_where=sa.text("left_at IS NULL"),
    )
    op.drop_index("ix_segment_members_tenant_id_customer_id", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_index("uq_segments_tenant_id_slug", table_name="segments")
    op.drop_table("segments")
