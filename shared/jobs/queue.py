"""The one module that talks to arq (in maintenance mode upstream, so kept behind this seam).

Jobs reach arq through an outbox: the job row and an outbox row are written in the caller's
transaction; after the commit the job is pushed at once, and the outbox row deleted. When
Redis is away the row stays, and the worker's relay pushes it later. arq's `_job_id` is the
job id, so a job pushed twice is queued once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import unit_of_work
from shared.jobs import repository
from shared.settings import Settings

log = logging.getLogger(__name__)


def make_redis(settings: Settings) -> ArqRedis:
    """A client that fails fast when Redis is away instead of hanging a request."""
    if not settings.redis.url:
        raise RuntimeError("REDIS_URL is not set (portrait up starts an embedded Redis)")
    url = settings.redis.url.replace("valkey://", "redis://", 1)
    pool = ConnectionPool.from_url(
        url,
        socket_connect_timeout=settings.redis.connect_timeout_s,
        socket_timeout=max(settings.redis.connect_timeout_s * 5, 5.0),
        health_check_interval=30,
    )
    return ArqRedis(pool, default_queue_name=settings.worker.queue_name)


class JobQueue:
    def __init__(
        self,
        redis: ArqRedis,
        sessionmaker: async_sessionmaker[AsyncSession],
        queue_name: str,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.queue_name = queue_name

    async def push(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> bool:
        """Hand one job to arq; False (and logged) when Redis cannot be reached."""
        try:
            await self.redis.enqueue_job(
                kind, str(job_id), str(tenant_id), _job_id=str(job_id), _queue_name=self.queue_name
            )
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning(
                "job left in outbox, redis unavailable",
                extra={"job_id": str(job_id), "error": type(exc).__name__},
            )
            return False
        return True

    async def push_committed(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        """After-commit hook: push, then drop the outbox row; on failure the relay retries."""
        if await self.push(tenant_id, job_id, kind):
            async with unit_of_work(self.sessionmaker, tenant_id) as session:
                await repository.delete_outbox(session, tenant_id, job_id)

    async def abort(self, job_id: uuid.UUID) -> None:
        """Ask arq to cancel a queued or running job; the job row already says cancelled."""
        try:
            await self.redis.zadd(abort_jobs_ss, {str(job_id): timestamp_ms()})
        except (TimeoutError, RedisError, OSError):
            log.warning("abort not delivered, redis unavailable", extra={"job_id": str(job_id)})

    async def relay(self, *, min_age_s: float, limit: int = 500) -> int:
        """Push every outbox row older than `min_age_s`, across tenants. Rows are locked while
        pushed, so several relays never push one job at the same time; a failed push rolls
        back and leaves the row for the next round."""
        try:
            return await self._relay_once(min_age_s, limit)
        except _RelayInterrupted:
            return 0

    async def _relay_once(self, min_age_s: float, limit: int) -> int:
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    text("SELECT tenant_id, id, job_id, kind FROM portrait_outbox_claim(:a, :n)"),
                    {"a": min_age_s, "n": limit},
                )
            ).all()
            if not rows:
                return 0
            for row in rows:
                if not await self.push(row.tenant_id, row.job_id, row.kind):
                    raise _RelayInterrupted
            await session.execute(
                text("SELECT portrait_outbox_delete(:ids)"), {"ids": [r.id for r in rows]}
            )
        return len(rows)

    async def relay_forever(self, *, interval_s: float, min_age_s: float) -> None:
        while True:
            try:
                await self.relay(min_age_s=min_age_s)
            except Exception:  # the relay must outlive any one bad round
                log.exception("outbox relay round failed")
            await asyncio.sleep(interval_s)


class _RelayInterrupted(Exception):
    """Redis went away mid-relay: roll back and try again next round."""
