"""`/v1/analyses`: customer value (RFM, lifecycle, churn risk, predicted lifetime value)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from shared.analytics import value
from shared.analytics.schemas import CustomerValueRequest, ValueSummary
from shared.jobs import service as jobs
from shared.jobs.schemas import JobRead

router = APIRouter(route_class=Route, prefix="/v1/analyses", tags=["analyses"])


@router.post(
    "/customer-value",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Idempotent, Audited],
)
async def create_customer_value(
    data: CustomerValueRequest,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
) -> JobRead:
    """Recompute RFM scores and segments, lifecycle stages, BG/NBD and Gamma-Gamma predictions
    and core-customer flags for every customer (a job; it also runs nightly). `as_of` ends
    the observation period, so predictions can be checked against what came after."""
    params = data.model_dump(mode="json", exclude_none=True)
    job = await jobs.create(session, queue, principal.tenant_id, value.CUSTOMER_VALUE.name, params)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)


@router.get("/customer-value/summary", response_model=ValueSummary)
async def get_customer_value_summary(session: SessionDep, principal: ReadKey) -> ValueSummary:
    """Counts per RFM segment and lifecycle stage, core customers, total predicted value, the
    fitted model parameters, and when the analysis last ran."""
    return await value.summary(session, principal.tenant_id)
