"""The worker's side of outbound webhooks: send due deliveries, signed like inbound ones
(Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,...`), and
retry failures with exponential backoff until `outbound_max_attempts`.

A delivery is claimed with a lease (its next attempt pushed past the send timeout) in a short
transaction, sent outside any transaction, and its outcome written in another: a worker killed
mid-send leaves it to be sent again after the lease, so receivers must deduplicate by
`webhook-id` (the Standard Webhooks contract). Nothing but the status code and the error's
type is kept of an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.base import utcnow
from shared.db.engine import unit_of_work
from shared.ingest.signing import sign_standard
from shared.outbound import repository

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF_S = 6 * 3600.0


@dataclass(frozen=True)
class Policy:
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_base_s: float = 30.0


def backoff_s(attempt: int, policy: Policy) -> float:
    """Delay after the `attempt`-th failure: base, 2x, 4x, ... capped at 6 h, +-10% jitter so
    a receiver that comes back is not hit by every retry at once."""
    delay = min(policy.backoff_base_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return float(delay * random.uniform(0.9, 1.1))


def body(event_type: str, created_at: datetime, payload: dict[str, Any]) -> bytes:
    """The same bytes on every attempt of one delivery."""
    envelope = {"type": event_type, "timestamp": created_at.isoformat(), "data": payload}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


async def _send(
    client: httpx.AsyncClient, url: str, secret: str, delivery_id: uuid.UUID, content: bytes
) -> tuple[int | None, str | None]:
    msg_id = str(delivery_id)
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "Portrait-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, content),
    }
    try:
        response = await client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


async def deliver_tenant(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    policy: Policy,
) -> int:
    async with unit_of_work(sessionmaker, tenant_id) as session:
        rows = await repository.claim_due(session, tenant_id, BATCH, policy.timeout_s + 30)
        endpoints = await repository.endpoints_by_id(
            session, tenant_id, [r.endpoint_id for r in rows]
        )
    if not rows:
        return 0

    async def attempt(row: Any) -> tuple[Any, int | None, str | None]:
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return row, None, "endpoint disabled"
        content = body(row.event_type, row.created_at, row.payload)
        code, error = await _send(client, endpoint.url, endpoint.secret, row.id, content)
        return row, code, error

    results = await asyncio.gather(*(attempt(r) for r in rows))
    now = utcnow()
    async with unit_of_work(sessionmaker, tenant_id) as session:
        for row, code, error in results:
            if error is None:
                status, next_at, done = "succeeded", None, now
            elif row.attempts >= policy.max_attempts or error == "endpoint disabled":
                status, next_at, done = "failed", None, None
            else:
                status, done = "pending", None
                next_at = now + timedelta(seconds=backoff_s(row.attempts, policy))
            await repository.record_attempt(
                session,
                tenant_id,
                row.id,
                status=status,
                status_code=code,
                error=error,
                next_attempt_at=next_at,
                delivered_at=done,
            )
    return len(rows)


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, policy: Policy
) -> int:
    """One round over every tenant with deliveries due; returns how many were attempted."""
    async with unit_of_work(sessionmaker) as session:
        tenants = await repository.due_tenants(session)
    sent = 0
    for tenant_id in tenants:
        sent += await deliver_tenant(sessionmaker, client, tenant_id, policy)
    return sent


async def deliver_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    policy: Policy,
    *,
    interval_s: float,
) -> None:
    while True:
        try:
            if not await deliver_due(sessionmaker, client, policy):
                await asyncio.sleep(interval_s)
        except Exception:  # the loop must outlive any one bad round
            log.exception("outbound webhook round failed")
            await asyncio.sleep(interval_s)
