"""Alembic environment: runs on a connection handed in by `shared.db.migrate`, or on its own
async engine from DATABASE_URL when the `alembic` command is used by hand."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from shared.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from shared.db.engine import make_engine, owner_url
    from shared.settings import get_settings

    settings = get_settings()
    engine = make_engine(owner_url(settings), settings, pool_size=1)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
