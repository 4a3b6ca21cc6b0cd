"""Ingest rules: orders (upsert by external id, newest delivery wins), events (stored once
per id, anonymous visitors stitched to customers), identify; behaviour facts refreshed
set-based for exactly the customers a batch touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.customers import repository as customers_repo
from shared.customers import stats
from shared.errors import InvalidInput, NotFound, UnsupportedMediaType
from shared.ingest import repository
from shared.ingest.imports import ImportFormat, ImportKind
from shared.ingest.schemas import (
    EventIn,
    EventsAccepted,
    IdentifyIn,
    IngestOutcome,
    OrderIn,
    OrderItemRead,
    OrderRead,
)
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue
from shared.models import Job, Order


@dataclass(frozen=True)
class OrderResult:
    external_id: str
    outcome: IngestOutcome
    order_id: uuid.UUID | None


def _newest(orders: Sequence[OrderIn]) -> list[OrderIn]:
    floor = datetime.min.replace(tzinfo=UTC)
    newest: dict[str, OrderIn] = {}
    for o in orders:
        held = newest.get(o.external_id)
        if held is None or (o.updated_at or floor) >= (held.updated_at or floor):
            newest[o.external_id] = o
    return list(newest.values())


async def upsert_orders(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    orders: Sequence[OrderIn],
    *,
    delivery_id: str | None = None,
    defer_refresh: set[uuid.UUID] | None = None,
) -> list[OrderResult]:
    """Upsert a batch. With `defer_refresh`, the touched customers are added to that set
    instead of having their facts refreshed now (an import refreshes them once, in bulk)."""
    batch = _newest(orders)
    wanted = [o.customer_external_id for o in batch if o.customer_external_id]
    customer_ids = await customers_repo.ensure(session, tenant_id, wanted)
    results: list[OrderResult] = []
    live: list[OrderIn] = []
    for o in batch:
        if o.customer_external_id and o.customer_external_id not in customer_ids:
            results.append(OrderResult(o.external_id, IngestOutcome.ignored_erased, None))
        else:
            live.append(o)
    received = datetime.now(UTC)
    rows = [
        {
            "external_id": o.external_id,
            "customer_id": customer_ids.get(o.customer_external_id or ""),
            "status": o.status.value,
            "currency": o.currency,
            "total": o.total,
            "channel": o.channel,
            "placed_at": o.placed_at,
            "source_updated_at": o.updated_at or received,
            "source_delivery_id": delivery_id,
        }
        for o in live
    ]
    applied = await repository.upsert_orders(session, tenant_id, rows)
    items: dict[uuid.UUID, list[dict[str, Any]]] = {}
    touched: set[uuid.UUID] = set()
    for o in live:
        if o.external_id not in applied:
            results.append(OrderResult(o.external_id, IngestOutcome.ignored_stale, None))
            continue
        order_id, inserted, previous_customer = applied[o.external_id]
        items[order_id] = [i.model_dump() for i in o.items]
        touched |= {
            c for c in (customer_ids.get(o.customer_external_id or ""), previous_customer) if c
        }
        outcome = IngestOutcome.created if inserted else IngestOutcome.updated
        results.append(OrderResult(o.external_id, outcome, order_id))
    await repository.replace_items(session, tenant_id, items)
    if defer_refresh is None:
        await stats.refresh_orders(session, tenant_id, touched)
    else:
        defer_refresh |= touched
    return results


async def ingest_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    events: Sequence[EventIn],
    *,
    defer_refresh: set[uuid.UUID] | None = None,
) -> EventsAccepted:
    """Store a batch. With `defer_refresh`, the touched customers are added to that set
    instead of having their facts refreshed now (an import refreshes them once, in bulk)."""
    known = [e.customer_external_id for e in events if e.customer_external_id]
    customer_ids = await customers_repo.ensure(session, tenant_id, known)
    links = {
        e.anonymous_id: customer_ids[e.customer_external_id]
        for e in events
        if e.anonymous_id and e.customer_external_id and e.customer_external_id in customer_ids
    }
    anonymous = [e.anonymous_id for e in events if e.anonymous_id and not e.customer_external_id]
    # A visitor's link, once made, never changes (the first wins), so only visitors not yet
    # linked need care: concurrent batches may link one and store their anonymous events at
    # once. Lock those ids for this transaction, so whichever commits second sees the first.
    identities = await repository.known_identities(session, tenant_id, [*links, *anonymous])
    fresh = sorted({*links, *anonymous} - set(identities))
    if fresh:
        await repository.lock_anonymous_ids(session, tenant_id, fresh)
        identities |= await repository.known_identities(session, tenant_id, fresh)
    new_links = {a: c for a, c in links.items() if a not in identities}
    touched = await repository.link_identities(session, tenant_id, new_links)
    identities |= new_links
    rows: list[dict[str, Any]] = []
    erased = 0
    seen: set[str] = set()
    for e in events:
        if e.customer_external_id and e.customer_external_id not in customer_ids:
            erased += 1
            continue
        if e.id in seen:  # a batch may repeat an event; it is stored once
            continue
        seen.add(e.id)
        customer_id = (
            customer_ids[e.customer_external_id]
            if e.customer_external_id
            else identities.get(e.anonymous_id or "")
        )
        rows.append(
            {
                "external_id": e.id,
                "name": e.name,
                "customer_id": customer_id,
                "anonymous_id": e.anonymous_id,
                "session_id": e.session_id,
                "occurred_at": e.occurred_at,
                "device": e.device,
                "channel": e.channel,
                "properties": e.properties,
            }
        )
    stored = await repository.insert_events(session, tenant_id, rows)
    touched |= {r["customer_id"] for r in rows if r["external_id"] in stored and r["customer_id"]}
    if defer_refresh is None:
        await stats.refresh_events(session, tenant_id, touched)
    else:
        defer_refresh |= touched
    return EventsAccepted(
        accepted=len(stored), duplicates=len(events) - erased - len(stored), ignored_erased=erased
    )


async def identify(session: AsyncSession, tenant_id: uuid.UUID, data: IdentifyIn) -> bool:
    """Tie an anonymous visitor to a customer: their earlier events join the profile.
    False when the customer was erased."""
    ids = await customers_repo.ensure(session, tenant_id, [data.customer_external_id])
    if data.customer_external_id not in ids:
        return False
    await repository.lock_anonymous_ids(session, tenant_id, [data.anonymous_id])
    touched = await repository.link_identities(
        session, tenant_id, {data.anonymous_id: ids[data.customer_external_id]}
    )
    await stats.refresh_events(session, tenant_id, touched)
    return True


def parse_order_id(raw: str) -> uuid.UUID:
    return errors.parse_id(raw, "order")


async def read_orders(
    session: AsyncSession, tenant_id: uuid.UUID, orders: Sequence[Order]
) -> list[OrderRead]:
    items = await repository.items_of(session, tenant_id, [o.id for o in orders])
    by_order: dict[uuid.UUID, list[OrderItemRead]] = {}
    for i in items:
        by_order.setdefault(i.order_id, []).append(
            OrderItemRead.model_validate(i, from_attributes=True)
        )
    return [
        OrderRead(
            id=o.id,
            external_id=o.external_id,
            customer_id=o.customer_id,
            status=o.status,
            currency=o.currency,
            total=o.total,
            channel=o.channel,
            placed_at=o.placed_at,
            updated_at=o.updated_at,
            items=by_order.get(o.id, []),
        )
        for o in orders
    ]


async def get_order(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> OrderRead:
    order = await repository.get_order(session, tenant_id, parse_order_id(raw))
    if order is None:
        raise NotFound("No order with this id.")
    return (await read_orders(session, tenant_id, [order]))[0]


CHUNK_BYTES = 1024 * 1024


async def start_import(
    session: AsyncSession,
    queue: JobQueue,
    tenant_id: uuid.UUID,
    kind: ImportKind,
    fmt: ImportFormat | None,
    body: AsyncIterator[bytes],
) -> Job:
    """Store the upload in 1 MiB chunks as it streams in, then queue the import job."""
    if fmt is None:
        raise UnsupportedMediaType(
            "Send the file as text/csv or application/x-ndjson, or give ?format=."
        )
    job = await jobs.create(session, queue, tenant_id, "ingest.import", {})
    seq = size = 0
    buffer = bytearray()
    async for part in body:
        buffer += part
        size += len(part)
        while len(buffer) >= CHUNK_BYTES:
            await repository.insert_chunk(
                session, tenant_id, job.id, seq, bytes(buffer[:CHUNK_BYTES])
            )
            del buffer[:CHUNK_BYTES]
            seq += 1
    if buffer:
        await repository.insert_chunk(session, tenant_id, job.id, seq, bytes(buffer))
        seq += 1
    if size == 0:
        raise InvalidInput("The file is empty.")
    job.params = {"kind": kind.value, "format": fmt.value, "chunks": seq, "bytes": size}
    await session.flush()
    return job
