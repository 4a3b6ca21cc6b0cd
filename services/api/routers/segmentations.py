"""`/v1/segmentations`: data-driven segmentation runs (`rfm`, `kmeans`) that make segments."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.problems import responses
from shared.segments import segmentation
from shared.segments.segmentation import SegmentationCreate, SegmentationRead

router = APIRouter(route_class=Route, prefix="/v1/segmentations", tags=["segments"])


@router.post(
    "",
    response_model=SegmentationRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(409),
    dependencies=[Idempotent, Audited],
)
async def create(
    data: SegmentationCreate,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
) -> SegmentationRead:
    """Start a segmentation (a job). `rfm` makes one segment per named RFM group (it needs the
    customer-value analysis); `kmeans` clusters buyers, with `k` given or chosen from
    `k_min`..`k_max` by silhouette, reproducibly from `seed`."""
    run = await segmentation.start(session, queue, principal.tenant_id, data)
    response.headers["Location"] = f"/v1/segmentations/{run.id}"
    return await segmentation.read(session, principal.tenant_id, str(run.id))


@router.get("/{segmentation_id}", response_model=SegmentationRead, responses=responses(404))
async def get(segmentation_id: str, session: SessionDep, principal: ReadKey) -> SegmentationRead:
    """The run: its job's status, diagnostics (k, silhouette), and the segments it made."""
    return await segmentation.read(session, principal.tenant_id, segmentation_id)
