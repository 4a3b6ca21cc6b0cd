"""Bulk writes let the server reuse the plans of their foreign-key checks, and only for the
bulk statement: the rest of the transaction plans every statement for its parameters."""

from __future__ import annotations

from sqlalchemy import text

from shared.db.engine import unit_of_work
from shared.ingest import service as ingest
from shared.ingest.schemas import EventIn
from tests.factories.store import event


async def test_a_bulk_insert_leaves_the_transaction_planning_per_statement(app, tenant):
    batch = [EventIn.model_validate(event(customer_external_id="c-1")) for _ in range(3)]
    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        before = await session.scalar(text("SHOW plan_cache_mode"))
        accepted = await ingest.ingest_events(session, tenant.tenant_id, batch)
        after = await session.scalar(text("SHOW plan_cache_mode"))
    assert accepted.accepted == 3
    assert before == after == "force_custom_plan"
