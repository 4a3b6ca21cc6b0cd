"""`/v1/personas`: generate personas from target segments (a job), read, edit (edits lock),
versions with drift, a printable card; and `/v1/customers/{id}/persona`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from services.api.auditing import Audited
from services.api.deps import QueueDep, ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.errors import FieldError, InvalidInput
from shared.jobs import service as jobs
from shared.jobs.schemas import JobRead
from shared.personas import card as cards
from shared.personas import repository
from shared.personas import service as personas
from shared.personas.schemas import (
    CustomerPersona,
    GenerateRequest,
    PersonaRead,
    PersonaUpdate,
    VersionRead,
)

router = APIRouter(route_class=Route, prefix="/v1/personas", tags=["personas"])
customer_router = APIRouter(route_class=Route, prefix="/v1/customers", tags=["personas"])


@router.post(
    "/generate",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(422),
    dependencies=[Idempotent, Audited],
)
async def generate(
    data: GenerateRequest,
    session: SessionDep,
    principal: WriteKey,
    queue: QueueDep,
    response: Response,
) -> JobRead:
    """Derive (or regenerate in place, as a new version) one persona per target segment; by
    default for the top segments by the STP score. The job's result lists the personas."""
    params: dict[str, object] = {"top": data.top}
    if data.segment_ids is not None:
        params["segment_ids"] = await personas.check_segments(
            session, principal.tenant_id, data.segment_ids
        )
    job = await jobs.create(session, queue, principal.tenant_id, personas.GENERATE, params)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)


@router.get("", response_model=Page[PersonaRead])
async def list_(session: SessionDep, principal: ReadKey, page: PageDep) -> Page[PersonaRead]:
    rows = await repository.list_(
        session, principal.tenant_id, after=page.after_id(), limit=page.limit + 1
    )
    items = await personas.read_many(session, principal.tenant_id, rows)
    return page.page(items, lambda p: {"id": str(p.id)})


@router.get("/{persona_id}", response_model=PersonaRead, responses=responses(404))
async def get(persona_id: str, session: SessionDep, principal: ReadKey) -> PersonaRead:
    return await personas.read(session, principal.tenant_id, persona_id)


@router.patch(
    "/{persona_id}", response_model=PersonaRead, responses=responses(404), dependencies=[Audited]
)
async def update(
    persona_id: str, data: PersonaUpdate, session: SessionDep, principal: WriteKey
) -> PersonaRead:
    """Edit the name, tagline, narrative or any field; edited parts are locked (they survive
    regeneration, with the current data beside them) until `unlock`ed."""
    return await personas.update(session, principal.tenant_id, persona_id, data)


@router.delete(
    "/{persona_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(persona_id: str, session: SessionDep, principal: WriteKey) -> Response:
    await personas.delete(session, principal.tenant_id, persona_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{persona_id}/versions", response_model=Page[VersionRead], responses=responses(404))
async def versions(
    persona_id: str, session: SessionDep, principal: ReadKey, page: PageDep
) -> Page[VersionRead]:
    """Each generation run, newest first, with what changed since the one before."""
    before = None
    if page.cursor is not None:
        raw = page.cursor.get("version")
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise InvalidInput(
                "The cursor is not one this API gave out.",
                errors=[FieldError(["query", "cursor"], "Invalid cursor.")],
            )
        before = raw
    items = await personas.versions(
        session, principal.tenant_id, persona_id, before, page.limit + 1
    )
    return page.page(items, lambda v: {"version": v.version})


@router.get(
    "/{persona_id}/card",
    response_class=Response,
    responses={
        **responses(404, 406),
        200: {
            "description": "A printable one-page card.",
            "content": {"text/html": {}, "text/markdown": {}},
        },
    },
)
async def card(
    persona_id: str,
    session: SessionDep,
    principal: ReadKey,
    request: Request,
) -> Response:
    """The persona as a one-page card: `Accept: text/html` (default) or `text/markdown`; 406
    when the client accepts neither."""
    # Read from the request, not declared as a parameter: `Accept` is content negotiation,
    # documented by the 200's two media types and the 406.
    media = cards.negotiate(request.headers.get("accept", "")[:1000] or None)
    persona = await personas.read(session, principal.tenant_id, persona_id)
    if media == "text/markdown":
        return Response(cards.markdown(persona), media_type="text/markdown; charset=utf-8")
    return Response(cards.html(persona), media_type="text/html; charset=utf-8")


@customer_router.get(
    "/{customer_id}/persona", response_model=CustomerPersona, responses=responses(404)
)
async def customer_persona(
    customer_id: str, session: SessionDep, principal: ReadKey
) -> CustomerPersona:
    """The persona this customer fits best: a member of a persona's segment scores 1; others
    by how typical their facts are of each persona's distributions."""
    return await personas.fit(session, principal.tenant_id, customer_id)
