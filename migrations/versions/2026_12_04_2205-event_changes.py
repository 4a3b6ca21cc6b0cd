"""Event changes: updated or deleted event rows, logged by triggers for columnar copies.

Revision ID: 3b7e5c1a9d42
Revises: 0b5e1d2c9a71
Create Date: 2026-12-04 22:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "3b7e5c1a9d42"
down_revision: str | None = "0b5e1d2c9a71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_changes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_event_changes")),
    )
    enable_tenant_rls("event_changes")
    # Statement-level triggers with transition tables: one INSERT ... SELECT per statement,
    # however many rows an identify or an erasure touches.
    op.execute(
        """
        CREATE FUNCTION portrait_log_event_changes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO event_changes (tenant_id, event_id) SELECT tenant_id, id FROM changed;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_updated AFTER UPDATE ON events REFERENCING NEW TABLE AS changed "
        "FOR EACH STATEMENT EXECUTE FUNCTION portrait_log_event_changes()"
    )
    op.execute(
        "CREATE TRIGGER events_deleted AFTER DELETE ON events REFERENCING OLD TABLE AS changed "
        "FOR EACH STATEMENT EXECUTE FUNCTION portrait_log_event_changes()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS events_deleted ON events")
    op.execute("DROP TRIGGER IF EXISTS events_updated ON events")
    op.execute("DROP FUNCTION IF EXISTS portrait_log_event_changes()")
    disable_tenant_rls("event_changes")
    op.drop_table("event_changes")
