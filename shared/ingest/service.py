"""Ingest rules: orders (upsert by external id, newest delivery wins), events (stored once
per id, anonymous visitors stitched to customers), identify; behaviour facts refreshed
set-based for exactly the customers a batch touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import errors
from shared.customers import repository as customers_repo
from shared.customers import stats
from shared.db.engine import set_tenant
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


@dataclass
class EventRows:
    """A batch of events as the columns they are stored in, an id repeated within the batch
    kept once (its first). Built apart from the writing, so an import builds the next batch's
    columns while the database stores the last one's."""

    given: int  # events in the batch, repeats included
    external_id: list[str]
    name: list[str]
    customer_external_id: list[str | None]
    anonymous_id: list[str | None]
    session_id: list[str | None]
    occurred_at: list[datetime]
    device: list[str | None]
    channel: list[str | None]
    properties: list[str]  # JSON text

    @classmethod
    def of(cls, events: Sequence[EventIn]) -> EventRows:
        first: dict[str, EventIn] = {}
        for e in events:
            first.setdefault(e.id, e)
        unique = first.values()
        return cls(
            given=len(events),
            external_id=list(first),
            name=[e.name for e in unique],
            customer_external_id=[e.customer_external_id for e in unique],
            anonymous_id=[e.anonymous_id for e in unique],
            session_id=[e.session_id for e in unique],
            occurred_at=[e.occurred_at for e in unique],
            device=[e.device for e in unique],
            channel=[e.channel for e in unique],
            properties=[to_json(e.properties).decode() for e in unique],
        )

    def keep(self, wanted: list[bool]) -> EventRows:
        """The rows where `wanted` is true."""
        columns = {
            f.name: [v for v, w in zip(getattr(self, f.name), wanted, strict=True) if w]
            for f in fields(self)
            if f.name != "given"
        }
        return EventRows(given=self.given, **columns)


@dataclass
class _Resolved:
    customer_ids: dict[str, uuid.UUID]  # customers' external ids -> ids (erased ones absent)
    identities: dict[str, uuid.UUID]  # visitors' anonymous ids -> the customer they are
    fresh: list[str]  # visitors not linked when the batch began, linked here or not at all
    linked: list[str]  # visitors this batch linked


async def _resolve(session: AsyncSession, tenant_id: uuid.UUID, events: EventRows) -> _Resolved:
    """Who each event is: customers (created bare if unknown) and visitors, linking the
    anonymous ids that arrive beside a customer's. The first link of a visitor wins."""
    pairs = list(zip(events.customer_external_id, events.anonymous_id, strict=True))
    customer_ids = await customers_repo.ensure(session, tenant_id, [c for c, _ in pairs if c])
    links: dict[str, uuid.UUID] = {}
    for c, a in pairs:
        if a and c and c in customer_ids:
            links.setdefault(a, customer_ids[c])
    anonymous = [a for c, a in pairs if a and not c]
    identities = await repository.known_identities(session, tenant_id, [*links, *anonymous])
    fresh = sorted({*links, *anonymous} - set(identities))
    new_links = {a: c for a, c in links.items() if a not in identities}
    if new_links:  # a concurrent batch may link one of them first: re-read who won
        await repository.insert_links(session, tenant_id, new_links)
        identities |= await repository.known_identities(session, tenant_id, list(new_links))
    return _Resolved(customer_ids, identities, fresh, sorted(new_links))


@asynccontextmanager
async def _apart(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> AsyncIterator[AsyncSession]:
    """A short transaction of its own, beside the caller's."""
    async with sessions() as own, own.begin():
        await set_tenant(own, tenant_id)
        yield own


async def ingest_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    events: Sequence[EventIn] | EventRows,
    *,
    defer_refresh: set[uuid.UUID] | None = None,
    identities_apart: async_sessionmaker[AsyncSession] | None = None,
) -> EventsAccepted:
    """Store a batch. With `defer_refresh`, the touched customers are added to that set
    instead of having their facts refreshed now (an import refreshes them once, in bulk).

    With `identities_apart` (sessions from a pool other than `session`'s, or two requests
    could each hold a connection and wait for the other's), who the events are (bare
    customers, visitor links and the stitching of those visitors' earlier events) is
    committed first, in a short transaction of its own: concurrent batches that share
    visitors then wait on each other for that moment only, not for a whole batch. Those
    facts stay if the batch then fails, which is harmless: a retry finds them."""
    rows = events if isinstance(events, EventRows) else EventRows.of(events)
    if identities_apart is not None:
        async with _apart(identities_apart, tenant_id) as own:
            who = await _resolve(own, tenant_id, rows)
            await stats.refresh_events(own, tenant_id, await _stitch(own, tenant_id, who.linked))
        who.fresh = [a for a in who.fresh if a not in who.identities]
    else:
        who = await _resolve(session, tenant_id, rows)
    customer_ids, identities = who.customer_ids, who.identities
    live = [not c or c in customer_ids for c in rows.customer_external_id]
    erased = live.count(False)
    if erased:
        rows = rows.keep(live)
    customer_id = [
        customer_ids[c] if c else identities.get(a or "")
        for c, a in zip(rows.customer_external_id, rows.anonymous_id, strict=True)
    ]
    columns = {c: getattr(rows, c) for c in repository.EVENT_COLUMNS if c != "customer_id"}
    columns["customer_id"] = customer_id
    stored, votes = await repository.insert_events(session, tenant_id, columns)
    # Stitch first: every transaction takes the visitors' locks before it updates any
    # customer row (a refresh), so two never wait on each other in a cycle.
    stitched = await _stitch(session, tenant_id, who.fresh)
    if defer_refresh is None:
        await stats.refresh_events_for(session, tenant_id, votes, always=stitched)
    else:
        defer_refresh |= stitched | {v[0] for v in votes}
    return EventsAccepted(
        accepted=stored, duplicates=rows.given - erased - stored, ignored_erased=erased
    )


async def _stitch(
    session: AsyncSession, tenant_id: uuid.UUID, fresh: Sequence[str]
) -> set[uuid.UUID]:
    """Move the anonymous events of visitors linked by now onto their customer, after this
    transaction stored its links and events. A concurrent transaction's links or events are
    invisible until it commits, so both lock the visitors first (advisory locks, held to
    commit): whichever commits second runs this after the first committed, and sees both.
    The locks come after the inserts, so concurrent batches overlap for all but this step."""
    if not fresh:
        return set()
    await repository.lock_anonymous_ids(session, tenant_id, fresh)
    return await repository.backfill(session, tenant_id, fresh)


async def identify(session: AsyncSession, tenant_id: uuid.UUID, data: IdentifyIn) -> bool:
    """Tie an anonymous visitor to a customer: their earlier events join the profile.
    False when the customer was erased."""
    ids = await customers_repo.ensure(session, tenant_id, [data.customer_external_id])
    if data.customer_external_id not in ids:
        return False
    links = {data.anonymous_id: ids[data.customer_external_id]}
    await repository.insert_links(session, tenant_id, links)
    touched = await _stitch(session, tenant_id, list(links))
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
