"""Operations: idempotency keys, the audit log, outbound webhooks, webhook secret rotation and
per-key rate limits.

Revision ID: 0b5e1d2c9a71
Revises: 8f3c2a9d1e07
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import app_user, disable_tenant_rls, enable_tenant_rls

TABLES = ("idempotency_keys", "audit_log", "webhook_endpoints", "outbound_deliveries")
revision: str = "0b5e1d2c9a71"
down_revision: str | None = "8f3c2a9d1e07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("tenants", sa.Column("previous_webhook_secret", sa.Text(), nullable=True))
    op.add_column(
        "tenants",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("api_keys", sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("body_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _now("created_at"),
        _tenant_fk("idempotency_keys"),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_tenant_id_created_at",
        "idempotency_keys",
        ["tenant_id", "created_at"],
    )
    op.create_table(
        "audit_log",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        _now("at"),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        _tenant_fk("audit_log"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("events", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        _tenant_fk("webhook_endpoints"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "outbound_deliveries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _now("next_attempt_at"),
        sa.Column("last_status_code", sa.SmallInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        _now("created_at"),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
            name=op.f("fk_outbound_deliveries_tenant_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        _tenant_fk("outbound_deliveries"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_outbound_deliveries")),
    )
    op.create_index(
        "ix_outbound_deliveries_tenant_id_endpoint_id_id",
        "outbound_deliveries",
        ["tenant_id", "endpoint_id", "id"],
    )
    op.create_index(
        "ix_outbound_deliveries_tenant_id_next_attempt_at_pending",
        "outbound_deliveries",
        ["tenant_id", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    for table in TABLES:
        enable_tenant_rls(table)
    # Two owner-run functions span tenants, ids and counts only: the worker's purge of expired
    # idempotency keys, and the list of tenants with outbound deliveries due.
    op.execute("CREATE POLICY key_purge ON idempotency_keys TO CURRENT_USER USING (true)")
    op.execute(
        """
        CREATE FUNCTION portrait_purge_idempotency_keys(keep_hours integer) RETURNS bigint
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
          WITH gone AS (
            DELETE FROM idempotency_keys
            WHERE created_at < now() - make_interval(hours => greatest(keep_hours, 24))
            RETURNING 1
          )
          SELECT count(*) FROM gone
        $$
        """
    )
    op.execute(
        "CREATE POLICY due_listing ON outbound_deliveries FOR SELECT TO CURRENT_USER USING (true)"
    )
    op.execute(
        """
        CREATE FUNCTION portrait_outbound_tenants() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          SELECT DISTINCT tenant_id FROM outbound_deliveries
          WHERE status = 'pending' AND next_attempt_at <= now()
        $$
        """
    )
    for fn in ("portrait_purge_idempotency_keys(integer)", "portrait_outbound_tenants()"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {app_user()}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS portrait_outbound_tenants()")
    op.execute("DROP FUNCTION IF EXISTS portrait_purge_idempotency_keys(integer)")
    op.execute("DROP POLICY IF EXISTS due_listing ON outbound_deliveries")
    op.execute("DROP POLICY IF EXISTS key_purge ON idempotency_keys")
    for table in reversed(TABLES):
        disable_tenant_rls(table)
    op.drop_index(
        "ix_outbound_deliveries_tenant_id_next_attempt_at_pending",
        table_name="outbound_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_outbound_deliveries_tenant_id_endpoint_id_id", table_name="outbound_deliveries"
    )
    op.drop_table("outbound_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("audit_log")
    op.drop_index("ix_idempotency_keys_tenant_id_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_column("api_keys", "rate_limit_per_minute")
    op.drop_column("tenants", "previous_secret_expires_at")
    op.drop_column("tenants", "previous_webhook_secret")
