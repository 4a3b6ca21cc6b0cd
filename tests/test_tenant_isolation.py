"""Row-level security holds even when a query forgets its tenant filter."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db.engine import set_tenant
from tests.factories.jobs import create_job


async def test_a_query_without_tenant_filter_sees_only_its_tenant(app, make_tenant):
    a = await make_tenant()
    b = await make_tenant()
    job_a = await create_job(app.state.queue, a.tenant_id)
    await create_job(app.state.queue, b.tenant_id)
    async with app.state.sessionmaker() as session, session.begin():
        await set_tenant(session, a.tenant_id)
        # No WHERE tenant_id: the database filters anyway.
        ids = (await session.execute(text("SELECT id FROM jobs"))).scalars().all()
        tenants = (await session.execute(text("SELECT id FROM tenants"))).scalars().all()
        keys = (await session.execute(text("SELECT tenant_id FROM api_keys"))).scalars().all()
    assert ids == [job_a]
    assert tenants == [a.tenant_id]
    assert set(keys) == {a.tenant_id}


async def test_no_tenant_set_means_no_rows_and_no_writes(app, make_tenant):
    a = await make_tenant()
    await create_job(app.state.queue, a.tenant_id)
    async with app.state.sessionmaker() as session, session.begin():
        assert (await session.execute(text("SELECT count(*) FROM jobs"))).scalar() == 0
    async with app.state.sessionmaker() as session:
        await session.begin()
        await set_tenant(session, a.tenant_id)
        with pytest.raises(DBAPIError, match="row-level security"):
            await session.execute(
                text(
                    "INSERT INTO jobs (tenant_id, id, kind, params, status, progress, attempts) "
                    "VALUES (gen_random_uuid(), gen_random_uuid(), 'x', '{}', 'queued', 0, 0)"
                )
            )
        await session.rollback()
