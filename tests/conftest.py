"""Test session: real PostgreSQL and Redis (the ones in DATABASE_URL / REDIS_URL, else embedded
servers started here), a fresh database migrated once, truncation between tests, the API app
over ASGI, and a real arq worker on demand."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import Worker
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.worker.main import build_worker
from shared import embedded
from shared.db.engine import async_url, make_engine, make_sessionmaker, owner_url, unit_of_work
from shared.db.migrate import create_database_if_missing, upgrade
from shared.jobs.queue import make_redis
from shared.models import Base
from shared.settings import Settings, get_settings
from shared.tenants import service as tenants
from shared.tenants.schemas import TenantCreate, TenantCreated

RUN_ID = secrets.token_hex(4)


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    """URLs of the servers the session uses; embedded ones are started when none are given."""
    tmp = Path(tempfile.mkdtemp(prefix="portrait-test-"))
    started: list[Any] = []
    db_url = os.environ.get("DATABASE_URL")
    if not db_url:
        db_url, handle = embedded.start_postgres(tmp / "pg")
        started.append(handle)
    redis_url = os.environ.get("REDIS_URL")
    redis_server = None
    if not redis_url:
        redis_server = embedded.EmbeddedRedis(tmp / "redis", persist=False)
        redis_url = redis_server.start()
    test_db = make_url(db_url).set(database=f"portrait_test_{RUN_ID}")
    yield {
        "server_url": db_url,
        "database_url": test_db.render_as_string(hide_password=False),
        "redis_url": redis_url,
    }
    if redis_server:
        redis_server.stop()


@pytest.fixture(scope="session")
def settings(servers: dict[str, str]) -> Iterator[Settings]:
    env = {
        "DATABASE_URL": servers["database_url"],
        "REDIS_URL": servers["redis_url"],
        "PORTRAIT_ENVIRONMENT": "test",
        "CORS_ORIGINS": "https://shop.example",
        "PORTRAIT_LOG_JSON": "false",
        "PORTRAIT_WORKER__QUEUE_NAME": f"portrait:test:{RUN_ID}",
        "PORTRAIT_WORKER__POLL_DELAY_S": "0.02",
        "PORTRAIT_WORKER__OUTBOX_INTERVAL_S": "0.2",
        "PORTRAIT_WORKER__OUTBOX_MIN_AGE_S": "0",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield get_settings()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


@pytest.fixture(scope="session")
async def owner_engine(settings: Settings, servers: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    """The owner's engine: migrations, truncation and looking across tenants in assertions."""
    await create_database_if_missing(servers["database_url"], settings)
    await upgrade(settings)
    engine = make_engine(owner_url(settings), settings, pool_size=2)
    yield engine
    await engine.dispose()
    admin = make_engine(
        async_url(servers["database_url"]).set(database="postgres"), settings, pool_size=1
    )
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "portrait_test_{RUN_ID}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings, owner_engine: AsyncEngine) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://portrait.test") as c:
        yield c


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> None:
    """Every test starts from empty tables and an empty queue (only for tests that use them)."""
    if "owner_engine" in request.fixturenames or "app" in request.fixturenames:
        engine: AsyncEngine = request.getfixturevalue("owner_engine")
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))
        settings: Settings = request.getfixturevalue("settings")
        redis = make_redis(settings)
        await redis.delete(settings.worker.queue_name)
        await redis.aclose()


@pytest.fixture
async def make_tenant(owner_engine: AsyncEngine) -> Callable[..., Awaitable[TenantCreated]]:
    sessionmaker = make_sessionmaker(owner_engine)

    async def make(slug: str | None = None) -> TenantCreated:
        async with unit_of_work(sessionmaker) as session:
            return await tenants.create(
                session, TenantCreate(slug=slug or f"store-{secrets.token_hex(3)}")
            )

    return make


@pytest.fixture
async def tenant(make_tenant: Callable[..., Awaitable[TenantCreated]]) -> TenantCreated:
    return await make_tenant()


@pytest.fixture
def worker_factory(settings: Settings) -> Callable[..., Worker]:
    def make(**overrides: Any) -> Worker:
        worker_settings = overrides.pop("settings", settings)
        # No crons: one firing on the minute (the segment schedule runs every 5 minutes)
        # would add jobs to a test's queue, and a cron task cut short at close() raises.
        # Tests of the crons call their functions directly.
        options = {"handle_signals": False, "poll_delay": 0, "cron_jobs": [], **overrides}
        worker = build_worker(worker_settings, **options)
        return worker

    return make
