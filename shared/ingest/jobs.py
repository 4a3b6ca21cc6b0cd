"""`ingest.import`: stream a stored upload through the parser and apply valid rows in
batches. The whole import is one transaction with the job's final status, so a worker killed
midway leaves nothing behind and the re-run imports each row exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
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
from shared.jobs.runner import JobKind, JobRun
from shared.models import ImportChunk
from shared.segments import service as segments

# Rows a statement: large enough that per-statement round trips do not dominate, small enough
# that a batch the database refuses is cheap to retry row by row.
BATCH = 2_000
# Customers whose behaviour facts an import refreshes in one statement. Facts are refreshed
# once per customer for the whole import (at the end, or when this many are pending), not
# once per batch: imported events and orders are usually in time order, so one customer's rows
# spread over many batches.
REFRESH_EVERY = 50_000


@dataclass
class _Pending:
    """Customers whose facts wait for a refresh, by which facts."""

    orders: set[uuid.UUID] = field(default_factory=set)
    events: set[uuid.UUID] = field(default_factory=set)

    async def flush(
        self, session: AsyncSession, tenant_id: uuid.UUID, *, at_least: int = 0
    ) -> None:
        if len(self.orders) + len(self.events) < max(at_least, 1):
            return
        await stats.refresh_orders(session, tenant_id, self.orders)
        await stats.refresh_events(session, tenant_id, self.events)
        self.orders, self.events = set(), set()


class ImportParams(BaseModel):
    kind: ImportKind
    format: ImportFormat
    chunks: int = Field(ge=0)
    bytes: int = Field(ge=0)


async def _chunks(run: JobRun, p: ImportParams) -> AsyncIterator[bytes]:
    read = 0
    for seq in range(p.chunks):
        data = (
            await run.session.execute(
                select(ImportChunk.data).where(
                    ImportChunk.tenant_id == run.tenant_id,
                    ImportChunk.job_id == run.job_id,
                    ImportChunk.seq == seq,
                )
            )
        ).scalar_one()
        read += len(data)
        await run.report(0.99 * read / max(p.bytes, 1))
        yield bytes(data)


async def _apply(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kind: ImportKind,
    models: Sequence[Any],
    pending: _Pending,
) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    if kind is ImportKind.customers:
        for r in await customers.upsert_many(session, tenant_id, models):
            outcomes[r.outcome.value] += 1
    elif kind is ImportKind.orders:
        touched: set[uuid.UUID] = set()
        for o in await service.upsert_orders(session, tenant_id, models, defer_refresh=touched):
            outcomes[o.outcome.value] += 1
        pending.orders |= touched
    else:
        touched = set()
        accepted = await service.ingest_events(session, tenant_id, models, defer_refresh=touched)
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
) -> tuple[Counter[str], int]:
    """Apply a batch in a savepoint; if the database refuses it, find the rows it refuses
    one by one so the others are still imported. Returns outcomes and rows rejected."""
    try:
        async with session.begin_nested():
            return await _apply(session, tenant_id, kind, [p.model for p in batch], pending), 0
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
    outcomes: Counter[str] = Counter()
    rejected = 0
    for parsed in batch:
        try:
            async with session.begin_nested():
                outcomes += await _apply(session, tenant_id, kind, [parsed.model], pending)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            rejected += 1
            if len(errors) < MAX_ERRORS_KEPT:
                errors.append(
                    {
                        "line": parsed.line,
                        "errors": [{"loc": [], "msg": "the database refused this row"}],
                    }
                )
    return outcomes, rejected


async def run_import(run: JobRun) -> dict[str, Any]:
    p = ImportParams.model_validate(run.params)
    outcomes: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    rows = rejected = 0
    batch: list[Parsed] = []
    pending = _Pending()
    async for parsed in parse(p.kind, p.format, _chunks(run, p)):
        rows += 1
        if parsed.error is not None:
            rejected += 1
            if len(errors) < MAX_ERRORS_KEPT:
                errors.append({"line": parsed.line, "errors": parsed.error.errors})
            continue
        batch.append(parsed)
        if len(batch) >= BATCH:
            done, refused = await _apply_batch(
                run.session, run.tenant_id, p.kind, batch, errors, pending
            )
            outcomes, rejected, batch = outcomes + done, rejected + refused, []
            await pending.flush(run.session, run.tenant_id, at_least=REFRESH_EVERY)
    if batch:
        done, refused = await _apply_batch(
            run.session, run.tenant_id, p.kind, batch, errors, pending
        )
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
