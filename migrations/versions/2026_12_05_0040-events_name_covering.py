"""Events by name and time carry the customer: behavioural segment conditions ("did X in the
last D days") read the index alone, never the events' rows.

The index replaces ix_events_tenant_id_name_occurred_at (same keys, customer_id included),
so ingest maintains as many indexes as before.

Revision ID: 9d4e2b7c3f18
Revises: 5c2d8e4f1a67
Create Date: 2026-12-05 00:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d4e2b7c3f18"
down_revision: str | None = "5c2d8e4f1a67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_events_tenant_id_name_occurred_at_customer",
        "events",
        ["tenant_id", "name", "occurred_at"],
        postgresql_include=["customer_id"],
    )
    op.drop_index("ix_events_tenant_id_name_occurred_at", table_name="events")


def downgrade() -> None:
    op.create_index(
        "ix_events_tenant_id_name_occurred_at", "events", ["tenant_id", "name", "occurred_at"]
    )
    op.drop_index("ix_events_tenant_id_name_occurred_at_customer", table_name="events")
