"""Webhook endpoint rules: create (the secret shown once), read, change, delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.errors import NotFound
from shared.ingest.signing import new_webhook_secret
from shared.models import OutboundDelivery, WebhookEndpoint
from shared.outbound import repository
from shared.outbound.schemas import (
    DeliveryStatus,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointUpdate,
)


def parse_id(raw: str) -> uuid.UUID:
    return errors.parse_id(raw, "webhook endpoint")


async def create(
    session: AsyncSession, tenant_id: uuid.UUID, data: EndpointCreate
) -> EndpointCreated:
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=str(data.url),
        events=sorted({e.value for e in data.events}),
        description=data.description,
        enabled=data.enabled,
        secret=new_webhook_secret(),
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return EndpointCreated(
        **EndpointRead.model_validate(endpoint).model_dump(), secret=endpoint.secret
    )


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, tenant_id, parse_id(raw))
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.")
    return endpoint


async def update(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: EndpointUpdate
) -> WebhookEndpoint:
    endpoint = await get(session, tenant_id, raw)
    fields = data.model_fields_set
    if "url" in fields and data.url is not None:
        endpoint.url = str(data.url)
    if "events" in fields and data.events is not None:
        endpoint.events = sorted({e.value for e in data.events})
    if "description" in fields:
        endpoint.description = data.description
    if "enabled" in fields and data.enabled is not None:
        endpoint.enabled = data.enabled
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    """The endpoint and its delivery history; pending deliveries are dropped."""
    endpoint = await get(session, tenant_id, raw)
    await session.delete(endpoint)
    await session.flush()


async def deliveries(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    raw: str,
    *,
    limit: int,
    after: uuid.UUID | None,
    status: DeliveryStatus | None,
) -> Sequence[OutboundDelivery]:
    endpoint = await get(session, tenant_id, raw)
    return await repository.list_deliveries(
        session,
        tenant_id,
        endpoint.id,
        limit=limit,
        after=after,
        status=status.value if status else None,
    )
