"""Migrations and models agree, and every tenant table is under forced row-level security."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from shared.models import TENANT_TABLES, Base


async def test_models_and_migrations_agree(owner_engine):
    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with owner_engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_every_tenant_table_has_forced_rls_and_tenant_id(owner_engine):
    tenant_owned = {t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.columns}
    assert tenant_owned == set(TENANT_TABLES)
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relname = ANY(:names)"
                ),
                {"names": [*TENANT_TABLES, "tenants"]},
            )
        ).all()
    assert {r.relname for r in rows} == {*TENANT_TABLES, "tenants"}
    assert all(r.relrowsecurity and r.relforcerowsecurity for r in rows)


async def test_every_unique_key_and_index_of_a_tenant_table_starts_with_tenant_id():
    for table in Base.metadata.sorted_tables:
        if table.name not in TENANT_TABLES:
            continue
        assert list(table.primary_key.columns)[0].name == "tenant_id", table.name
        for index in table.indexes:
            assert list(index.columns)[0].name == "tenant_id", (table.name, index.name)


async def test_app_role_cannot_bypass_rls(owner_engine, settings):
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                {"r": settings.database.app_user},
            )
        ).one()
        owns = await conn.scalar(
            # Temporary tables (segment refreshes stage ids in one) are the session's own.
            text(
                "SELECT count(*) FROM pg_tables WHERE tableowner = :r "
                "AND schemaname NOT LIKE 'pg\\_temp\\_%'"
            ),
            {"r": settings.database.app_user},
        )
    assert (row.rolsuper, row.rolbypassrls, owns) == (False, False, 0)


async def test_downgrade_then_upgrade_round_trips(settings, owner_engine):
    from shared.db.migrate import downgrade, upgrade

    await downgrade(settings, "base")
    async with owner_engine.connect() as conn:
        left = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        )
    await upgrade(settings)
    assert left == 0
