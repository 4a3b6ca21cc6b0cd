"""arq WorkerSettings: the job kinds this worker runs, and its start-up and shut-down.

Each job function is thin: it takes ids, and `shared.jobs.runner` opens the session, keeps the
job row true and calls the domain handler.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

import httpx
import uvloop
from arq import Retry, Worker, cron, func
from arq.constants import health_check_key_suffix
from arq.typing import WorkerCoroutine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import idempotency
from shared.analytics import value
from shared.db.engine import app_url, make_engine, make_sessionmaker, unit_of_work
from shared.funnels import paths
from shared.funnels import service as funnels
from shared.ingest import inbox
from shared.ingest import jobs as ingest_jobs
from shared.ingest import repository as ingest_repo
from shared.jobs import runner, system
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue, make_redis
from shared.logging import setup_logging
from shared.outbound import delivery
from shared.personas import service as personas
from shared.segments import segmentation
from shared.segments import service as segments
from shared.settings import Settings, get_settings
from shared.tenants import repository as tenants_repo

log = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL_S = 30

# Every job kind the worker runs, listed explicitly.
KINDS: tuple[runner.JobKind, ...] = (
    system.SELFTEST,
    ingest_jobs.IMPORT,
    value.CUSTOMER_VALUE,
    segments.REFRESH_KIND,
    segmentation.RUN_KIND,
    personas.GENERATE_KIND,
    funnels.RUN_KIND,
    paths.RUN_KIND,
)


class WorkerContext(TypedDict, total=False):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    queue: JobQueue
    relay_task: asyncio.Task[None]
    inbox_task: asyncio.Task[None]
    outbound_task: asyncio.Task[None]
    warm_task: asyncio.Task[int]
    http: httpx.AsyncClient


def _arq_function(kind: runner.JobKind, max_timeout_s: int | None = None) -> Any:
    async def job(ctx: dict[str, Any], job_id: str, tenant_id: str) -> None:
        try:
            await runner.run(
                ctx["sessionmaker"], kind, uuid.UUID(job_id), uuid.UUID(tenant_id), ctx["queue"]
            )
        except runner.RetryLater as exc:
            raise Retry(defer=exc.defer_s) from exc

    coroutine: WorkerCoroutine = job
    timeout = min(kind.timeout_s, max_timeout_s) if max_timeout_s else kind.timeout_s
    # The runner counts attempts on the job row and fails the job past `kind.max_tries`; arq's
    # own count also grows with every hand-back at shutdown, so it only gets a generous bound
    # (past it arq would drop the job without telling the runner).
    return func(coroutine, name=kind.name, timeout=timeout, max_tries=kind.max_tries * 4 + 20)


async def purge_webhook_deliveries(ctx: dict[str, Any]) -> int:
    """Nightly: forget webhook delivery ids past the retention (at least 3 days)."""
    settings: Settings = ctx["settings"]
    async with unit_of_work(ctx["sessionmaker"]) as session:
        return await ingest_repo.purge_deliveries(session, settings.worker.webhook_retention_days)


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Hourly: forget idempotency keys past their retention (at least 24 h)."""
    settings: Settings = ctx["settings"]
    async with unit_of_work(ctx["sessionmaker"]) as session:
        return await idempotency.purge(session, settings.api.idempotency_keep_hours)


async def nightly_customer_value(ctx: dict[str, Any]) -> int:
    """Nightly: queue the customer-value analysis for every tenant (one job each, each
    under its own tenant's row-level security)."""
    sessionmaker = ctx["sessionmaker"]
    async with unit_of_work(sessionmaker) as session:
        tenant_ids = await tenants_repo.all_tenant_ids(session)
    for tenant_id in tenant_ids:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            await jobs.create(session, ctx["queue"], tenant_id, value.CUSTOMER_VALUE.name, {})
    return len(tenant_ids)


async def scheduled_segment_refresh(ctx: dict[str, Any]) -> int:
    """Every few minutes: queue refreshes for segments whose schedule says they are due."""
    sessionmaker = ctx["sessionmaker"]
    async with unit_of_work(sessionmaker) as session:
        tenant_ids = await tenants_repo.all_tenant_ids(session)
    queued = 0
    for tenant_id in tenant_ids:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            queued += await segments.refresh_rule_segments(
                session, ctx["queue"], tenant_id, due_only=True
            )
    return queued


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    engine = make_engine(
        app_url(settings), settings, statement_timeout_ms=settings.worker.statement_timeout_ms
    )
    sessionmaker = make_sessionmaker(engine)
    queue = JobQueue(ctx["redis"], sessionmaker, settings.worker.queue_name)
    ctx.update(settings=settings, engine=engine, sessionmaker=sessionmaker, queue=queue)
    # Jobs committed while Redis was away wait in the outbox: hand them over now, then keep
    # relaying in the background.
    await queue.relay(min_age_s=0)
    ctx["relay_task"] = asyncio.create_task(
        queue.relay_forever(
            interval_s=settings.worker.outbox_interval_s,
            min_age_s=settings.worker.outbox_min_age_s,
        )
    )
    # Webhook deliveries waiting in the inbox: likewise, now and then continuously.
    await inbox.drain(sessionmaker)
    ctx["inbox_task"] = asyncio.create_task(
        inbox.drain_forever(sessionmaker, interval_s=settings.worker.inbox_interval_s)
    )
    # Outbound webhooks: deliveries written by emit() in committed transactions.
    policy = delivery.Policy(
        timeout_s=settings.worker.outbound_timeout_s,
        max_attempts=settings.worker.outbound_max_attempts,
        backoff_base_s=settings.worker.outbound_backoff_base_s,
    )
    ctx["http"] = httpx.AsyncClient(
        timeout=settings.worker.outbound_timeout_s, follow_redirects=False
    )
    ctx["outbound_task"] = asyncio.create_task(
        delivery.deliver_forever(
            sessionmaker, ctx["http"], policy, interval_s=settings.worker.outbound_interval_s
        )
    )
    # Funnels: the stores' columnar copies of events, built in the background (a run that
    # comes first waits for its store's copy, then syncs only what is new).
    ctx["warm_task"] = asyncio.create_task(_warm_funnel_copies(sessionmaker))


async def _warm_funnel_copies(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    try:
        warmed = await funnels.warm_copies(sessionmaker)
    except Exception:  # a cold copy is only slower: the next run builds it
        log.exception("warming the funnels' event copies failed")
        return 0
    log.info("funnel event copies warmed for %d stores", warmed)
    return warmed


async def shutdown(ctx: dict[str, Any]) -> None:
    for name in ("relay_task", "inbox_task", "outbound_task", "warm_task"):
        task: asyncio.Task[None] | None = ctx.get(name)
        if task:
            task.cancel()
    http: httpx.AsyncClient | None = ctx.get("http")
    if http:
        await http.aclose()
    await runner.settle()
    engine: AsyncEngine | None = ctx.get("engine")
    if engine:
        await engine.dispose()


def build_worker(settings: Settings | None = None, **overrides: Any) -> Worker:
    """A configured arq Worker (used by `portrait worker` and by tests, with `burst=True`)."""
    settings = settings or get_settings()
    redis = make_redis(settings)

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        await startup(ctx)

    options: dict[str, Any] = {
        "functions": [_arq_function(k, settings.worker.max_job_timeout_s) for k in KINDS],
        "cron_jobs": [
            cron(purge_webhook_deliveries, hour=3, minute=17),
            cron(purge_idempotency_keys, minute=41),
            cron(nightly_customer_value, hour=2, minute=7),
            cron(scheduled_segment_refresh, minute=set(range(0, 60, 5))),
        ],
        "queue_name": settings.worker.queue_name,
        "redis_pool": redis,
        "on_startup": on_startup,
        "on_shutdown": shutdown,
        "max_jobs": settings.worker.max_jobs,
        "poll_delay": settings.worker.poll_delay_s,
        # Cron jobs take this one; a cap lowers it too, or it would keep the hand-over long.
        "job_timeout": min(
            settings.worker.job_timeout_s,
            settings.worker.max_job_timeout_s or settings.worker.job_timeout_s,
        ),
        "allow_abort_jobs": True,
        "keep_result": 60,
        "max_tries": settings.worker.max_tries,
        "handle_signals": True,
        # On SIGTERM: take no new job, give running ones this long to finish, then cancel
        # them (the runner hands them back to the queue for the next worker).
        "job_completion_wait": settings.worker.shutdown_grace_s,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
    options.update(overrides)
    worker = Worker(**options)
    worker.on_stop = lambda signum: _stop_firmly(worker)
    return worker


def _stop_firmly(worker: Worker) -> None:
    """arq ends its main loop with one `cancel()`, which a Redis call in flight can swallow
    (measured here: about one stop in three under the test suite), leaving a worker that
    neither exits nor stops taking jobs until it is killed. Stop taking jobs, and repeat the
    cancel until the loop has ended."""
    worker.allow_pick_jobs = False

    async def keep_cancelling() -> None:
        while worker.main_task is not None and not worker.main_task.done():
            worker.main_task.cancel()
            await asyncio.sleep(0.2)

    worker.loop.create_task(keep_cancelling())


async def check_health(settings: Settings) -> bool:
    """True when some worker on this queue wrote its heartbeat recently (it expires)."""
    redis = make_redis(settings)
    try:
        return bool(await redis.exists(settings.worker.queue_name + health_check_key_suffix))
    finally:
        await redis.aclose()


def run_worker() -> None:
    settings = get_settings()
    setup_logging(settings)
    # uvloop, as uvicorn runs the API: asyncpg's protocol and the loop's own turns cost less
    # (an import spends much of its time passing statements and answers through the loop).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    worker = build_worker(settings)
    # What start-up made (modules, models, the app's objects) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it. An import of 218k
    # events spent 1.8 s of its 7 s of worker time in 14 full collections before this.
    gc.collect()
    gc.freeze()
    worker.run()


Startup = Callable[[dict[str, Any]], Awaitable[None]]
