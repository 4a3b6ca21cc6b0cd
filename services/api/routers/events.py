"""`/v1/events`: one event or a batch of up to 1,000, stored once per event id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, status

from services.api.auditing import Audited
from services.api.deps import SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.problems import responses
from shared.ingest import service as ingest
from shared.ingest.schemas import EventBatch, EventIn, EventsAccepted, IdentifyIn

router = APIRouter(route_class=Route, prefix="/v1", tags=["events"])


@router.post(
    "/events",
    response_model=EventsAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(413),
    dependencies=[Idempotent, Audited],
)
async def create(
    data: Annotated[EventIn | EventBatch, Body()],
    request: Request,
    session: SessionDep,
    principal: WriteKey,
) -> EventsAccepted:
    """Store one event, or `{"events": [...]}` (1 to 1,000). A repeated event id is stored
    once; the answer counts what was new."""
    events = data.events if isinstance(data, EventBatch) else [data]
    side = request.app.state.side_sessionmaker
    return await ingest.ingest_events(session, principal.tenant_id, events, identities_apart=side)


@router.post(
    "/identify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def identify(data: IdentifyIn, session: SessionDep, principal: WriteKey) -> None:
    """Tie an anonymous visitor to a customer: their earlier events join the profile."""
    await ingest.identify(session, principal.tenant_id, data)
