"""`/v1/orders`: orders with line items, upserted by external id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api.auditing import Audited
from services.api.deps import ReadKey, SessionDep, WriteKey
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.customers import service as customers
from shared.ingest import repository as ingest_repo
from shared.ingest import service as ingest
from shared.ingest.schemas import IngestOutcome, OrderIn, OrderRead, OrderStatus, OrderUpserted
from shared.validation import Instant

router = APIRouter(route_class=Route, prefix="/v1/orders", tags=["orders"])


@router.post(
    "",
    response_model=OrderUpserted,
    responses={201: {"model": OrderUpserted, "description": "Created"}},
    dependencies=[Idempotent, Audited],
)
async def create(
    data: OrderIn, session: SessionDep, principal: WriteKey, response: Response
) -> OrderUpserted:
    """Create or update an order by `external_id` (its items are replaced). 201 when created;
    200 when updated or ignored (an older update, or an erased customer)."""
    (result,) = await ingest.upsert_orders(session, principal.tenant_id, [data])
    if result.outcome == IngestOutcome.created:
        response.status_code = status.HTTP_201_CREATED
    if result.order_id is None:
        return OrderUpserted(outcome=result.outcome, order=None)
    order = await ingest.get_order(session, principal.tenant_id, str(result.order_id))
    return OrderUpserted(outcome=result.outcome, order=order)


@router.get("", response_model=Page[OrderRead], responses=responses(404))
async def list_(
    session: SessionDep,
    principal: ReadKey,
    page: PageDep,
    customer_id: Annotated[str | None, Query(max_length=300)] = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    placed_after: Annotated[Instant | None, Query()] = None,
    placed_before: Annotated[Instant | None, Query()] = None,
) -> Page[OrderRead]:
    """Orders, newest first; `customer_id` takes an id or `ext:<external id>`."""
    owner = None
    if customer_id is not None:
        owner = (await customers.resolve(session, principal.tenant_id, customer_id)).id
    rows = await ingest_repo.list_orders(
        session,
        principal.tenant_id,
        customer_id=owner,
        status=status.value if status else None,
        placed_after=placed_after,
        placed_before=placed_before,
        after=page.after_id(),
        limit=page.limit + 1,
    )
    orders = await ingest.read_orders(session, principal.tenant_id, rows)
    return page.page(orders, lambda o: {"id": str(o.id)})


@router.get("/{order_id}", response_model=OrderRead, responses=responses(404))
async def get(order_id: str, session: SessionDep, principal: ReadKey) -> OrderRead:
    return await ingest.get_order(session, principal.tenant_id, order_id)
