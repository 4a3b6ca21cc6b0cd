"""Webhook delivery retention: an owner-run function that forgets old delivery ids.

Revision ID: 5c1d2e3f4a5b
Revises: 84a0559cab09
Create Date: 2026-11-24 08:40:00
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import app_user

revision: str = "5c1d2e3f4a5b"
down_revision: str | None = "84a0559cab09"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The purge spans every tenant (a nightly job), so like the outbox relay it runs as the
    # owner, through one function that only deletes and returns a count.
    op.execute("CREATE POLICY delivery_purge ON webhook_deliveries TO CURRENT_USER USING (true)")
    op.execute(
        """
        CREATE FUNCTION portrait_purge_webhook_deliveries(keep_days integer) RETURNS bigint
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
          WITH gone AS (
            DELETE FROM webhook_deliveries
            WHERE received_at < now() - make_interval(days => greatest(keep_days, 3))
            RETURNING 1
          )
          SELECT count(*) FROM gone
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION portrait_purge_webhook_deliveries(integer) FROM PUBLIC")
    op.execute(
        f"GRANT EXECUTE ON FUNCTION portrait_purge_webhook_deliveries(integer) TO {app_user()}"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS portrait_purge_webhook_deliveries(integer)")
    op.execute("DROP POLICY IF EXISTS delivery_purge ON webhook_deliveries")
