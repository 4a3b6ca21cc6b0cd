"""Runs one job on the worker and keeps its row true: status, progress, result, error.

arq delivers at least once, so a run first claims the row: a job that already finished or was
cancelled is skipped. The handler's writes and the final `succeeded` commit together, so a
worker killed mid-job leaves nothing half-done and the re-run starts clean.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.base import utcnow
from shared.db.engine import unit_of_work
from shared.errors import DomainError
from shared.jobs import repository
from shared.jobs.queue import JobQueue
from shared.jobs.schemas import TERMINAL, JobStatus
from shared.outbound.emit import emit
from shared.outbound.schemas import EventType

log = logging.getLogger(__name__)

# Failures worth another try: the database or the network blinked.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError, OSError)


@dataclass
class JobRun:
    """What a handler gets: its session (one transaction with the final status), the job's
    params, and a progress reporter that commits on its own connection so callers see it."""

    session: AsyncSession
    tenant_id: uuid.UUID
    job_id: uuid.UUID
    params: dict[str, Any]
    report: Callable[[float], Awaitable[None]]
    attempt: int = 1
    # To queue follow-up jobs (pushed after this job's transaction commits).
    queue: JobQueue | None = None


Handler = Callable[[JobRun], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    timeout_s: int = 600
    max_tries: int = 3


@dataclass
class _Throttle:
    every_s: float
    last: float = field(default=0.0)

    def ready(self, progress: float) -> bool:
        now = time.monotonic()
        if progress >= 1.0 or now - self.last >= self.every_s:
            self.last = now
            return True
        return False


class Retryable(Exception):
    """Raised by a handler for a temporary failure: the job is tried again after a delay."""


class RetryLater(Exception):
    """Raised by the runner to its host (the arq adapter) to re-queue after `defer_s`."""

    def __init__(self, defer_s: float) -> None:
        super().__init__(f"retry in {defer_s:.0f}s")
        self.defer_s = defer_s


def backoff_s(attempt: int) -> float:
    return float(min(2**attempt, 60))


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: JobKind,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    queue: JobQueue | None = None,
) -> None:
    claimed = await _claim(sessionmaker, tenant_id, job_id, kind.max_tries)
    if claimed is None:
        return
    params, attempt = claimed
    started = time.monotonic()
    throttle = _Throttle(every_s=0.5)

    async def write_progress(progress: float) -> None:
        async with unit_of_work(sessionmaker, tenant_id) as s:
            await repository.set_progress(s, tenant_id, job_id, progress)

    async def report(progress: float) -> None:
        # Never cut a progress write short: its row lock would outlive the cancel and hold up
        # the hand-back that follows it.
        if throttle.ready(progress):
            await _to_the_end(write_progress(progress))

    try:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            result = await kind.handler(
                JobRun(session, tenant_id, job_id, params, report, attempt=attempt, queue=queue)
            )
            job = await repository.get(session, tenant_id, job_id, for_update=True)
            if job is None or job.status != JobStatus.running:
                raise _NoLongerRunning
            job.status = JobStatus.succeeded
            job.progress = 1.0
            job.result = result
            job.error = None
            job.finished_at = utcnow()
            await _announce(session, tenant_id, job_id, kind.name, JobStatus.succeeded)
    except _NoLongerRunning:
        log.info(
            "job cancelled while running; its work was rolled back", extra={"job_id": str(job_id)}
        )
    except asyncio.CancelledError:
        # Three causes. A cancel through the API: the row already says so, nothing to do. The
        # job's timeout (arq cancels it): failed. The worker shutting down: handed back to the
        # queue, the interrupted attempt not counted, so the next worker runs it afresh.
        if time.monotonic() - started >= kind.timeout_s * 0.99:
            error = {"type": "timeout", "detail": f"The job ran over {kind.timeout_s} s."}
            await _to_the_end(_finish(sessionmaker, tenant_id, job_id, JobStatus.failed, error))
        else:
            await _to_the_end(_requeue_unless_cancelled(sessionmaker, tenant_id, job_id))
        raise
    except (Retryable, *TRANSIENT) as exc:
        if attempt < kind.max_tries and not _is_data_error(exc):
            await _finish(sessionmaker, tenant_id, job_id, JobStatus.queued, _error(exc))
            raise RetryLater(backoff_s(attempt)) from exc
        await _finish(sessionmaker, tenant_id, job_id, JobStatus.failed, _error(exc))
    except Exception as exc:
        log.exception("job failed", extra={"job_id": str(job_id), "kind": kind.name})
        await _finish(sessionmaker, tenant_id, job_id, JobStatus.failed, _error(exc))


class _NoLongerRunning(Exception):
    pass


# Hand-backs and failure records still being written: a stopping worker waits for them before
# closing its database engine (arq may stop waiting for a cancelled job before they finish).
_SETTLING: set[asyncio.Future[None]] = set()


async def settle(timeout_s: float = 10.0) -> None:
    """Wait (bounded) for the job-row updates of interrupted jobs to be written."""
    if _SETTLING:
        await asyncio.wait(set(_SETTLING), timeout=timeout_s)


async def _to_the_end(work: Awaitable[None]) -> None:
    """Finish `work` even if this task is cancelled meanwhile (arq cancels a stopping worker's
    jobs, then cancels them once more in `close()`): a write cut short would leave the row
    saying `running`, or hold its lock. A cancel that arrived is raised once `work` is done."""
    task = asyncio.ensure_future(work)
    _SETTLING.add(task)
    task.add_done_callback(_SETTLING.discard)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _is_data_error(exc: BaseException) -> bool:
    return (
        isinstance(exc, DBAPIError)
        and not exc.connection_invalidated
        and not isinstance(exc, OperationalError)
    )


def _error(exc: BaseException) -> dict[str, Any]:
    """What the API shows of a failure: domain errors say what went wrong; anything else
    only its type, since messages from drivers can quote personal data."""
    if isinstance(exc, DomainError):
        return {"type": exc.slug, "detail": exc.detail}
    if isinstance(exc, Retryable):
        return {"type": "retryable", "detail": str(exc)[:500]}
    return {"type": type(exc).__name__, "detail": "The job failed; see the worker log."}


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    max_tries: int,
) -> tuple[dict[str, Any], int] | None:
    async with unit_of_work(sessionmaker, tenant_id) as session:
        job = await repository.get(session, tenant_id, job_id, for_update=True)
        if job is None or job.status in TERMINAL:
            return None
        if job.attempts >= max_tries:
            # Every attempt so far was lost with its worker (killed, out of memory): stop.
            job.status = JobStatus.failed
            job.error = {
                "type": "attempts-exhausted",
                "detail": f"The job was interrupted {job.attempts} times without finishing.",
            }
            job.finished_at = utcnow()
            await _announce(session, tenant_id, job_id, job.kind, JobStatus.failed)
            return None
        job.status = JobStatus.running
        job.attempts += 1
        job.progress = 0.0
        job.started_at = job.started_at or utcnow()
        return dict(job.params), job.attempts


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    status: JobStatus,
    error: dict[str, Any] | None,
) -> None:
    async with unit_of_work(sessionmaker, tenant_id) as session:
        job = await repository.get(session, tenant_id, job_id, for_update=True)
        if job is None or job.status != JobStatus.running:
            return
        job.status = status
        job.error = error
        if status in TERMINAL:
            job.finished_at = utcnow()
            await _announce(session, tenant_id, job_id, job.kind, status)


async def _announce(
    session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, status: str
) -> None:
    """`job.finished` to the store's webhook endpoints, in the transaction that finishes it."""
    await emit(
        session,
        tenant_id,
        EventType.job_finished,
        {"job_id": str(job_id), "kind": kind, "status": str(status)},
    )


async def _requeue_unless_cancelled(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, job_id: uuid.UUID
) -> None:
    try:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            job = await repository.get(session, tenant_id, job_id, for_update=True)
            if job is None or job.status != JobStatus.running:
                return
            job.status = JobStatus.queued
            job.progress = 0.0
            job.attempts = max(job.attempts - 1, 0)
    except Exception:
        log.exception("could not hand the job back", extra={"job_id": str(job_id)})
