"""Loads a generated demo store into one tenant through the same services real ingest uses.

Rows go through the API's own pydantic shapes and the domain services (customers'
`upsert_many`, `upsert_orders`, `ingest_events`), a batch per unit of work under the tenant's
row-level security, so profiles, behaviour facts and identity stitching come out exactly as if
a store had sent the data. Loading the same store again changes nothing: customers and orders
are upserted by external id with the same `updated_at` (a stale update is ignored) and events
are stored once per id. Survey answers become completed responses to a "Customer profile"
survey (`shared.surveys.demo`), once per customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.customers import service as customers
from shared.customers import stats
from shared.customers.schemas import CustomerIn
from shared.db.engine import unit_of_work
from shared.ingest import service as ingest
from shared.ingest.demo import (
    DemoStore,
    iter_customers,
    iter_events,
    iter_orders,
    iter_survey_answers,
)
from shared.ingest.schemas import MAX_EVENT_BATCH, EventIn, OrderIn
from shared.models import (
    Customer,
    CustomerIdentity,
    Event,
    Order,
    OrderItem,
    SurveyAnswer,
    SurveyResponse,
)
from shared.surveys import demo as survey_demo
from shared.validation import FUTURE_TOLERANCE

Model = TypeVar("Model", bound=BaseModel)
Progress = Callable[[str, int, int], None]  # (kind, rows done, rows in all)

# Rows per service call. A customer upsert binds ~32 parameters a row in one statement and
# asyncpg allows 32767, so larger batches are split into calls of this size inside one unit of
# work; events keep to the API's batch cap, so a batch is one the API would accept.
_CALL_SIZE = {"customers": 800, "orders": 2000, "events": MAX_EVENT_BATCH}


# The tables a load writes.
TABLES = tuple(
    str(m.__tablename__)
    for m in (Customer, CustomerIdentity, Order, OrderItem, Event, SurveyResponse, SurveyAnswer)
)


class DemoDataError(RuntimeError):
    """The generator produced a row the API would refuse: a bug in the generator."""


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(rows, size)):
        yield batch


def _validate(model: type[Model], kind: str, rows: Sequence[dict[str, Any]]) -> list[Model]:
    out: list[Model] = []
    for row in rows:
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            key = row.get("external_id") or row.get("id")
            raise DemoDataError(
                f"the demo generator made a {kind} row the API would refuse ({key}): {exc}"
            ) from exc
    return out


async def _load_kind(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    store: DemoStore,
    batch: int,
    progress: Progress | None,
    kind: str,
    model: type[Model],
    rows: Iterator[dict[str, Any]],
    call: Callable[[AsyncSession, uuid.UUID, Sequence[Model]], Awaitable[object]],
) -> int:
    done, total, size = 0, store.sizes[kind], _CALL_SIZE[kind]
    for number, raw in enumerate(_batches(rows, batch), start=1):
        models = _validate(model, kind, raw)
        async with unit_of_work(sessionmaker, tenant_id) as session:
            for start in range(0, len(models), size):
                await call(session, tenant_id, models[start : start + size])
        done += len(models)
        # After batches 1, 2, 4, 8 ... and the last: a few cheap ANALYZEs keep the planner's
        # idea of the tables close to the truth while they grow from nothing.
        if number & (number - 1) == 0 or done == total:
            async with unit_of_work(sessionmaker, tenant_id) as session:
                await stats.analyze_tables(session)
        if progress is not None:
            progress(kind, done, total)
    return done


async def load(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID | str,
    store: DemoStore,
    *,
    batch: int = 1000,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Load customers, then orders, then events, then survey answers, `batch` rows a
    transaction. Returns the rows handed to the services per kind (`order_items` travel
    inside their orders; `survey_responses` are the generator's answer rows). Raises
    `DemoDataError`, before anything is written when it can tell, if a row would be refused.

    The planner's statistics are refreshed now and then as the tables grow: without them,
    PostgreSQL plans the behaviour-fact refresh and the order items' foreign-key checks for
    near-empty tables, and a bulk load slows down quadratically (when autovacuum is off, or in
    its first minute)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    end = store.config.end
    if end > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise DemoDataError(
            f"the demo window ends {end.isoformat()}, in the future: the API refuses "
            "timestamps more than a day ahead, so generate with an earlier `end`"
        )
    tid = uuid.UUID(str(tenant_id))
    run = partial(_load_kind, sessionmaker, tid, store, batch, progress)
    counts = {
        "customers": await run(
            "customers", CustomerIn, iter_customers(store), customers.upsert_many
        ),
        "orders": await run("orders", OrderIn, iter_orders(store), ingest.upsert_orders),
        "events": await run("events", EventIn, iter_events(store), ingest.ingest_events),
    }
    counts["order_items"] = store.sizes["order_items"]
    counts["survey_responses"] = await survey_demo.load_answers(
        sessionmaker, tid, iter_survey_answers(store), batch=batch
    )
    return counts
