"""Engines, sessions and the tenant context that row-level security reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import Settings

AfterCommit = Callable[[], Awaitable[None]]


def async_url(url: str | URL) -> URL:
    """Accept the URLs platforms hand out (`postgres://`, `postgresql://`) and pick asyncpg."""
    u = make_url(str(url)) if isinstance(url, str) else url
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    return u


def owner_url(settings: Settings) -> URL:
    if not settings.database.url:
        raise RuntimeError("DATABASE_URL is not set (portrait up starts an embedded PostgreSQL)")
    return async_url(settings.database.url)


def app_url(settings: Settings) -> URL:
    """The app's login role: owns no table and is subject to row-level security."""
    if settings.database.app_url:
        return async_url(settings.database.app_url)
    return owner_url(settings).set(
        username=settings.database.app_user, password=settings.database.app_password
    )


def make_engine(
    url: URL,
    settings: Settings,
    *,
    pool_size: int | None = None,
    statement_timeout_ms: int | None = None,
) -> AsyncEngine:
    timeout = statement_timeout_ms or settings.database.statement_timeout_ms
    return create_async_engine(
        url,
        pool_size=pool_size or settings.database.pool_size,
        max_overflow=5,
        pool_pre_ping=settings.database.pool_pre_ping,
        pool_timeout=5,
        connect_args={
            "timeout": 5,
            "command_timeout": max(timeout / 1000 + 5, 10),
            "server_settings": {
                "statement_timeout": str(timeout),
                "application_name": "portrait",
                "timezone": "UTC",
                # Plan each statement for its own parameters and the tables' current size: a
                # cached generic plan made while a tenant's tables were tiny (or never analysed,
                # as with autovacuum off) can pick a tenant-wide index and scan everything.
                "plan_cache_mode": "force_custom_plan",
            },
        },
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def set_tenant(session: AsyncSession, tenant_id: uuid.UUID | str) -> None:
    """Scope this transaction to one tenant; RLS policies read the setting, and it dies with
    the transaction, so a pooled connection never carries it to the next request."""
    await session.execute(
        text("SELECT set_config('app.tenant_id', :tid, true)"), {"tid": str(tenant_id)}
    )
    session.info["tenant_id"] = str(tenant_id)


@asynccontextmanager
async def key_checks_cached(session: AsyncSession) -> AsyncIterator[None]:
    """Around a bulk write into a table with foreign keys. Engines plan every statement for
    its own parameters (`plan_cache_mode = force_custom_plan`), and PostgreSQL applies that
    to the key checks it runs for each inserted row as well: each check is planned again,
    row after row (884k segment memberships took 47 s, 17 s with plans reused). A key check
    is the same index probe for any key, so here the server may reuse its plans."""
    await session.execute(text("SET LOCAL plan_cache_mode = auto"))
    yield
    await session.execute(text("RESET plan_cache_mode"))  # back to the connection's own


def on_after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the unit of work has committed (e.g. enqueue a job whose row must
    be visible first). Callbacks are dropped on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID | str | None = None
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error, then run after-commit work."""
    async with sessionmaker() as session:
        async with session.begin():
            if tenant_id is not None:
                await set_tenant(session, tenant_id)
            yield session
        await run_after_commit(session)
