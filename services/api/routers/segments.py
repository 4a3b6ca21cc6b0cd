"""`/v1/segments`: rule-based, static and built-in audiences; preview, refresh, members, the
segment's portrait, and STP comparison."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.jobs import service as jobs
from shared.jobs.schemas import JobRead
from shared.segments import profile as segment_profile
from shared.segments import repository
from shared.segments import service as segments
from shared.segments.schemas import (
    CompareRequest,
    CompareResult,
    MemberRead,
    PreviewRequest,
    PreviewResult,
    SegmentCreate,
    SegmentProfile,
    SegmentRead,
    SegmentUpdate,
)

router = APIRouter(route_class=Route, prefix="/v1/segments", tags=["segments"])


@router.get("", response_model=Page[SegmentRead])
async def list_(
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    kind: Annotated[Literal["rule", "static", "segmentation", "builtin"] | None, Query()] = None,
) -> Page[SegmentRead]:
    """Segments, newest first. The built-in core-customer segments are always there."""
    await segments.ensure_builtins(session, principal.tenant_id)
    rows = await repository.list_(
        session, principal.tenant_id, kind=kind, after=page.after_id(), limit=page.limit + 1
    )
    return page.page([segments.to_read(s) for s in rows], lambda s: {"id": str(s.id)})


@router.post(
    "",
    response_model=SegmentRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(
    data: SegmentCreate, session: SessionDep, principal: WriteKey, queue: QueueDep
) -> SegmentRead:
    """Save a rule segment (its membership is computed by a job, `refresh_job_id`) or a
    static one (an uploaded list of customers)."""
    return await segments.create(session, queue, principal.tenant_id, data)


@router.post("/preview", response_model=PreviewResult)
async def preview(data: PreviewRequest, session: SessionDep, principal: ReadKey) -> PreviewResult:
    """Size, share of all customers and a sample for a condition, without saving it."""
    return await segments.preview(session, principal.tenant_id, data.condition, data.sample_size)


@router.post("/compare", response_model=CompareResult, responses=responses(404))
async def compare(data: CompareRequest, session: SessionDep, principal: ReadKey) -> CompareResult:
    """STP targeting: rank segments by a weighted score of size, revenue, predicted value,
    order value, growth and reachability."""
    return await segment_profile.compare(session, principal.tenant_id, data)


@router.get("/{segment_id}", response_model=SegmentRead, responses=responses(404))
async def get(segment_id: str, session: SessionDep, principal: ReadKey) -> SegmentRead:
    return segments.to_read(await segments.get(session, principal.tenant_id, segment_id))


@router.patch(
    "/{segment_id}", response_model=SegmentRead, responses=responses(404), dependencies=[Audited]
)
async def update(
    segment_id: str,
    data: SegmentUpdate,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
) -> SegmentRead:
    """Rename, re-describe, reschedule, or change the rule (which queues a refresh)."""
    return await segments.update(session, queue, principal.tenant_id, segment_id, data)


@router.delete(
    "/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(segment_id: str, session: SessionDep, principal: WriteKey) -> Response:
    await segments.delete(session, principal.tenant_id, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{segment_id}/refresh",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(404),
    dependencies=[Idempotent, Audited],
)
async def refresh(
    segment_id: str,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
) -> JobRead:
    """Recompute membership (a job). Who entered and left, and when, is kept."""
    segment = await segments.get(session, principal.tenant_id, segment_id)
    job = await jobs.create(
        session, queue, principal.tenant_id, segments.REFRESH, {"segment_id": str(segment.id)}
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)


@router.get("/{segment_id}/members", response_model=Page[MemberRead], responses=responses(404))
async def members(
    segment_id: str, session: SessionDep, principal: ReadKey, page: PageDep
) -> Page[MemberRead]:
    segment = await segments.get(session, principal.tenant_id, segment_id)
    rows = await repository.members(
        session, principal.tenant_id, segment.id, after=page.after_id(), limit=page.limit + 1
    )
    items = [
        MemberRead(customer_id=r.customer_id, external_id=r.external_id, entered_at=r.entered_at)
        for r in rows
    ]
    return page.page(items, lambda m: {"id": str(m.customer_id)})


@router.get("/{segment_id}/profile", response_model=SegmentProfile, responses=responses(404))
async def get_profile(segment_id: str, session: SessionDep, principal: ReadKey) -> SegmentProfile:
    """The segment's portrait: size, value, growth, and distributions next to the whole
    store's with the lift."""
    return await segment_profile.profile(session, principal.tenant_id, segment_id)
