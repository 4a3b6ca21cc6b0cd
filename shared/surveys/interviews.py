"""Interview notes tied to customers: the quotes and tags that become evidence for personas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.customers import service as customers
from shared.db.base import new_id
from shared.errors import FieldError, InvalidInput, NotFound
from shared.models import Interview
from shared.surveys import repository
from shared.surveys.schemas import InterviewCreate, InterviewRead, InterviewUpdate, Quote

_NOT_FOUND = "No interview with this id."


def to_read(i: Interview) -> InterviewRead:
    return InterviewRead(
        id=i.id,
        customer_id=i.customer_id,
        interviewed_at=i.interviewed_at,
        interviewer=i.interviewer,
        notes=i.notes,
        quotes=[Quote.model_validate(q) for q in i.quotes],
        tags=list(i.tags),
        created_at=i.created_at,
        updated_at=i.updated_at,
    )


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> Interview:
    try:
        interview_id = uuid.UUID(raw)
    except ValueError:
        raise NotFound(_NOT_FOUND) from None
    interview = await repository.get_interview(session, tenant_id, interview_id)
    if interview is None:
        raise NotFound(_NOT_FOUND)
    return interview


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: InterviewCreate) -> Interview:
    try:
        customer = await customers.resolve(session, tenant_id, data.customer_id)
    except NotFound:
        raise InvalidInput(
            "No customer with this id.",
            errors=[FieldError(["body", "customer_id"], "no such customer")],
        ) from None
    interview = Interview(
        tenant_id=tenant_id,
        id=new_id(),
        customer_id=customer.id,
        interviewed_at=data.interviewed_at,
        interviewer=data.interviewer,
        notes=data.notes,
        quotes=[q.model_dump() for q in data.quotes],
        tags=sorted(set(data.tags)),
    )
    session.add(interview)
    await session.flush()
    await session.refresh(interview)
    return interview


async def update(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: InterviewUpdate
) -> Interview:
    interview = await get(session, tenant_id, raw)
    fields = data.model_fields_set
    if "interviewed_at" in fields and data.interviewed_at is not None:
        interview.interviewed_at = data.interviewed_at
    if "interviewer" in fields:
        interview.interviewer = data.interviewer
    if "notes" in fields:
        interview.notes = data.notes
    if "quotes" in fields:
        interview.quotes = [q.model_dump() for q in data.quotes or []]
    if "tags" in fields:
        interview.tags = sorted(set(data.tags or []))
    interview.updated_at = datetime.now(UTC)
    await session.flush()
    return interview


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    interview = await get(session, tenant_id, raw)
    await session.delete(interview)
    await session.flush()
