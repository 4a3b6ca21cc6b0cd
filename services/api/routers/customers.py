"""`/v1/customers`: upsert by external id, list with filters, profile, edit, erase, export,
timeline. `{customer_id}` is Portrait's id or `ext:<the store's external id>`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from services.api.auditing import Audited
from services.api.deps import ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, page_params
from services.api.problems import responses
from shared.customers import service as customers
from shared.customers.schemas import (
    CustomerExport,
    CustomerFilters,
    CustomerIn,
    CustomerPatch,
    CustomerRead,
    CustomerSort,
    CustomerUpserted,
    TimelineEntry,
    UpsertOutcome,
)
from shared.errors import InvalidInput

router = APIRouter(route_class=Route, prefix="/v1/customers", tags=["customers"])


@router.post(
    "",
    response_model=CustomerUpserted,
    status_code=status.HTTP_200_OK,
    responses={201: {"model": CustomerUpserted, "description": "Created"}},
    dependencies=[Idempotent, Audited],
)
async def create(
    data: CustomerIn, session: SessionDep, principal: WriteKey, response: Response
) -> CustomerUpserted:
    """Create or update a customer by `external_id`. 201 when created; 200 when updated or
    when the update was ignored (older than what is stored, or the customer was erased)."""
    (result,) = await customers.upsert_many(session, principal.tenant_id, [data])
    if result.outcome == UpsertOutcome.created:
        response.status_code = status.HTTP_201_CREATED
    if result.customer_id is None:
        return CustomerUpserted(outcome=result.outcome, customer=None)
    customer = await customers.resolve(session, principal.tenant_id, str(result.customer_id))
    return CustomerUpserted(outcome=result.outcome, customer=customers.to_read(customer))


def _cursor_value(raw: Any, sort: CustomerSort) -> Any:
    name = sort.value.lstrip("-")
    try:
        if name in ("created_at", "last_order_at"):
            return datetime.fromisoformat(str(raw))
        if name in ("total_spent", "predicted_clv"):
            return Decimal(str(raw))
        return int(raw)
    except (ValueError, ArithmeticError):
        raise InvalidInput("The cursor is not one this API gave out.") from None


@router.get("", response_model=Page[CustomerRead])
async def list_(
    session: SessionDep, principal: ReadKey, filters: Annotated[CustomerFilters, Query()]
) -> Page[CustomerRead]:
    """Customers matching every filter given, sorted by `sort`, paged by cursor."""
    page = page_params(filters.limit, filters.cursor)
    after = None
    last_id = page.after_id()
    if page.cursor is not None and last_id is not None:
        after = (_cursor_value(page.cursor.get("v"), filters.sort), last_id)
    rows = await customers.list_(
        session, principal.tenant_id, filters, limit=page.limit + 1, after=after
    )
    values = {c.id: customers.cursor_value(c, v, filters.sort) for c, v in rows}
    return page.page(
        [customers.to_read(c, v) for c, v in rows],
        lambda c: {
            "v": str(
                values[c.id].isoformat() if isinstance(values[c.id], datetime) else values[c.id]
            ),
            "id": str(c.id),
        },
    )


@router.get("/{customer_id}", response_model=CustomerRead, responses=responses(404))
async def get(customer_id: str, session: SessionDep, principal: ReadKey) -> CustomerRead:
    """The profile: typed facts by group, each fact's source, and computed behaviour."""
    return await customers.profile(session, principal.tenant_id, customer_id)


@router.patch(
    "/{customer_id}", response_model=CustomerRead, responses=responses(404), dependencies=[Audited]
)
async def update(
    customer_id: str, data: CustomerPatch, session: SessionDep, principal: WriteKey
) -> CustomerRead:
    """Merge the fields sent into the profile; they are marked as set by hand (`manual`)."""
    customer = await customers.patch(session, principal.tenant_id, customer_id, data)
    return await customers.profile(session, principal.tenant_id, str(customer.id))


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    dependencies=[Audited],
)
async def delete(customer_id: str, session: SessionDep, principal: WriteKey) -> Response:
    """Erase the customer and everything tied to them; only a digest of the external id is
    kept, so a late webhook cannot bring them back."""
    await customers.erase(session, principal.tenant_id, customer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{customer_id}/export", response_model=CustomerExport, responses=responses(404))
async def export(customer_id: str, session: SessionDep, principal: ReadKey) -> CustomerExport:
    """Everything stored about one customer (a subject access request)."""
    return await customers.export(session, principal.tenant_id, customer_id)


@router.get("/{customer_id}/timeline", response_model=Page[TimelineEntry], responses=responses(404))
async def timeline(
    customer_id: str,
    session: SessionDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[TimelineEntry]:
    """Orders, events, survey responses and interviews, newest first."""
    page = page_params(limit, cursor)
    after = None
    if page.cursor is not None:
        try:
            c = page.cursor
            after = (datetime.fromisoformat(str(c["at"])), str(c["kind"]), str(c["id"]))
        except (KeyError, ValueError):
            raise InvalidInput("The cursor is not one this API gave out.") from None
    entries = await customers.timeline(
        session, principal.tenant_id, customer_id, limit=page.limit + 1, after=after
    )
    return page.page(entries, lambda e: {"at": e.at.isoformat(), "kind": e.kind, "id": e.id})
