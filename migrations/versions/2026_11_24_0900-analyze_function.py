"""An owner-run ANALYZE of the ingest tables, callable by the app role.

Bulk loads (imports, the demo) grow tables faster than autovacuum notices, and some
deployments run with autovacuum off; without statistics the planner can pick a tenant-wide
index for a per-customer lookup. The app role owns no table, so it cannot ANALYZE; this
function does it for it, and does nothing else.

Revision ID: 6d2e3f4a5b6c
Revises: 808f76e53393
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import app_user

revision: str = "6d2e3f4a5b6c"
down_revision: str | None = "808f76e53393"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION portrait_analyze() RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
          ANALYZE customers, orders, order_items, events, identities;
        END
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION portrait_analyze() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION portrait_analyze() TO {app_user()}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS portrait_analyze()")
