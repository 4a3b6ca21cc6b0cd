"""Customer value: per-customer RFM, lifecycle, predictions and core flags; value runs.

Revision ID: 808f76e53393
Revises: 5c1d2e3f4a5b
Create Date: 2026-11-24 08:37:42.784050
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import disable_tenant_rls, enable_tenant_rls

TABLES = ("customer_values", "value_runs")
revision: str = "808f76e53393"
down_revision: str | None = "5c1d2e3f4a5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "value_runs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("models", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_value_runs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_value_runs")),
    )
    op.create_index(
        "ix_value_runs_tenant_id_computed_at",
        "value_runs",
        ["tenant_id", "computed_at"],
        unique=False,
    )
    op.create_table(
        "customer_values",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(), nullable=False),
        sa.Column("r_score", sa.SmallInteger(), nullable=False),
        sa.Column("f_score", sa.SmallInteger(), nullable=False),
        sa.Column("m_score", sa.SmallInteger(), nullable=False),
        sa.Column("rfm_segment", sa.String(length=32), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("prob_alive", sa.Float(), nullable=True),
        sa.Column("expected_orders_90d", sa.Float(), nullable=True),
        sa.Column("expected_spend", sa.Numeric(), nullable=True),
        sa.Column("predicted_clv", sa.Numeric(), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column("longest_tenure", sa.Boolean(), nullable=False),
        sa.Column("referrer", sa.Boolean(), nullable=False),
        sa.Column("above_average_spender", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_values_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_values_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name=op.f("pk_customer_values")),
    )
    op.create_index(
        "ix_customer_values_tenant_id_lifecycle_stage",
        "customer_values",
        ["tenant_id", "lifecycle_stage"],
        unique=False,
    )
    op.create_index(
        "ix_customer_values_tenant_id_predicted_clv",
        "customer_values",
        ["tenant_id", "predicted_clv"],
        unique=False,
    )
    op.create_index(
        "ix_customer_values_tenant_id_rfm_segment",
        "customer_values",
        ["tenant_id", "rfm_segment"],
        unique=False,
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_index("ix_customer_values_tenant_id_rfm_segment", table_name="customer_values")
    op.drop_index("ix_customer_values_tenant_id_predicted_clv", table_name="customer_values")
    op.drop_index("ix_customer_values_tenant_id_lifecycle_stage", table_name="customer_values")
    op.drop_table("customer_values")
    op.drop_index("ix_value_runs_tenant_id_computed_at", table_name="value_runs")
    op.drop_table("value_runs")
