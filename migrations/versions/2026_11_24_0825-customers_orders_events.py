"""Customers, orders with items, events, identities, tombstones, webhook deliveries, imports.

Revision ID: 84a0559cab09
Revises: 54a252ab7eff
Create Date: 2026-11-24 08:25:10.021862
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import disable_tenant_rls, enable_tenant_rls

TABLES = (
    "customers",
    "tombstones",
    "orders",
    "order_items",
    "events",
    "identities",
    "webhook_deliveries",
    "import_chunks",
)
revision: str = "84a0559cab09"
down_revision: str | None = "54a252ab7eff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("accepts_marketing", sa.Boolean(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("age_band", sa.String(length=16), nullable=True),
        sa.Column("gender", sa.String(length=32), nullable=True),
        sa.Column("marital_status", sa.String(length=32), nullable=True),
        sa.Column("children", sa.Integer(), nullable=True),
        sa.Column("income_band", sa.String(length=32), nullable=True),
        sa.Column("occupation", sa.String(length=200), nullable=True),
        sa.Column("industry", sa.String(length=200), nullable=True),
        sa.Column("job_level", sa.String(length=32), nullable=True),
        sa.Column("education_level", sa.String(length=32), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("city", sa.String(length=200), nullable=True),
        sa.Column("postcode", sa.String(length=32), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("interests", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("values", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("lifestyle", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("motivations", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("preferred_channel", sa.String(length=32), nullable=True),
        sa.Column("referred_by", sa.String(length=255), nullable=True),
        sa.Column("traits", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fact_sources", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_delivery_id", sa.String(length=255), nullable=True),
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
        sa.Column("order_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_spent", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("average_order_value", sa.Numeric(), nullable=True),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refunded_amount", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("top_categories", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("order_channel", sa.String(length=32), nullable=True),
        sa.Column("event_channel", sa.String(length=32), nullable=True),
        sa.Column("preferred_device", sa.String(length=32), nullable=True),
        sa.Column("referral_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("stats_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_customers")),
    )
    op.create_index(
        "ix_customers_tenant_id_email", "customers", ["tenant_id", "email"], unique=False
    )
    op.create_index(
        "ix_customers_tenant_id_last_order_at",
        "customers",
        ["tenant_id", "last_order_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_customers_tenant_id_referred_by",
        "customers",
        ["tenant_id", "referred_by"],
        unique=False,
    )
    op.create_index(
        "ix_customers_tenant_id_total_spent",
        "customers",
        ["tenant_id", "total_spent", "id"],
        unique=False,
    )
    op.create_index(
        "uq_customers_tenant_id_external_id", "customers", ["tenant_id", "external_id"], unique=True
    )
    op.create_table(
        "tombstones",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tombstones_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "kind", "external_id_hash", name=op.f("pk_tombstones")
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "source", "delivery_id", name=op.f("pk_webhook_deliveries")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_tenant_id_received_at",
        "webhook_deliveries",
        ["tenant_id", "received_at"],
        unique=False,
    )
    op.create_table(
        "events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("anonymous_id", sa.String(length=255), nullable=True),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("device", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_events_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_tenant_id_anonymous_id", "events", ["tenant_id", "anonymous_id"], unique=False
    )
    op.create_index(
        "ix_events_tenant_id_customer_id_occurred_at",
        "events",
        ["tenant_id", "customer_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_events_tenant_id_name_occurred_at",
        "events",
        ["tenant_id", "name", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "uq_events_tenant_id_external_id", "events", ["tenant_id", "external_id"], unique=True
    )
    op.create_table(
        "identities",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("anonymous_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_identities_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_identities_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "anonymous_id", name=op.f("pk_identities")),
    )
    op.create_table(
        "import_chunks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "job_id"],
            ["jobs.tenant_id", "jobs.id"],
            name=op.f("fk_import_chunks_tenant_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_import_chunks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "job_id", "seq", name=op.f("pk_import_chunks")),
    )
    op.create_table(
        "orders",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_delivery_id", sa.String(length=255), nullable=True),
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
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_orders_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_orders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_orders")),
    )
    op.create_index(
        "ix_orders_tenant_id_customer_id_placed_at",
        "orders",
        ["tenant_id", "customer_id", "placed_at"],
        unique=False,
    )
    op.create_index(
        "ix_orders_tenant_id_placed_at", "orders", ["tenant_id", "placed_at", "id"], unique=False
    )
    op.create_index(
        "uq_orders_tenant_id_external_id", "orders", ["tenant_id", "external_id"], unique=True
    )
    op.create_table(
        "order_items",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name=op.f("fk_order_items_tenant_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_order_items_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "line", name=op.f("pk_order_items")),
    )
    op.create_index(
        "ix_order_items_tenant_id_category", "order_items", ["tenant_id", "category"], unique=False
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_index("ix_order_items_tenant_id_category", table_name="order_items")
    op.drop_table("order_items")
    op.drop_index("uq_orders_tenant_id_external_id", table_name="orders")
    op.drop_index("ix_orders_tenant_id_placed_at", table_name="orders")
    op.drop_index("ix_orders_tenant_id_customer_id_placed_at", table_name="orders")
    op.drop_table("orders")
    op.drop_table("import_chunks")
    op.drop_table("identities")
    op.drop_index("uq_events_tenant_id_external_id", table_name="events")
    op.drop_index("ix_events_tenant_id_name_occurred_at", table_name="events")
    op.drop_index("ix_events_tenant_id_customer_id_occurred_at", table_name="events")
    op.drop_index("ix_events_tenant_id_anonymous_id", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_webhook_deliveries_tenant_id_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("tombstones")
    op.drop_index("uq_customers_tenant_id_external_id", table_name="customers")
    op.drop_index("ix_customers_tenant_id_total_spent", table_name="customers")
    op.drop_index("ix_customers_tenant_id_referred_by", table_name="customers")
    op.drop_index("ix_customers_tenant_id_last_order_at", table_name="customers")
    op.drop_index("ix_customers_tenant_id_email", table_name="customers")
    op.drop_table("customers")
