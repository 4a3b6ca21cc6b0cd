"""Jobs made the way domain code makes them: row + outbox in one unit of work, pushed after
the commit."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.engine import unit_of_work
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue


async def create_job(
    queue: JobQueue, tenant_id: uuid.UUID, kind: str = "system.selftest", **params: Any
) -> uuid.UUID:
    async with unit_of_work(queue.sessionmaker, tenant_id) as session:
        job = await jobs.create(session, queue, tenant_id, kind, params)
    return job.id
