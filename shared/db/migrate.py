"""Runs alembic in code: `portrait migrate`, the test session and `portrait up` use it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.db.engine import async_url, make_engine, owner_url
from shared.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Connection | None = None, app_user: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes["app_user"] = app_user or "portrait_app"
    return cfg


# A migration may rebuild an index or backfill a column over every tenant's rows: no request's
# statement timeout applies to it (a day at most, so nothing hangs forever).
MIGRATION_TIMEOUT_MS = 24 * 3600 * 1000


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Upgrade as the owner, then make sure the app role can log in with its password."""
    engine = make_engine(
        owner_url(settings), settings, pool_size=1, statement_timeout_ms=MIGRATION_TIMEOUT_MS
    )
    app_user = settings.database.app_user
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c, app_user), revision))
            if settings.database.app_password and not settings.database.app_url:
                password = settings.database.app_password.replace("'", "''")
                await conn.execute(text(f"ALTER ROLE {app_user} PASSWORD '{password}'"))
            await conn.commit()
    finally:
        await engine.dispose()


async def downgrade(settings: Settings, revision: str) -> None:
    engine = make_engine(
        owner_url(settings), settings, pool_size=1, statement_timeout_ms=MIGRATION_TIMEOUT_MS
    )
    try:
        async with engine.connect() as conn:
            await conn.run_sync(
                lambda c: command.downgrade(alembic_config(c, settings.database.app_user), revision)
            )
            await conn.commit()
    finally:
        await engine.dispose()


async def create_database_if_missing(url: str, settings: Settings) -> None:
    """Create the database named in `url` (tests and first start-ups)."""
    u = async_url(url)
    name = u.database
    engine = make_engine(u.set(database="postgres"), settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
