"""Customers keep the quantity they bought of each category (purchases only), beside their
top three: k-means reads a customer's category mix from the profile instead of aggregating
every order line of the store.

Revision ID: 2a6f9c1e7b35
Revises: 9d4e2b7c3f18
Create Date: 2026-12-05 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2a6f9c1e7b35"
down_revision: str | None = "9d4e2b7c3f18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column(
            "category_quantities",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    # Existing customers: one set-based pass over their purchases' lines.
    op.execute(
        """
        UPDATE customers c SET category_quantities = q.quantities
        FROM (
            SELECT tenant_id, customer_id, jsonb_object_agg(category, qty) AS quantities
            FROM (
                SELECT o.tenant_id, o.customer_id, i.category, sum(i.quantity) AS qty
                FROM orders o
                JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
                WHERE o.customer_id IS NOT NULL AND i.category IS NOT NULL
                  AND o.status IN ('placed', 'paid', 'fulfilled')
                GROUP BY o.tenant_id, o.customer_id, i.category
            ) x
            GROUP BY tenant_id, customer_id
        ) q
        WHERE c.tenant_id = q.tenant_id AND c.id = q.customer_id
        """
    )


def downgrade() -> None:
    op.drop_column("customers", "category_quantities")
