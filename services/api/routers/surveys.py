"""`/v1/surveys`: surveys and their questions, the question library, distributions to
audiences (invitation tokens) and anonymous links, results and responses (CSV too), and the
tenant's policy on survey answers versus store data."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auditing import Audited
from services.api.deps import AdminKey, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.errors import NotFound
from shared.models import Tenant
from shared.surveys import library, repository, results
from shared.surveys import service as surveys
from shared.surveys.schemas import (
    DistributionCreate,
    DistributionCreated,
    DistributionRead,
    Group,
    LibraryQuestion,
    RecipientRead,
    ResponseRead,
    SurveyCreate,
    SurveyRead,
    SurveyResults,
    SurveySettings,
    SurveyUpdate,
)

router = APIRouter(route_class=Route, prefix="/v1/surveys", tags=["surveys"])
CSV = "text/csv"
_CSV_DOC = {"content": {CSV: {"schema": {"type": "string"}}}}


def _wants_csv(request: Request) -> bool:
    return CSV in request.headers.get("accept", "")


@router.get("", response_model=Page[SurveyRead])
async def list_(session: SessionDep, principal: ReadKey, page: PageDep) -> Page[SurveyRead]:
    """Surveys, newest first."""
    rows = await repository.list_(
        session, principal.tenant_id, after=page.after_id(), limit=page.limit + 1
    )
    return page.page([surveys.to_read(s) for s in rows], lambda s: {"id": str(s.id)})


@router.post(
    "",
    response_model=SurveyRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(data: SurveyCreate, session: SessionDep, principal: WriteKey) -> SurveyRead:
    """A draft survey: your own questions, library questions (`library`), or a `template`.
    `warnings` says when it has fewer than 7 or more than 20 questions."""
    return surveys.to_read(await surveys.create(session, principal.tenant_id, data))


@router.get("/library", response_model=list[LibraryQuestion])
async def get_library(principal: ReadKey) -> list[LibraryQuestion]:
    """The built-in question library; `templates` says which templates use a question."""
    return library.library()


@router.get("/settings", response_model=SurveySettings)
async def get_settings(session: SessionDep, principal: ReadKey) -> SurveySettings:
    tenant = await session.get(Tenant, principal.tenant_id)
    return SurveySettings(
        survey_answers_override_store=bool(tenant and tenant.survey_answers_override_store)
    )


@router.patch("/settings", response_model=SurveySettings, dependencies=[Audited])
async def update_settings(
    data: SurveySettings, session: SessionDep, principal: AdminKey
) -> SurveySettings:
    """Whether a survey answer may overwrite a fact the store sent (admin)."""
    tenant = await session.get(Tenant, principal.tenant_id)
    assert tenant is not None
    tenant.survey_answers_override_store = data.survey_answers_override_store
    await session.flush()
    return data


@router.get("/{survey_id}", response_model=SurveyRead, responses=responses(404))
async def get(survey_id: str, session: SessionDep, principal: ReadKey) -> SurveyRead:
    return surveys.to_read(await surveys.get(session, principal.tenant_id, survey_id))


@router.patch(
    "/{survey_id}", response_model=SurveyRead, responses=responses(404, 409), dependencies=[Audited]
)
async def update(
    survey_id: str, data: SurveyUpdate, session: SessionDep, principal: WriteKey
) -> SurveyRead:
    """Edit; `status` moves draft -> active -> closed. Changing an active survey's questions
    in a way that would invalidate answers already given is a 409; other changes make a new
    `version` (responses record the version they answered)."""
    return surveys.to_read(await surveys.update(session, principal.tenant_id, survey_id, data))


@router.delete(
    "/{survey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404, 409),
    dependencies=[Audited],
)
async def delete(survey_id: str, session: SessionDep, principal: WriteKey) -> Response:
    """Delete a draft or closed survey with its responses (close an active one first)."""
    await surveys.delete(session, principal.tenant_id, survey_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{survey_id}/distributions",
    response_model=DistributionCreated,
    status_code=status.HTTP_201_CREATED,
    responses={**responses(404, 409), 201: {"description": "Created", **_CSV_DOC}},
    dependencies=[Idempotent, Audited],
)
async def distribute(
    survey_id: str,
    data: DistributionCreate,
    session: SessionDep,
    principal: WriteKey,
    request: Request,
) -> DistributionCreated | Response:
    """Send an active survey to a saved segment or a built-in group: one single-use token
    and link per recipient, listed in this answer only (as CSV with `Accept: text/csv`).
    `kind: link` makes one anonymous link for many respondents."""
    created = await surveys.distribute(
        session, principal.tenant_id, survey_id, data, str(request.base_url)
    )
    if _wants_csv(request):
        return PlainTextResponse(
            results.invitations_csv(created),
            status_code=status.HTTP_201_CREATED,
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="invitations-{created.id}.csv"'},
        )
    return created


@router.get(
    "/{survey_id}/distributions",
    response_model=Page[DistributionRead],
    responses=responses(404),
)
async def list_distributions(
    survey_id: str, session: SessionDep, principal: ReadKey, page: PageDep
) -> Page[DistributionRead]:
    survey = await surveys.get(session, principal.tenant_id, survey_id)
    rows = await repository.list_distributions(
        session, principal.tenant_id, survey.id, after=page.after_id(), limit=page.limit + 1
    )
    return page.page([surveys.distribution_read(d) for d in rows], lambda d: {"id": str(d.id)})


@router.get(
    "/{survey_id}/distributions/{distribution_id}/recipients",
    response_model=Page[RecipientRead],
    responses=responses(404),
)
async def recipients(
    survey_id: str,
    distribution_id: str,
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
) -> Page[RecipientRead]:
    """Who was invited and who answered (tokens are not shown again: only digests are kept)."""
    survey = await surveys.get(session, principal.tenant_id, survey_id)
    distribution = await repository.get_distribution(
        session,
        principal.tenant_id,
        survey.id,
        surveys.parse_id(distribution_id, "distribution"),
    )
    if distribution is None:
        raise NotFound("No distribution with this id.")
    rows = await repository.recipients(
        session, principal.tenant_id, distribution.id, after=page.after_id(), limit=page.limit + 1
    )
    items = [
        RecipientRead(
            invitation_id=r.id,
            customer_id=r.customer_id,
            external_id=r.external_id,
            status="completed"
            if r.completed_at is not None
            else "started"
            if r.status is not None
            else "invited",
        )
        for r in rows
    ]
    return page.page(items, lambda r: {"id": str(r.invitation_id)})


@router.get(
    "/{survey_id}/results",
    response_model=SurveyResults,
    responses={**responses(404), 200: {"description": "Results", **_CSV_DOC}},
)
async def get_results(
    survey_id: str,
    session: SessionDep,
    principal: ReadKey,
    request: Request,
    segment_id: Annotated[str | None, Query(max_length=64)] = None,
    group: Annotated[Group | None, Query()] = None,
) -> SurveyResults | Response:
    """Per question counts and shares, mean and median, NPS and CSAT, free texts; for the
    respondents in one segment or built-in group if given; response rates per built-in group
    next to the audience's makeup. `Accept: text/csv` exports the responses instead."""
    if _wants_csv(request):
        return await _responses_csv(session, principal.tenant_id, survey_id, segment_id, group)
    return await results.results(
        session, principal.tenant_id, survey_id, segment_id=segment_id, group=group
    )


async def _responses_csv(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: str,
    segment_id: str | None,
    group: str | None,
) -> Response:
    survey = await surveys.get(session, tenant_id, survey_id)
    audience = None
    if segment_id is not None or group is not None:
        audience = await surveys.audience(
            session, tenant_id, segment_id=segment_id, group=group, loc=["query", "segment_id"]
        )
    rows = await repository.list_responses(
        session, tenant_id, survey.id, after=None, limit=None, audience=audience
    )
    reads = await surveys.response_reads(session, survey, rows)
    return PlainTextResponse(
        results.responses_csv(surveys.questions_of(survey), reads),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="responses-{survey.id}.csv"'},
    )


@router.get(
    "/{survey_id}/responses",
    response_model=Page[ResponseRead],
    responses={**responses(404), 200: {"description": "Responses", **_CSV_DOC}},
)
async def list_responses(
    survey_id: str,
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    request: Request,
) -> Page[ResponseRead] | Response:
    """Raw responses with their answers, oldest first; `Accept: text/csv` gives all of them."""
    if _wants_csv(request):
        return await _responses_csv(session, principal.tenant_id, survey_id, None, None)
    survey = await surveys.get(session, principal.tenant_id, survey_id)
    rows = await repository.list_responses(
        session, principal.tenant_id, survey.id, after=page.after_id(), limit=page.limit + 1
    )
    reads = await surveys.response_reads(session, survey, rows)
    return page.page(reads, lambda r: {"id": str(r.id)})
