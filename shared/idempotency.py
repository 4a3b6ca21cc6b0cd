"""How long `Idempotency-Key`s are kept, and their purge (the API side is
services/api/idempotency.py)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Never fewer hours than this, whatever the settings say: clients retry for a day.
KEEP_HOURS_MIN = 24


async def purge(session: AsyncSession, keep_hours: int) -> int:
    """Across tenants (an owner-run function): drop keys older than `keep_hours` (at least
    24). Returns how many."""
    result = await session.execute(
        text("SELECT portrait_purge_idempotency_keys(:h)"), {"h": max(keep_hours, KEEP_HOURS_MIN)}
    )
    return int(result.scalar_one())
