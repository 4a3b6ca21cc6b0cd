"""All SQL for jobs and the job outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import utcnow
from shared.models import Job, JobOutbox


async def insert(
    session: AsyncSession, tenant_id: uuid.UUID, kind: str, params: dict[str, Any]
) -> Job:
    job = Job(tenant_id=tenant_id, kind=kind, params=params, status="queued", progress=0.0)
    session.add(job)
    await session.flush()
    session.add(JobOutbox(tenant_id=tenant_id, job_id=job.id, kind=kind))
    await session.flush()
    return job


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID, *, for_update: bool = False
) -> Job | None:
    stmt = select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None,
    status: str | None,
    kind: str | None,
) -> Sequence[Job]:
    """Newest first; `after` is the last id of the previous page."""
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if after:
        stmt = stmt.where(Job.id < after)
    stmt = stmt.order_by(Job.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def set_progress(
    session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID, progress: float
) -> None:
    await session.execute(
        update(Job)
        .where(Job.tenant_id == tenant_id, Job.id == job_id, Job.status == "running")
        .values(progress=min(max(progress, 0.0), 1.0), updated_at=utcnow())
    )


async def delete_outbox(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    await session.execute(
        delete(JobOutbox).where(JobOutbox.tenant_id == tenant_id, JobOutbox.job_id == job_id)
    )
