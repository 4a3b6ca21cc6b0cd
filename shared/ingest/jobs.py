"""`ingest.import`: stream a stored upload through the parser and apply valid rows in
batches. The whole import is one transaction with the job's final status, so a worker killed
midway leaves nothing behind and the re-run imports each row exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.customers import service as customers
from shared.ingest import service
from shared.ingest.imports import MAX_ERRORS_KEPT, ImportFormat, ImportKind, Parsed, parse
from shared.jobs.runner import JobKind, JobRun
from shared.models import ImportChunk
from shared.segments import service as segments

BATCH = 500


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
    session: AsyncSession, tenant_id: uuid.UUID, kind: ImportKind, models: Sequence[Any]
) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    if kind is ImportKind.customers:
        for r in await customers.upsert_many(session, tenant_id, models):
            outcomes[r.outcome.value] += 1
    elif kind is ImportKind.orders:
        for o in await service.upsert_orders(session, tenant_id, models):
            outcomes[o.outcome.value] += 1
    else:
        accepted = await service.ingest_events(session, tenant_id, models)
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
) -> tuple[Counter[str], int]:
    """Apply a batch in a savepoint; if the database refuses it, find the rows it refuses
    one by one so the others are still imported. Returns outcomes and rows rejected."""
    try:
        async with session.begin_nested():
            return await _apply(session, tenant_id, kind, [p.model for p in batch]), 0
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
    outcomes: Counter[str] = Counter()
    rejected = 0
    for parsed in batch:
        try:
            async with session.begin_nested():
                outcomes += await _apply(session, tenant_id, kind, [parsed.model])
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
    async for parsed in parse(p.kind, p.format, _chunks(run, p)):
        rows += 1
        if parsed.error is not None:
            rejected += 1
            if len(errors) < MAX_ERRORS_KEPT:
                errors.append({"line": parsed.line, "errors": parsed.error.errors})
            continue
        batch.append(parsed)
        if len(batch) >= BATCH:
            done, refused = await _apply_batch(run.session, run.tenant_id, p.kind, batch, errors)
            outcomes, rejected, batch = outcomes + done, rejected + refused, []
    if batch:
        done, refused = await _apply_batch(run.session, run.tenant_id, p.kind, batch, errors)
        outcomes, rejected = outcomes + done, rejected + refused
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
