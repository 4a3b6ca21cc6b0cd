"""`/v1/funnels`: funnel definitions, runs (jobs) and their results (JSON or an SVG chart),
and the customers who dropped out at a step (paged, or saved as a static segment)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep, encode_cursor
from services.api.problems import responses
from shared.errors import Conflict, FieldError, InvalidInput
from shared.funnels import repository, svg
from shared.funnels import service as funnels
from shared.funnels.schemas import (
    DropoffRead,
    DropoffsSave,
    FunnelCreate,
    FunnelRead,
    FunnelUpdate,
    RunAccepted,
    RunCreate,
    RunRead,
)
from shared.jobs.schemas import JobRead
from shared.segments import service as segments
from shared.segments.schemas import SegmentRead

router = APIRouter(route_class=Route, prefix="/v1/funnels", tags=["funnels"])
SVG = "image/svg+xml"


@router.get("", response_model=Page[FunnelRead])
async def list_(session: SessionDep, principal: ReadKey, page: PageDep) -> Page[FunnelRead]:
    rows = await repository.list_(
        session, principal.tenant_id, after=page.after_id(), limit=page.limit + 1
    )
    return page.page([funnels.to_read(f) for f in rows], lambda f: {"id": str(f.id)})


@router.post(
    "",
    response_model=FunnelRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(data: FunnelCreate, session: SessionDep, principal: WriteKey) -> FunnelRead:
    """Define a funnel: 2 to 20 steps (an event name and optional property filters), the
    order (`ordered`, `strict`, `any`), a conversion window, exclusion events, a date range,
    and whether customers or sessions are counted."""
    return await funnels.create(session, principal.tenant_id, data)


@router.get("/{funnel_id}", response_model=FunnelRead, responses=responses(404))
async def get(funnel_id: str, session: SessionDep, principal: ReadKey) -> FunnelRead:
    return funnels.to_read(await funnels.get(session, principal.tenant_id, funnel_id))


@router.patch(
    "/{funnel_id}", response_model=FunnelRead, responses=responses(404), dependencies=[Audited]
)
async def update(
    funnel_id: str, data: FunnelUpdate, session: SessionDep, principal: WriteKey
) -> FunnelRead:
    """Change any part; the whole definition is validated again. Earlier runs keep the
    definition they were computed with."""
    return await funnels.update(session, principal.tenant_id, funnel_id, data)


@router.delete(
    "/{funnel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(funnel_id: str, session: SessionDep, principal: WriteKey) -> Response:
    await funnels.delete(session, principal.tenant_id, funnel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{funnel_id}/runs",
    response_model=RunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(404),
    dependencies=[Idempotent, Audited],
)
async def create_run(
    funnel_id: str,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
    data: RunCreate | None = None,
) -> RunAccepted:
    """Compute the funnel (a job), optionally broken down by device, channel, an event or
    profile property, or segments, and with a trend by day, week or month. The result is at
    `GET /v1/funnels/{id}/runs/{run_id}` once the job has succeeded."""
    run, job = await funnels.create_run(
        session, queue, principal.tenant_id, funnel_id, data or RunCreate()
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.headers["Content-Location"] = f"/v1/funnels/{run.funnel_id}/runs/{run.id}"
    shown = JobRead.model_validate(job).model_dump()
    shown["id"] = shown.pop("job_id")
    return RunAccepted.model_validate({**shown, "run_id": run.id})


@router.get(
    "/{funnel_id}/runs/{run_id}",
    response_model=RunRead,
    responses={**responses(404, 409), 200: {"content": {SVG: {"schema": {"type": "string"}}}}},
)
async def get_run(
    funnel_id: str, run_id: str, request: Request, session: SessionDep, principal: ReadKey
) -> Any:
    """The run's result; with `Accept: image/svg+xml`, a bar chart of the steps with the
    drop-offs marked (409 until the run has finished)."""
    run = await funnels.get_run(session, principal.tenant_id, funnel_id, run_id)
    if _wants_svg(request.headers.get("accept", "")):
        if run.result is None:
            raise Conflict("The run has not finished yet.")
        funnel = await funnels.get(session, principal.tenant_id, funnel_id)
        return Response(svg.render(run.result, funnel.name), media_type=SVG)
    return await funnels.run_read(session, run)


def _wants_svg(accept: str) -> bool:
    best: tuple[float, str] = (0.0, "")
    for part in accept.split(","):
        media, _, rest = part.strip().partition(";")
        q = 1.0
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in (SVG, "application/json") and q > best[0]:
            best = (q, media)
    return best[1] == SVG


@router.get(
    "/{funnel_id}/runs/{run_id}/dropoffs",
    response_model=Page[DropoffRead],
    responses=responses(404, 409),
)
async def dropoffs(
    funnel_id: str,
    run_id: str,
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    step: Annotated[int, Query(ge=1, le=20, description="Reached this step (1-based) only.")],
) -> Page[DropoffRead]:
    """The customers (and anonymous visitors) who reached `step` and went no further, in a
    stable order, as of the run."""
    run = await funnels.get_run(session, principal.tenant_id, funnel_id, run_id)
    after = 0
    if page.cursor is not None:
        raw = page.cursor.get("i")
        if not isinstance(raw, int) or raw < 0:
            raise InvalidInput(
                "The cursor is not one this API gave out.",
                errors=[FieldError(["query", "cursor"], "Invalid cursor.")],
            )
        after = raw
    items = await funnels.dropoffs(session, principal.tenant_id, run, step, after, page.limit + 1)
    more = len(items) > page.limit
    return Page[DropoffRead](
        items=items[: page.limit],
        next_cursor=_cursor(after + page.limit) if more else None,
    )


def _cursor(i: int) -> str:
    return encode_cursor({"i": i})


@router.post(
    "/{funnel_id}/runs/{run_id}/dropoffs",
    response_model=SegmentRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(404, 409),
    dependencies=[Idempotent, Audited],
)
async def save_dropoffs(
    funnel_id: str, run_id: str, data: DropoffsSave, session: SessionDep, principal: WriteKey
) -> SegmentRead:
    """Save the known customers who reached `step` and went no further as a static segment
    (to survey them, say). Anonymous visitors cannot be members and are left out."""
    run = await funnels.get_run(session, principal.tenant_id, funnel_id, run_id)
    segment = await funnels.save_dropoffs(session, principal.tenant_id, run, data)
    return segments.to_read(segment)
