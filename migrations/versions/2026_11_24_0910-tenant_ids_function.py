"""An owner-run list of tenant ids, for nightly jobs that visit every tenant.

Revision ID: 7e3f4a5b6c7d
Revises: 6d2e3f4a5b6c
Create Date: 2026-11-24 09:10:00
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import app_user

revision: str = "7e3f4a5b6c7d"
down_revision: str | None = "6d2e3f4a5b6c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Ids only: each nightly job then runs under its own tenant's row-level security.
    op.execute("CREATE POLICY tenant_listing ON tenants FOR SELECT TO CURRENT_USER USING (true)")
    op.execute(
        """
        CREATE FUNCTION portrait_tenant_ids() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          SELECT id FROM tenants ORDER BY id
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION portrait_tenant_ids() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION portrait_tenant_ids() TO {app_user()}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS portrait_tenant_ids()")
    op.execute("DROP POLICY IF EXISTS tenant_listing ON tenants")
