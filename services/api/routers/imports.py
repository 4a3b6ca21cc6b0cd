"""`/v1/imports`: bulk CSV or NDJSON upload, streamed into storage and imported by a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.problems import responses
from shared.ingest import service as ingest
from shared.ingest.imports import ImportFormat, ImportKind
from shared.jobs.schemas import JobRead

router = APIRouter(route_class=Route, prefix="/v1/imports", tags=["imports"])

_FORMATS = {
    "text/csv": ImportFormat.csv,
    "application/x-ndjson": ImportFormat.ndjson,
    "application/ndjson": ImportFormat.ndjson,
    "application/jsonl": ImportFormat.ndjson,
}


@router.post(
    "",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            # Raw bytes of any size, streamed: OpenAPI 3.1 describes a raw payload by its
            # media type alone (a JSON Schema `string` would invite fuzzers to send objects).
            "content": {"text/csv": {}, "application/x-ndjson": {}},
        }
    },
    dependencies=[Idempotent, Audited],
)
async def create(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    kind: Annotated[ImportKind, Query(description="What the rows are.")],
    format: Annotated[
        ImportFormat | None, Query(description="Default: from the Content-Type header.")
    ] = None,
) -> JobRead:
    """Upload a file of any size (the body is the file, streamed). Answers 202 with the job;
    its result counts rows imported and lists each rejected row with its line and reason."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    job = await ingest.start_import(
        session,
        queue,
        principal.tenant_id,
        kind,
        format or _FORMATS.get(content_type),
        request.stream(),
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)
