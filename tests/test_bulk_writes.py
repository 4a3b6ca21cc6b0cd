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


NASTY = [
    'say "hi"',
    "back\\slash",
    '\\"',
    "{braces}",
    "a,b",
    "NULL",
    " spaced ",
    "tab\tnl\n",
    "ünï😀",
]


async def test_events_keep_every_character_their_columns_travel_in(app, tenant, owner_engine):
    """A batch's columns go to the database as array literals: quotes, backslashes, braces,
    commas, the word NULL and blanks come back exactly as sent."""
    batch = [
        EventIn.model_validate(
            event(
                name=f"custom {s}",
                id=f"e {s}",
                customer_external_id=f"c {s}",
                anonymous_id=f"a {s}",
                session_id=s,
                device=s[:32],
                channel=s[:32],
                occurred_at="2026-01-02T03:04:05.678901+07:00",
                properties={s: [s, {"k": s}], "n": 1.5},
            )
        )
        for s in NASTY
    ]
    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        accepted = await ingest.ingest_events(session, tenant.tenant_id, batch)
    assert accepted.accepted == len(NASTY)
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT e.external_id, e.name, c.external_id, e.anonymous_id, e.session_id, "
                "e.device, e.channel, e.occurred_at, e.properties FROM events e "
                "JOIN customers c ON c.id = e.customer_id ORDER BY e.id"
            )
        )
        stored = [tuple(r) for r in rows]
    assert stored == [
        (
            e.id,
            e.name,
            e.customer_external_id,
            e.anonymous_id,
            e.session_id,
            e.device,
            e.channel,
            e.occurred_at,
            e.properties,
        )
        for e in batch
    ]
