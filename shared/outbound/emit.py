"""`emit`: the one call domain code makes to announce an event to the store's endpoints.

Call it inside the transaction that makes the change (a job handler's session, a request's
session): one delivery row per subscribed endpoint is written there, so the event is sent if
and only if the change commits. The worker sends it within about a second, signed, and
retries with backoff. With no endpoint subscribed it costs one indexed SELECT.

`payload` holds ids, counts and statuses, never personal data (names, emails, answers): a
receiver that wants more fetches it with its API key.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.outbound import repository
from shared.outbound.schemas import EventType


async def emit(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    event_type: EventType | str,
    payload: dict[str, Any],
) -> list[uuid.UUID]:
    """Queue `event_type` with `payload` (JSON-serialisable) for every enabled endpoint of
    the tenant subscribed to it; returns the delivery ids (empty when none subscribe)."""
    kind = EventType(event_type)
    endpoint_ids = await repository.subscribed(session, tenant_id, kind.value)
    if not endpoint_ids:
        return []
    return await repository.insert_deliveries(session, tenant_id, endpoint_ids, kind.value, payload)
