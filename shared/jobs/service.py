"""Job rules: creating a job (row + outbox, pushed after commit), reading, cancelling."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.db.base import utcnow
from shared.db.engine import on_after_commit
from shared.errors import Conflict, NotFound
from shared.jobs import repository
from shared.jobs.queue import JobQueue
from shared.jobs.schemas import TERMINAL, JobStatus
from shared.models import Job


def parse_id(raw: str | uuid.UUID) -> uuid.UUID:
    return errors.parse_id(raw, "job")


async def create(
    session: AsyncSession,
    queue: JobQueue,
    tenant_id: uuid.UUID,
    kind: str,
    params: dict[str, Any] | None = None,
) -> Job:
    """Write the job and its outbox row in the caller's transaction; push after the commit."""
    job = await repository.insert(session, tenant_id, kind, params or {})
    job_id = job.id

    async def _push() -> None:
        await queue.push_committed(tenant_id, job_id, kind)

    on_after_commit(session, _push)
    return job


async def get(session: AsyncSession, tenant_id: uuid.UUID, job_id: str | uuid.UUID) -> Job:
    job = await repository.get(session, tenant_id, parse_id(job_id))
    if job is None:
        raise NotFound("No job with this id.")
    return job


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None = None,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> Sequence[Job]:
    return await repository.list_(
        session, tenant_id, limit=limit, after=after, status=status, kind=kind
    )


async def cancel(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, job_id: str | uuid.UUID
) -> Job:
    job = await repository.get(session, tenant_id, parse_id(job_id), for_update=True)
    if job is None:
        raise NotFound("No job with this id.")
    if job.status in TERMINAL:
        raise Conflict(f"The job has already {job.status}; only queued or running jobs cancel.")
    job.status = JobStatus.cancelled
    job.finished_at = utcnow()
    await repository.delete_outbox(session, tenant_id, job.id)
    await session.flush()
    target = job.id

    async def _abort() -> None:
        await queue.abort(target)

    on_after_commit(session, _abort)
    return job
