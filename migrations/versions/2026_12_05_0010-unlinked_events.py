"""Unlinked events: a partial index over the events that have no customer yet.

Stitching a visitor's anonymous events onto a customer reads only those; the full
(tenant_id, anonymous_id) index would read every event of the visitor.

Revision ID: 5c2d8e4f1a67
Revises: 3b7e5c1a9d42
Create Date: 2026-12-05 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2d8e4f1a67"
down_revision: str | None = "3b7e5c1a9d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_events_unlinked",
        "events",
        ["tenant_id", "anonymous_id"],
        postgresql_where=sa.text("customer_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_unlinked", table_name="events")
