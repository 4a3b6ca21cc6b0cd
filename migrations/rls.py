"""Row-level security helpers shared by migrations.

Every tenant table gets RLS enabled *and forced* (so even the owner is filtered) and one policy
comparing `tenant_id` with the transaction-local `app.tenant_id` setting. An unset setting
reads as '' after a commit, hence the NULLIF: no tenant set means no rows, never all rows.
"""

from __future__ import annotations

from alembic import op

CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_user() -> str:
    user = op.get_context().config.attributes.get("app_user", "portrait_app")  # type: ignore[union-attr]
    if not str(user).replace("_", "").isalnum():
        raise ValueError(f"unsafe role name: {user!r}")
    return str(user)


def enable_tenant_rls(table: str, column: str = "tenant_id") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {CURRENT_TENANT}) WITH CHECK ({column} = {CURRENT_TENANT})"
    )


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
