"""`/v1/jobs`: status of long-running work, its list, and cancelling it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.jobs import service as jobs
from shared.jobs.schemas import JobRead, JobStatus

router = APIRouter(route_class=Route, prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=Page[JobRead])
async def list_(
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[JobRead]:
    """Jobs of this tenant, newest first."""
    rows = await jobs.list_(
        session,
        principal.tenant_id,
        limit=page.limit + 1,
        after=page.after_id(),
        status=status,
        kind=kind,
    )
    return page.page([JobRead.model_validate(r) for r in rows], lambda j: {"id": str(j.job_id)})


@router.get("/{job_id}", response_model=JobRead, responses=responses(404))
async def get(job_id: str, session: SessionDep, principal: ReadKey) -> JobRead:
    return JobRead.model_validate(await jobs.get(session, principal.tenant_id, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses=responses(404, 409),
    dependencies=[Audited],
)
async def cancel(job_id: str, session: SessionDep, principal: WriteKey, queue: QueueDep) -> JobRead:
    """Cancel a queued or running job; a finished job answers 409."""
    return JobRead.model_validate(await jobs.cancel(session, queue, principal.tenant_id, job_id))
