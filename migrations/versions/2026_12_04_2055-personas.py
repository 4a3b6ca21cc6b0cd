"""Personas and their versions (each generation run, with the drift since the one before).

Revision ID: 7a3c9e1d5b20
Revises: d44de1fe2428
Create Date: 2026-12-04 20:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "7a3c9e1d5b20"
down_revision: str | None = "d44de1fe2428"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = postgresql.JSONB(astext_type=sa.Text())


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "personas",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("segment_name", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tagline", sa.Text(), nullable=False),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("overrides", JSON, nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("covered_customers", sa.Integer(), nullable=False),
        sa.Column(
            "generated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_personas_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_personas")),
    )
    op.create_index(
        "uq_personas_tenant_id_segment_id", "personas", ["tenant_id", "segment_id"], unique=True
    )
    enable_tenant_rls("personas")
    op.create_table(
        "persona_versions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("persona_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("snapshot", JSON, nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("covered_customers", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "persona_id"],
            ["personas.tenant_id", "personas.id"],
            name=op.f("fk_persona_versions_tenant_id_personas"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_persona_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_persona_versions")),
    )
    op.create_index(
        "uq_persona_versions_tenant_id_persona_id_version",
        "persona_versions",
        ["tenant_id", "persona_id", "version"],
        unique=True,
    )
    enable_tenant_rls("persona_versions")


def downgrade() -> None:
    disable_tenant_rls("persona_versions")
    op.drop_table("persona_versions")
    disable_tenant_rls("personas")
    op.drop_table("personas")
