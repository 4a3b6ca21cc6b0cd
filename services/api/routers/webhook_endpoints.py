"""`/v1/webhook-endpoints`: URLs that receive Portrait's events, and their deliveries
(`admin` scope: an endpoint sends the store's data out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api.auditing import Audited
from services.api.deps import AdminKey, SessionDep
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.outbound import repository
from shared.outbound import service as endpoints
from shared.outbound.schemas import (
    DeliveryRead,
    DeliveryStatus,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointUpdate,
)

router = APIRouter(route_class=Route, prefix="/v1/webhook-endpoints", tags=["webhook endpoints"])


@router.post(
    "",
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(data: EndpointCreate, session: SessionDep, principal: AdminKey) -> EndpointCreated:
    """Subscribe a URL to events (`job.finished`, `segment.membership_changed`,
    `survey.response_received`, `persona.updated`). Each delivery is a POST of
    `{"type", "timestamp", "data"}` signed with the endpoint's secret (in this answer only)
    using Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
    retried with exponential backoff until a 2xx answer, 8 attempts at most. Deduplicate by
    `webhook-id`: a delivery can arrive more than once."""
    return await endpoints.create(session, principal.tenant_id, data)


@router.get("", response_model=Page[EndpointRead])
async def list_(session: SessionDep, principal: AdminKey, page: PageDep) -> Page[EndpointRead]:
    rows = await repository.list_endpoints(
        session, principal.tenant_id, limit=page.limit + 1, after=page.after_id()
    )
    return page.page([EndpointRead.model_validate(r) for r in rows], lambda e: {"id": str(e.id)})


@router.get("/{endpoint_id}", response_model=EndpointRead, responses=responses(404))
async def get(endpoint_id: str, session: SessionDep, principal: AdminKey) -> EndpointRead:
    return EndpointRead.model_validate(
        await endpoints.get(session, principal.tenant_id, endpoint_id)
    )


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointRead,
    responses=responses(404),
    dependencies=[Audited],
)
async def update(
    endpoint_id: str, data: EndpointUpdate, session: SessionDep, principal: AdminKey
) -> EndpointRead:
    """Change the URL, the events, the description, or pause it (`enabled: false`)."""
    return EndpointRead.model_validate(
        await endpoints.update(session, principal.tenant_id, endpoint_id, data)
    )


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(endpoint_id: str, session: SessionDep, principal: AdminKey) -> Response:
    await endpoints.delete(session, principal.tenant_id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/deliveries", response_model=Page[DeliveryRead], responses=responses(404)
)
async def deliveries(
    endpoint_id: str,
    session: SessionDep,
    principal: AdminKey,
    page: PageDep,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> Page[DeliveryRead]:
    """Deliveries newest first: status (`pending`, `succeeded`, `failed`), attempts, the
    last answer's status code, the next attempt."""
    rows = await endpoints.deliveries(
        session,
        principal.tenant_id,
        endpoint_id,
        limit=page.limit + 1,
        after=page.after_id(),
        status=status,
    )
    items = [
        DeliveryRead.model_validate(r).model_copy(
            update={"next_attempt_at": r.next_attempt_at if r.status == "pending" else None}
        )
        for r in rows
    ]
    return page.page(items, lambda d: {"id": str(d.id)})
