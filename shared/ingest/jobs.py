"""`ingest.import`: stream a stored upload through the parser and apply valid rows in
batches. The whole import is one transaction with the job's final status, so a worker killed
midway leaves nothing behind and the re-run imports each row exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.customers import service as customers
from shared.customers import stats
from shared.ingest import service
from shared.ingest.imports import MAX_ERRORS_KEPT, ImportFormat, ImportKind, Parsed, parse
from shared.ingest.schemas import EventIn
from shared.jobs.runner import JobKind, JobRun
from shared.models import ImportChunk
from shared.segments import service as segments

# Rows a statement, by kind: large enough that per-statement round trips do not dominate,
# small enough that a batch the database refuses is cheap to search for its refused rows.
# Events go as a few array parameters whatever their number; customers and orders as one
# parameter a value, under the driver's cap of 32,767 a statement.
BATCH = {ImportKind.customers: 2_000, ImportKind.orders: 2_000, ImportKind.events: 4_000}
# Customers whose behaviour facts an import refreshes in one statement. Facts are refreshed
# once per customer for the whole import (at the end, or when this many are pending), not
# once per batch: imported events and orders are usually in time order, so one customer's rows
# spread over many batches.
REFRESH_EVERY = 50_000
# Rows parsed between turns given to the event loop (a tenth of a millisecond of parsing):
# the batch being written waits no longer than that for its next statement.
YIELD_EVERY = 8


@dataclass
class _Pending:
    """Customers whose facts wait for a refresh, by which facts, and visitors whose earlier
    events wait to be stitched onto their customer (once the import's links are all in)."""

    orders: set[uuid.UUID] = field(default_factory=set)
    events: set[uuid.UUID] = field(default_factory=set)
    visitors: set[str] = field(default_factory=set)

    async def flush(
        self, session: AsyncSession, tenant_id: uuid.UUID, *, at_least: int = 0
    ) -> None:
        if len(self.orders) + len(self.events) + len(self.visitors) < max(at_least, 1):
            return
        # Stitch first: visitors' locks come before any update of a customer row, as in
        # every transaction (`service.ingest_events`).
        self.events |= await service.stitch(session, tenant_id, self.visitors)
        await stats.refresh_orders(session, tenant_id, self.orders)
        await stats.refresh_events(session, tenant_id, self.events)
        self.orders, self.events, self.visitors = set(), set(), set()


class ImportParams(BaseModel):
    kind: ImportKind
    format: ImportFormat
    chunks: int = Field(ge=0)
    bytes: int = Field(ge=0)


async def _chunks(
    run: JobRun,
    p: ImportParams,
    lane: asyncio.Lock,
    spawn: Callable[[Coroutine[Any, Any, bytes]], asyncio.Task[bytes]],
) -> AsyncIterator[bytes]:
    """The upload's chunks in order, each read (on the job's connection, between two
    batches) while the one before it is parsed, so the parser never waits for a batch."""

    async def read(seq: int) -> bytes:
        async with lane:
            data = await run.session.execute(
                select(ImportChunk.data).where(
                    ImportChunk.tenant_id == run.tenant_id,
                    ImportChunk.job_id == run.job_id,
                    ImportChunk.seq == seq,
                )
            )
            return bytes(data.scalar_one())

    if not p.chunks:
        return
    done = 0
    ahead = spawn(read(0))
    for seq in range(p.chunks):
        data = await ahead
        if seq + 1 < p.chunks:
            ahead = spawn(read(seq + 1))
        done += len(data)
        await run.report(0.99 * done / max(p.bytes, 1))
        yield data


def _prepare(kind: ImportKind, batch: Sequence[Parsed]) -> Any:
    """What `_apply` takes: the models, or for events their columns (built here, outside the
    database's turn)."""
    models = [p.model for p in batch]
    if kind is ImportKind.events:
        return service.EventRows.of([m for m in models if isinstance(m, EventIn)])
    return models


async def _apply(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kind: ImportKind,
    prepared: Any,
    pending: _Pending,
    known: service.Known,
) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    if kind is ImportKind.customers:
        for r in await customers.upsert_many(session, tenant_id, prepared):
            outcomes[r.outcome.value] += 1
    elif kind is ImportKind.orders:
        touched: set[uuid.UUID] = set()
        for o in await service.upsert_orders(session, tenant_id, prepared, defer_refresh=touched):
            outcomes[o.outcome.value] += 1
        pending.orders |= touched
    else:
        touched = set()
        accepted = await service.ingest_events(
            session,
            tenant_id,
            prepared,
            defer_refresh=touched,
            known=known,
            defer_stitch=pending.visitors,
        )
        pending.events |= touched
        outcomes.update(
            created=accepted.accepted,
            duplicate=accepted.duplicates,
            ignored_erased=accepted.ignored_erased,
        )
    return outcomes


async def _apply_batch(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kind: ImportKind,
    batch: list[Parsed],
    errors: list[dict[str, Any]],
    pending: _Pending,
    known: service.Known,
    prepared: Any = None,
) -> tuple[Counter[str], int]:
    """Apply a batch in a savepoint. If the database refuses it, apply each half the same
    way, down to the rows it refuses, so the others are still imported: a refused row costs
    about two tries per halving (22 for a full batch), not one try per row of its batch.
    Returns outcomes and rows rejected."""
    try:
        async with session.begin_nested():
            if prepared is None:
                prepared = _prepare(kind, batch)
            return await _apply(session, tenant_id, kind, prepared, pending, known), 0
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        known.forget()
    if len(batch) == 1:
        if len(errors) < MAX_ERRORS_KEPT:
            refused = [{"loc": [], "msg": "the database refused this row"}]
            errors.append({"line": batch[0].line, "errors": refused})
        return Counter(), 1
    half = len(batch) // 2
    first, rejected_first = await _apply_batch(
        session, tenant_id, kind, batch[:half], errors, pending, known
    )
    second, rejected_second = await _apply_batch(
        session, tenant_id, kind, batch[half:], errors, pending, known
    )
    return first + second, rejected_first + rejected_second


async def run_import(run: JobRun) -> dict[str, Any]:
    """Parsing and the database overlap: while one batch is written (statement by statement,
    on the job's one connection), the next is parsed. The parser gives the event loop a turn
    every few rows, so each answer from the database is followed by the next statement at
    once, not after a whole batch of parsing."""
    p = ImportParams.model_validate(run.params)
    outcomes: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    rows = rejected = 0
    batch: list[Parsed] = []
    pending, known = _Pending(), service.Known()
    lane = asyncio.Lock()  # the job's connection: one statement at a time
    applying: asyncio.Task[tuple[Counter[str], int]] | None = None

    async def apply(batch: list[Parsed], prepared: Any = None) -> tuple[Counter[str], int]:
        async with lane:
            done = await _apply_batch(
                run.session, run.tenant_id, p.kind, batch, errors, pending, known, prepared
            )
            await pending.flush(run.session, run.tenant_id, at_least=REFRESH_EVERY)
            return done

    try:
        async with asyncio.TaskGroup() as tasks:  # a failure cancels the batch or read in flight
            chunks = _chunks(run, p, lane, tasks.create_task)
            async for parsed in parse(p.kind, p.format, chunks):
                rows += 1
                if rows % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if parsed.error is not None:
                    rejected += 1
                    if len(errors) < MAX_ERRORS_KEPT:
                        errors.append({"line": parsed.line, "errors": parsed.error.errors})
                    continue
                batch.append(parsed)
                if len(batch) >= BATCH[p.kind]:
                    prepared = _prepare(p.kind, batch)
                    done, refused = await applying if applying else (Counter(), 0)
                    outcomes, rejected = outcomes + done, rejected + refused
                    applying, batch = tasks.create_task(apply(batch, prepared)), []
            done, refused = await applying if applying else (Counter(), 0)
            outcomes, rejected = outcomes + done, rejected + refused
    except ExceptionGroup as group:  # the failure itself, as without tasks: a lost
        raise group.exceptions[0] from None  # connection is retried, a bug fails the job
    if batch:
        done, refused = await apply(batch)
        outcomes, rejected = outcomes + done, rejected + refused
    await pending.flush(run.session, run.tenant_id)
    await run.session.execute(
        delete(ImportChunk).where(
            ImportChunk.tenant_id == run.tenant_id, ImportChunk.job_id == run.job_id
        )
    )
    imported = outcomes["created"] + outcomes["updated"]
    if imported and run.queue is not None:  # the new data can change who is in a segment
        await segments.refresh_rule_segments(run.session, run.queue, run.tenant_id, due_only=False)
    return {
        "kind": p.kind.value,
        "rows": rows,
        "imported": imported,
        "rejected": rejected,
        "skipped": rows - imported - rejected,
        "outcomes": dict(outcomes),
        "errors": sorted(errors, key=lambda e: e["line"]),
        "errors_truncated": rejected > len(errors),
    }


IMPORT = JobKind("ingest.import", run_import, timeout_s=3600, max_tries=3)
