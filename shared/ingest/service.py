"""Ingest rules: orders (upsert by external id, newest delivery wins), events (stored once
per id, anonymous visitors stitched to customers), identify; behaviour facts refreshed
set-based for exactly the customers a batch touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
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

# Visitors a backfill statement stitches (an import stitches all of its own at its end).
STITCH_EVERY = 50_000


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
    kept once (its first), and each column as the text the statement takes. Built apart
    from the writing, so an import builds the next batch's while the database stores the
    last one's."""

    given: int  # events in the batch, repeats included
    external_id: list[str]
    name: list[str]
    customer_external_id: list[str | None]
    anonymous_id: list[str | None]
    session_id: list[str | None]
    occurred_at: list[str]  # ISO 8601, with the offset
    device: list[str | None]
    channel: list[str | None]
    properties: list[str]  # JSON
    literals: dict[str, str] = field(init=False, repr=False)  # column: array literal
    customers: set[str] = field(init=False, repr=False)  # the customers named
    first_named: dict[str, str] = field(init=False, repr=False)  # visitor: customer beside it
    anonymous_only: set[str] = field(init=False, repr=False)  # visitors of events with no one

    def __post_init__(self) -> None:
        self.literals = {
            c: repository.text_array(getattr(self, c)) for c in repository.EVENT_TEXT_COLUMNS
        }
        self.customers, self.first_named, self.anonymous_only = set(), {}, set()
        for c, a in zip(self.customer_external_id, self.anonymous_id, strict=True):
            if c:
                self.customers.add(c)
                if a:
                    self.first_named.setdefault(a, c)
            elif a:
                self.anonymous_only.add(a)

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
            occurred_at=[e.occurred_at.isoformat() for e in unique],
            device=[e.device for e in unique],
            channel=[e.channel for e in unique],
            properties=[to_json(e.properties).decode() for e in unique],
        )

    def keep(self, wanted: list[bool]) -> EventRows:
        """The rows where `wanted` is true."""
        columns = {
            f.name: [v for v, w in zip(getattr(self, f.name), wanted, strict=True) if w]
            for f in fields(self)
            if f.init and f.name != "given"
        }
        return EventRows(given=self.given, **columns)


@dataclass
class _Resolved:
    customer_ids: dict[str, uuid.UUID]  # customers' external ids -> ids (erased ones absent)
    identities: dict[str, uuid.UUID]  # visitors' anonymous ids -> the customer they are
    fresh: list[str]  # visitors not linked when the batch began, linked here or not at all
    linked: list[str]  # visitors this batch linked


@dataclass
class Known:
    """Who an import's earlier batches found: customers' ids by external id, and visitors'
    links. They hold until the import commits: a customer an event was stored for is
    key-share locked by then (its foreign-key check), so no erasure can take it away, and a
    visitor's first link is its link for good. (A customer whose events were all stored
    before is not locked; if it is erased meanwhile, the next batch naming it fails its
    foreign-key check, and the import forgets what it knew and applies that batch again from
    the database's answers.) Visitors not linked are asked for again each batch, since
    another request may link them meanwhile."""

    customers: dict[str, uuid.UUID] = field(default_factory=dict)
    visitors: dict[str, uuid.UUID] = field(default_factory=dict)
    limit: int = 1_000_000  # entries of each; past it, forget and start again

    def remember(self, customers: dict[str, uuid.UUID], visitors: dict[str, uuid.UUID]) -> None:
        for held, new in ((self.customers, customers), (self.visitors, visitors)):
            if len(held) + len(new) > self.limit:
                held.clear()
            held.update(new)

    def forget(self) -> None:
        """After a rollback: what it undid (bare customers, links) may be remembered."""
        self.customers.clear()
        self.visitors.clear()


async def _resolve(
    session: AsyncSession, tenant_id: uuid.UUID, events: EventRows, known: Known | None = None
) -> _Resolved:
    """Who each event is: customers (created bare if unknown) and visitors, linking the
    anonymous ids that arrive beside a customer's (the first one named beside it in the
    batch). The first link of a visitor wins."""
    known = known or Known()
    customer_ids = {c: known.customers[c] for c in events.customers if c in known.customers}
    customer_ids |= await customers_repo.ensure(
        session, tenant_id, list(events.customers - customer_ids.keys())
    )
    links = {a: customer_ids[c] for a, c in events.first_named.items() if c in customer_ids}
    visitors = events.anonymous_only | links.keys()
    identities = {a: known.visitors[a] for a in visitors if a in known.visitors}
    identities |= await repository.known_identities(
        session, tenant_id, list(visitors - identities.keys())
    )
    fresh = sorted(visitors - identities.keys())
    new_links = {a: c for a, c in links.items() if a not in identities}
    if new_links:
        linked = await repository.insert_links(session, tenant_id, new_links)
        identities |= {a: c for a, c in new_links.items() if a in linked}
        # A concurrent batch may have linked some of them first: read who won.
        if lost := [a for a in new_links if a not in linked]:
            identities |= await repository.known_identities(session, tenant_id, lost)
    known.remember(customer_ids, identities)
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
    known: Known | None = None,
    defer_stitch: set[str] | None = None,
) -> EventsAccepted:
    """Store a batch. With `defer_refresh`, the touched customers are added to that set
    instead of having their facts refreshed now (an import refreshes them once, in bulk).

    With `identities_apart` (sessions from a pool other than `session`'s, or two requests
    could each hold a connection and wait for the other's), who the events are (bare
    customers, visitor links and the stitching of those visitors' earlier events) is
    committed first, in a short transaction of its own: concurrent batches that share
    visitors then wait on each other for that moment only, not for a whole batch. Those
    facts stay if the batch then fails, which is harmless: a retry finds them.

    With `known` (an import's, across its batches), customers and links found before are
    not looked up again. With `defer_stitch`, the visitors whose earlier events may need
    moving onto a customer are added to that set instead (an import stitches them once, at
    its end, with `stitch`)."""
    rows = events if isinstance(events, EventRows) else EventRows.of(events)
    if identities_apart is not None:
        async with _apart(identities_apart, tenant_id) as own:
            who = await _resolve(own, tenant_id, rows)
            await stats.refresh_events(own, tenant_id, await stitch(own, tenant_id, who.linked))
        who.fresh = [a for a in who.fresh if a not in who.identities]
    else:
        who = await _resolve(session, tenant_id, rows, known)
    customer_ids, identities = who.customer_ids, who.identities
    erased = 0
    if not rows.customers <= customer_ids.keys():
        live = [not c or c in customer_ids for c in rows.customer_external_id]
        erased = live.count(False)
        rows = rows.keep(live)
    customer_id = [
        customer_ids[c] if c else identities.get(a or "")
        for c, a in zip(rows.customer_external_id, rows.anonymous_id, strict=True)
    ]
    stored = await repository.insert_events(
        session, tenant_id, rows.literals, customer_id, rows.properties
    )
    # Stitch first: every transaction takes the visitors' locks before it updates any
    # customer row (a refresh), so two never wait on each other in a cycle.
    if defer_stitch is None:
        stitched = await stitch(session, tenant_id, who.fresh)
    else:
        defer_stitch.update(who.fresh)
        stitched = set()
    # Whose facts the events may have changed: every customer the batch names (an event
    # stored before, sent again, at most costs its customer a needless refresh).
    if defer_refresh is None:
        votes = {
            (c, d, ch)
            for c, d, ch in zip(customer_id, rows.device, rows.channel, strict=True)
            if c is not None
        }
        await stats.refresh_events_for(session, tenant_id, votes, always=stitched)
    else:
        defer_refresh |= stitched | {c for c in customer_id if c is not None}
    return EventsAccepted(
        accepted=stored, duplicates=rows.given - erased - stored, ignored_erased=erased
    )


async def stitch(
    session: AsyncSession, tenant_id: uuid.UUID, fresh: Collection[str]
) -> set[uuid.UUID]:
    """Move the anonymous events of visitors linked by now onto their customer, after this
    transaction stored its links and events. A concurrent transaction's links or events are
    invisible until it commits, so both lock the visitors first (advisory locks, held to
    commit): whichever commits second runs this after the first committed, and sees both.
    The locks come after the inserts, so concurrent batches overlap for all but this step."""
    if not fresh:
        return set()
    ordered = sorted(fresh)
    await repository.lock_anonymous_ids(session, tenant_id, ordered)
    moved: set[uuid.UUID] = set()
    for start in range(0, len(ordered), STITCH_EVERY):
        moved |= await repository.backfill(
            session, tenant_id, ordered[start : start + STITCH_EVERY]
        )
    return moved


async def identify(session: AsyncSession, tenant_id: uuid.UUID, data: IdentifyIn) -> bool:
    """Tie an anonymous visitor to a customer: their earlier events join the profile.
    False when the customer was erased."""
    ids = await customers_repo.ensure(session, tenant_id, [data.customer_external_id])
    if data.customer_external_id not in ids:
        return False
    links = {data.anonymous_id: ids[data.customer_external_id]}
    await repository.insert_links(session, tenant_id, links)
    touched = await stitch(session, tenant_id, list(links))
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
