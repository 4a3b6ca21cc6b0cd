"""All SQL for customers: set-based upserts that respect delivery order, reads, erasure."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import new_id
from shared.db.engine import key_checks_cached
from shared.models import (
    Customer,
    CustomerIdentity,
    CustomerValue,
    Event,
    ImportChunk,
    Order,
    OrderItem,
    Tombstone,
)

PAGE = 500


def external_id_digest(external_id: str) -> bytes:
    return hashlib.sha256(external_id.encode()).digest()


async def erased(
    session: AsyncSession, tenant_id: uuid.UUID, external_ids: Sequence[str]
) -> set[str]:
    """Which of these external ids belong to erased customers."""
    if not external_ids:
        return set()
    digests = {external_id_digest(e): e for e in external_ids}
    rows = await session.execute(
        text(
            "SELECT external_id_hash FROM tombstones WHERE tenant_id = :t AND kind = 'customer' "
            "AND external_id_hash = ANY(CAST(:h AS bytea[]))"
        ),
        {"t": tenant_id, "h": list(digests)},
    )
    return {digests[bytes(h)] for (h,) in rows}


async def upsert(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    rows: list[dict[str, Any]],
    fields: Sequence[str],
) -> dict[str, tuple[uuid.UUID, bool]]:
    """Insert or update customers that all carry the same `fields`. Each row also has
    external_id, fact_sources (the sources of its fields), source_updated_at and
    source_delivery_id. An update applies only if it is newer than what is stored (by
    `source_updated_at`, then delivery id), so late and repeated deliveries change nothing.
    Returns {external_id: (id, inserted)} for the rows that were applied."""
    if not rows:
        return {}
    stmt = insert(Customer)
    ex = stmt.excluded
    sets: dict[str, Any] = {f: ex[f] for f in fields if f != "traits"}
    if "traits" in fields:
        sets["traits"] = Customer.traits.op("||")(
            func.coalesce(ex.traits, literal({}, Customer.traits.type))
        )
    sets.update(
        fact_sources=Customer.fact_sources.op("||")(ex.fact_sources),
        source_updated_at=ex.source_updated_at,
        source_delivery_id=ex.source_delivery_id,
        updated_at=func.now(),
    )
    newer = or_(
        Customer.source_updated_at.is_(None),
        tuple_(ex.source_updated_at, func.coalesce(ex.source_delivery_id, ""))
        > tuple_(Customer.source_updated_at, func.coalesce(Customer.source_delivery_id, "")),
    )
    upsert_stmt: Any = stmt.on_conflict_do_update(
        index_elements=[Customer.tenant_id, Customer.external_id], set_=sets, where=newer
    ).returning(
        Customer.external_id,
        Customer.id,
        # xmax is 0 on a freshly inserted row version, non-zero on one ON CONFLICT updated.
        literal_column("(xmax = 0)").label("inserted"),
    )
    applied: dict[str, tuple[uuid.UUID, bool]] = {}
    # Pages small enough for asyncpg's 32767 parameters at ~40 columns a row.
    async with key_checks_cached(session):
        for start in range(0, len(rows), PAGE):
            page = [{"tenant_id": tenant_id, **row} for row in rows[start : start + PAGE]]
            result = await session.execute(upsert_stmt.values(page))
            applied.update({ext: (cid, inserted) for ext, cid, inserted in result})
    return applied


_EXISTING = text(
    "SELECT external_id, id FROM customers "
    "WHERE tenant_id = :t AND external_id = ANY(CAST(:ids AS text[]))"
)
_CREATE_BARE = text(
    """
    INSERT INTO customers (tenant_id, id, external_id, traits, fact_sources)
    SELECT :t, x.id, x.external_id, '{}', '{}'
    FROM unnest(CAST(:ids AS uuid[]), CAST(:exts AS text[])) AS x(id, external_id)
    ON CONFLICT (tenant_id, external_id) DO NOTHING
    """
)


async def ensure(
    session: AsyncSession, tenant_id: uuid.UUID, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    """Ids for these external ids, creating bare customers for the unknown ones (an order or
    event may arrive before its customer). Erased customers are not brought back. Set-based:
    a batch of any size is two or three statements."""
    wanted = sorted(set(external_ids))
    if not wanted:
        return {}
    found = {k: v for k, v in await session.execute(_EXISTING, {"t": tenant_id, "ids": wanted})}
    missing = [e for e in wanted if e not in found]
    if missing:
        gone = await erased(session, tenant_id, missing)
        create = [e for e in missing if e not in gone]
        if create:
            await session.execute(
                _CREATE_BARE,
                {"t": tenant_id, "ids": [new_id() for _ in create], "exts": create},
            )
            rows = await session.execute(_EXISTING, {"t": tenant_id, "ids": create})
            found.update({k: v for k, v in rows})
    return found


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, *, fresh: bool = False
) -> Customer | None:
    stmt = select(Customer).where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
    if fresh:  # after a bulk UPDATE, reload instead of trusting the identity map
        stmt = stmt.execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def referrers_of(
    session: AsyncSession, tenant_id: uuid.UUID, external_ids: Sequence[str]
) -> list[str | None]:
    rows = await session.execute(
        select(Customer.referred_by).where(
            Customer.tenant_id == tenant_id, Customer.external_id.in_(external_ids)
        )
    )
    return list(rows.scalars())


async def add_tombstone(session: AsyncSession, tenant_id: uuid.UUID, external_id: str) -> None:
    await session.execute(
        insert(Tombstone)
        .values(
            tenant_id=tenant_id,
            kind="customer",
            external_id_hash=external_id_digest(external_id),
        )
        .on_conflict_do_nothing()
    )


async def get_by_external_id(
    session: AsyncSession, tenant_id: uuid.UUID, external_id: str
) -> Customer | None:
    return (
        await session.execute(
            select(Customer).where(
                Customer.tenant_id == tenant_id, Customer.external_id == external_id
            )
        )
    ).scalar_one_or_none()


async def get_many(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Customer]:
    rows = await session.execute(
        select(Customer).where(Customer.tenant_id == tenant_id, Customer.id.in_(ids))
    )
    return list(rows.scalars())


async def patch(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    sources: dict[str, Any],
) -> None:
    sets = dict(values)
    if "traits" in sets:
        sets["traits"] = Customer.traits.op("||")(
            literal(sets["traits"] or {}, Customer.traits.type)
        )
    sets["fact_sources"] = Customer.fact_sources.op("||")(
        literal(sources, Customer.fact_sources.type)
    )
    sets["updated_at"] = func.now()
    await session.execute(
        update(Customer)
        .where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
        .values(**sets)
    )


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    conditions: list[ColumnElement[bool]],
    order: tuple[ColumnElement[Any], bool],
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Customer, CustomerValue | None]]:
    """Customers with their value facts (if analysed), in keyset order."""
    key, descending = order
    stmt = (
        select(Customer, CustomerValue)
        .outerjoin(
            CustomerValue,
            and_(
                CustomerValue.tenant_id == Customer.tenant_id,
                CustomerValue.customer_id == Customer.id,
            ),
        )
        .where(Customer.tenant_id == tenant_id, *conditions)
    )
    if after is not None:
        value, last_id = after
        if descending:
            stmt = stmt.where(tuple_(key, Customer.id) < tuple_(literal(value), literal(last_id)))
        else:
            stmt = stmt.where(tuple_(key, Customer.id) > tuple_(literal(value), literal(last_id)))
    if descending:
        stmt = stmt.order_by(key.desc(), Customer.id.desc())
    else:
        stmt = stmt.order_by(key.asc(), Customer.id.asc())
    rows = await session.execute(stmt.limit(limit))
    return [(c, v) for c, v in rows]


async def value_of(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> CustomerValue | None:
    stmt = select(CustomerValue).where(
        CustomerValue.tenant_id == tenant_id, CustomerValue.customer_id == customer_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def orders_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    before: datetime | None = None,
    at: datetime | None = None,
    limit: int | None = None,
) -> tuple[Sequence[Order], Sequence[OrderItem]]:
    """Orders (oldest first; newest first when paging with `limit`) and their items; placed
    strictly `before` a time, or exactly `at` one."""
    stmt = select(Order).where(Order.tenant_id == tenant_id, Order.customer_id == customer_id)
    if before is not None:
        stmt = stmt.where(Order.placed_at < before)
    if at is not None:
        stmt = stmt.where(Order.placed_at == at)
    if limit is not None:
        stmt = stmt.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit)
    else:
        stmt = stmt.order_by(Order.placed_at, Order.id)
    orders = (await session.execute(stmt)).scalars().all()
    items_stmt = (
        select(OrderItem)
        .where(OrderItem.tenant_id == tenant_id, OrderItem.order_id.in_([o.id for o in orders]))
        .order_by(OrderItem.order_id, OrderItem.line)
    )
    return orders, (await session.execute(items_stmt)).scalars().all()


async def events_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    before_at: datetime | None = None,
    at: datetime | None = None,
    limit: int | None = None,
) -> Sequence[Event]:
    """Newest first; strictly `before_at` a time, or exactly `at` one."""
    stmt = select(Event).where(Event.tenant_id == tenant_id, Event.customer_id == customer_id)
    if before_at is not None:
        stmt = stmt.where(Event.occurred_at < before_at)
    if at is not None:
        stmt = stmt.where(Event.occurred_at == at)
    stmt = stmt.order_by(Event.occurred_at.desc(), Event.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def anonymous_ids_of(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> list[str]:
    rows = await session.execute(
        select(CustomerIdentity.anonymous_id).where(
            CustomerIdentity.tenant_id == tenant_id, CustomerIdentity.customer_id == customer_id
        )
    )
    return list(rows.scalars())


async def erase(session: AsyncSession, tenant_id: uuid.UUID, customer: Customer) -> None:
    """Delete the customer and all that hangs on them; leave only a tombstone digest."""
    anonymous = await anonymous_ids_of(session, tenant_id, customer.id)
    if anonymous:
        await session.execute(
            delete(Event).where(Event.tenant_id == tenant_id, Event.anonymous_id.in_(anonymous))
        )
    # Orders, items, events and identities go with the customer (ON DELETE CASCADE).
    await session.execute(
        delete(Customer).where(Customer.tenant_id == tenant_id, Customer.id == customer.id)
    )
    await session.execute(
        update(Customer)
        .where(Customer.tenant_id == tenant_id, Customer.referred_by == customer.external_id)
        .values(referred_by=None)
    )
    await add_tombstone(session, tenant_id, customer.external_id)


async def fill_gaps(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    sources: dict[str, Any],
) -> None:
    """Set facts the customer does not have yet; never overwrite one that is set."""
    customer = await get(session, tenant_id, customer_id)
    if customer is None:
        return
    missing = {k: v for k, v in values.items() if v is not None and getattr(customer, k) is None}
    if missing:
        await patch(session, tenant_id, customer_id, missing, {k: sources[k] for k in missing})


async def erase_all(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Every customer, order and event of the tenant (the tenant and its keys remain)."""
    for model in (Event, Customer, ImportChunk):
        await session.execute(delete(model).where(model.tenant_id == tenant_id))


# How a survey answer becomes a fact: the answer column that holds it, cast to the fact's type.
_ANSWER_VALUE = {"text": "a.value_text", "list": "a.choices", "int": "a.value_number::int"}


async def apply_survey_facts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    response_ids: Sequence[uuid.UUID],
    question_key: str,
    fact: str,
    kind: str,
    survey_ref: str,
    override_store: bool,
) -> None:
    """Set `fact` from the answers to one question in these responses, with provenance
    `survey`. A fact the store sent stays (unless `override_store`): the answer is kept next
    to it in `fact_sources[fact].survey`, so the profile shows both. One statement for all."""
    column = getattr(Customer, fact).key  # only mapped columns get here
    value = _ANSWER_VALUE[kind]
    keep = (
        f"(NOT :override AND c.{column} IS NOT NULL "
        f"AND c.fact_sources -> CAST(:fact AS text) ->> 'source' = 'store')"
    )
    await session.execute(
        text(
            f"""
            UPDATE customers c SET
              {column} = CASE WHEN {keep} THEN c.{column} ELSE a.v END,
              fact_sources = c.fact_sources || jsonb_build_object(
                CAST(:fact AS text),
                CASE WHEN {keep} THEN
                  (c.fact_sources -> CAST(:fact AS text)) || jsonb_build_object(
                    'survey', jsonb_build_object(
                      'value', to_jsonb(a.v), 'ref', CAST(:ref AS text), 'set_at', a.at))
                ELSE jsonb_build_object(
                  'source', 'survey', 'set_at', a.at, 'ref', CAST(:ref AS text))
                END),
              updated_at = now()
            FROM (
              SELECT DISTINCT ON (a.customer_id) a.customer_id, {value} AS v, a.answered_at AS at
              FROM survey_answers a
              WHERE a.tenant_id = :t AND a.response_id = ANY(:ids) AND a.question_key = :k
                AND a.customer_id IS NOT NULL
              ORDER BY a.customer_id, a.answered_at DESC
            ) a
            WHERE c.tenant_id = :t AND c.id = a.customer_id
            """
        ).bindparams(
            bindparam("ids", type_=ARRAY(Uuid())),
        ),
        {
            "t": tenant_id,
            "ids": list(response_ids),
            "k": question_key,
            "fact": fact,
            "ref": survey_ref,
            "override": override_store,
        },
    )
