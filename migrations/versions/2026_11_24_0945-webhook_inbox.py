"""Webhook inbox: tracked-event deliveries accepted at once, applied by the worker.

Revision ID: fc327ae836bc
Revises: 099858bcdc60
Create Date: 2026-11-24 09:45:00.225638
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import app_user, disable_tenant_rls, enable_tenant_rls

revision: str = "fc327ae836bc"
down_revision: str | None = "099858bcdc60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_inbox_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_inbox")),
    )
    enable_tenant_rls("webhook_inbox")
    # The worker finds which tenants have deliveries waiting (ids only), then drains each
    # under that tenant's row-level security.
    op.execute(
        "CREATE POLICY inbox_listing ON webhook_inbox FOR SELECT TO CURRENT_USER USING (true)"
    )
    op.execute(
        """
        CREATE FUNCTION portrait_inbox_tenants() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          SELECT DISTINCT tenant_id FROM webhook_inbox
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION portrait_inbox_tenants() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION portrait_inbox_tenants() TO {app_user()}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS portrait_inbox_tenants()")
    op.execute("DROP POLICY IF EXISTS inbox_listing ON webhook_inbox")
    disable_tenant_rls("webhook_inbox")
    op.drop_table("webhook_inbox")
