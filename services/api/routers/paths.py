"""`/v1/paths`: the most common journeys after (or before) an event, for a Sankey (a job)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from shared.funnels import paths
from shared.funnels.schemas import PathsRequest
from shared.jobs import service as jobs
from shared.jobs.schemas import JobRead

router = APIRouter(route_class=Route, prefix="/v1/paths", tags=["funnels"])


@router.post(
    "",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Idempotent, Audited],
)
async def create(
    data: PathsRequest,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
) -> JobRead:
    """Queue a journey analysis; the job's `result` holds `nodes` (id, depth, event, count),
    `links` (source, target, value) and the `top_paths`."""
    params = {
        "request": data.model_dump(mode="json", by_alias=True, exclude_none=True),
        "requested_at": datetime.now(UTC).isoformat(),
    }
    job = await jobs.create(session, queue, principal.tenant_id, paths.RUN, params)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)
