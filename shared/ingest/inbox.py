"""The worker's side of the webhook inbox: tracked-event deliveries, accepted by the API with
one INSERT, are applied here in set-based batches (the same path as `POST /v1/events`).
A batch and the removal of its inbox rows commit together, so a crash re-applies nothing
twice and loses nothing (events are stored once per id in any case)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import unit_of_work
from shared.ingest import repository, service
from shared.ingest.schemas import EventIn

log = logging.getLogger(__name__)

BATCH = 1000


async def drain(sessionmaker: async_sessionmaker[AsyncSession], *, batch: int = BATCH) -> int:
    """Apply every waiting delivery of every tenant; returns how many."""
    async with unit_of_work(sessionmaker) as session:
        tenants = await repository.inbox_tenants(session)
    applied = 0
    for tenant_id in tenants:
        while True:
            async with unit_of_work(sessionmaker, tenant_id) as session:
                rows = await repository.claim_inbox(session, tenant_id, batch)
                if rows:
                    events = [EventIn.model_validate(r.payload) for r in rows]
                    await service.ingest_events(session, tenant_id, events)
                    await repository.finish_inbox(session, tenant_id, rows)
            applied += len(rows)
            if len(rows) < batch:
                break
    return applied


async def drain_forever(
    sessionmaker: async_sessionmaker[AsyncSession], *, interval_s: float
) -> None:
    while True:
        try:
            if not await drain(sessionmaker):
                await asyncio.sleep(interval_s)
        except Exception:  # the loop must outlive any one bad round
            log.exception("webhook inbox round failed")
            await asyncio.sleep(interval_s)
