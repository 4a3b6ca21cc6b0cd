"""All SQL for webhook endpoints and their deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import new_id
from shared.models import OutboundDelivery, WebhookEndpoint


async def subscribed(
    session: AsyncSession, tenant_id: uuid.UUID, event_type: str
) -> Sequence[uuid.UUID]:
    stmt = select(WebhookEndpoint.id).where(
        WebhookEndpoint.tenant_id == tenant_id,
        WebhookEndpoint.enabled.is_(True),
        bindparam("event", event_type, type_=String) == any_(WebhookEndpoint.events),
    )
    return (await session.execute(stmt)).scalars().all()


async def insert_deliveries(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    endpoint_ids: Sequence[uuid.UUID],
    event_type: str,
    payload: dict[str, Any],
) -> list[uuid.UUID]:
    ids = [new_id() for _ in endpoint_ids]
    await session.execute(
        insert(OutboundDelivery),
        [
            {
                "tenant_id": tenant_id,
                "id": delivery_id,
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
            }
            for delivery_id, endpoint_id in zip(ids, endpoint_ids, strict=True)
        ],
    )
    return ids


async def due_tenants(session: AsyncSession) -> list[uuid.UUID]:
    """Tenants with deliveries due, through an owner-run function (ids only)."""
    return list((await session.execute(text("SELECT portrait_outbound_tenants()"))).scalars())


async def claim_due(
    session: AsyncSession, tenant_id: uuid.UUID, limit: int, lease_s: float
) -> Sequence[Any]:
    """Take up to `limit` due deliveries, counting the attempt and pushing `next_attempt_at`
    past the lease: a worker that dies mid-send leaves them to be retried after it. Rows
    another worker holds are skipped."""
    due = (
        select(OutboundDelivery.id)
        .where(
            OutboundDelivery.tenant_id == tenant_id,
            OutboundDelivery.status == "pending",
            OutboundDelivery.next_attempt_at <= text("now()"),
        )
        .order_by(OutboundDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(OutboundDelivery)
        .where(
            OutboundDelivery.tenant_id == tenant_id, OutboundDelivery.id.in_(due.scalar_subquery())
        )
        .values(
            attempts=OutboundDelivery.attempts + 1,
            next_attempt_at=text("now() + make_interval(secs => :lease)").bindparams(lease=lease_s),
        )
        .returning(
            OutboundDelivery.id,
            OutboundDelivery.endpoint_id,
            OutboundDelivery.event_type,
            OutboundDelivery.payload,
            OutboundDelivery.attempts,
            OutboundDelivery.created_at,
        )
    )
    return (await session.execute(stmt)).all()


async def endpoints_by_id(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id.in_(set(ids))
    )
    return {e.id: e for e in (await session.execute(stmt)).scalars()}


async def record_attempt(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
    delivered_at: datetime | None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "last_status_code": status_code,
        "last_error": error[:200] if error else None,
        "delivered_at": delivered_at,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    await session.execute(
        update(OutboundDelivery)
        .where(and_(OutboundDelivery.tenant_id == tenant_id, OutboundDelivery.id == delivery_id))
        .values(**values)
    )


async def list_endpoints(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
) -> Sequence[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    if after is not None:
        stmt = stmt.where(WebhookEndpoint.id < after)
    stmt = stmt.order_by(WebhookEndpoint.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def get_endpoint(
    session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_deliveries(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None,
    status: str | None,
) -> Sequence[OutboundDelivery]:
    stmt = select(OutboundDelivery).where(
        OutboundDelivery.tenant_id == tenant_id, OutboundDelivery.endpoint_id == endpoint_id
    )
    if status:
        stmt = stmt.where(OutboundDelivery.status == status)
    if after is not None:
        stmt = stmt.where(OutboundDelivery.id < after)
    stmt = stmt.order_by(OutboundDelivery.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()
