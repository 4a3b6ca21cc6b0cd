"""`/v1/interviews`: notes from customer interviews, with highlighted quotes and tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api.auditing import Audited
from services.api.deps import ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.customers import service as customers
from shared.surveys import interviews, repository
from shared.surveys.schemas import InterviewCreate, InterviewRead, InterviewTag, InterviewUpdate

router = APIRouter(route_class=Route, prefix="/v1/interviews", tags=["interviews"])


@router.get("", response_model=Page[InterviewRead], responses=responses(404))
async def list_(
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    customer_id: Annotated[str | None, Query(max_length=260, pattern=r"^[^\x00]+$")] = None,
    tag: Annotated[InterviewTag | None, Query()] = None,
) -> Page[InterviewRead]:
    """Interviews, newest first; of one customer, or carrying one tag."""
    cid = None
    if customer_id is not None:
        cid = (await customers.resolve(session, principal.tenant_id, customer_id)).id
    rows = await repository.list_interviews(
        session,
        principal.tenant_id,
        customer_id=cid,
        tag=tag,
        after=page.after_id(),
        limit=page.limit + 1,
    )
    return page.page([interviews.to_read(i) for i in rows], lambda i: {"id": str(i.id)})


@router.post(
    "",
    response_model=InterviewRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(data: InterviewCreate, session: SessionDep, principal: WriteKey) -> InterviewRead:
    return interviews.to_read(await interviews.create(session, principal.tenant_id, data))


@router.get("/{interview_id}", response_model=InterviewRead, responses=responses(404))
async def get(interview_id: str, session: SessionDep, principal: ReadKey) -> InterviewRead:
    return interviews.to_read(await interviews.get(session, principal.tenant_id, interview_id))


@router.patch(
    "/{interview_id}",
    response_model=InterviewRead,
    responses=responses(404),
    dependencies=[Audited],
)
async def update(
    interview_id: str, data: InterviewUpdate, session: SessionDep, principal: WriteKey
) -> InterviewRead:
    return interviews.to_read(
        await interviews.update(session, principal.tenant_id, interview_id, data)
    )


@router.delete(
    "/{interview_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(interview_id: str, session: SessionDep, principal: WriteKey) -> Response:
    await interviews.delete(session, principal.tenant_id, interview_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
