"""Customer rules: upserts that respect delivery order and erasure, profile reads, edits,
erasure with a tombstone, subject-access export and the timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, literal
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.schemas import CustomerValueRead
from shared.audit import service as audit
from shared.customers import repository, stats
from shared.customers.schemas import (
    FACT_GROUPS,
    Behaviour,
    CustomerExport,
    CustomerFilters,
    CustomerIn,
    CustomerPatch,
    CustomerRead,
    CustomerSort,
    FactSource,
    TimelineEntry,
    UpsertOutcome,
)
from shared.errors import NotFound
from shared.models import Customer, CustomerValue
from shared.surveys import repository as survey_repository

_META = {"external_id", "updated_at"}


@dataclass(frozen=True)
class Upserted:
    external_id: str
    outcome: UpsertOutcome
    customer_id: uuid.UUID | None


def _provenance(fields: Sequence[str], source: FactSource, ref: str | None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    entry = {"source": source.value, "set_at": now, **({"ref": ref} if ref else {})}
    return {f: entry for f in fields}


def _newest_per_external_id(customers: Sequence[CustomerIn]) -> list[CustomerIn]:
    """One statement cannot update a row twice: keep, per customer, the newest of a batch."""
    newest: dict[str, CustomerIn] = {}
    floor = datetime.min.replace(tzinfo=UTC)
    for c in customers:
        held = newest.get(c.external_id)
        if held is None or (c.updated_at or floor) >= (held.updated_at or floor):
            newest[c.external_id] = c
    return list(newest.values())


async def upsert_many(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customers: Sequence[CustomerIn],
    *,
    source: FactSource = FactSource.store,
    delivery_id: str | None = None,
    ref: str | None = None,
) -> list[Upserted]:
    """Create or update customers by external id; returns one outcome per distinct customer.
    Fields a payload leaves out are kept; fields it sends as null are cleared."""
    batch = _newest_per_external_id(customers)
    gone = await repository.erased(session, tenant_id, [c.external_id for c in batch])
    results = [Upserted(e, UpsertOutcome.ignored_erased, None) for e in sorted(gone)]
    live = [c for c in batch if c.external_id not in gone]
    groups: dict[tuple[str, ...], list[CustomerIn]] = {}
    for c in live:
        meta = _META if c.created_at is not None else _META | {"created_at"}
        fields = tuple(sorted(c.model_fields_set - meta))  # created_at too, when sent
        groups.setdefault(fields, []).append(c)

    referrers: set[str] = set()
    received = datetime.now(UTC)
    for fields, members in groups.items():
        if "referred_by" in fields:
            referrers |= await _current_referrers(session, tenant_id, members)
        rows = []
        for c in members:
            row = c.model_dump(include=set(fields))
            facts = [f for f in fields if f != "created_at"]
            row.update(
                external_id=c.external_id,
                fact_sources=_provenance(facts, source, ref),
                source_updated_at=c.updated_at or received,
                source_delivery_id=delivery_id,
            )
            rows.append(row)
        applied = await repository.upsert(session, tenant_id, rows, fields)
        for c in members:
            if c.external_id in applied:
                cid, inserted = applied[c.external_id]
                outcome = UpsertOutcome.created if inserted else UpsertOutcome.updated
                results.append(Upserted(c.external_id, outcome, cid))
                if inserted:
                    referrers.add(c.external_id)
                if c.referred_by:
                    referrers.add(c.referred_by)
            else:
                results.append(Upserted(c.external_id, UpsertOutcome.ignored_stale, None))
    await stats.refresh_referrals(session, tenant_id, referrers)
    return results


async def _current_referrers(
    session: AsyncSession, tenant_id: uuid.UUID, members: Sequence[CustomerIn]
) -> set[str]:
    stored = await repository.referrers_of(session, tenant_id, [c.external_id for c in members])
    return {r for r in stored if r}


def parse_ref(raw: str) -> tuple[str, str]:
    """`ext:<external id>` addresses a customer by the store's id; anything else is ours."""
    if raw.startswith("ext:"):
        return "external", raw[4:]
    return "id", raw


async def resolve(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> Customer:
    kind, value = parse_ref(raw)
    customer: Customer | None = None
    if kind == "external":
        customer = await repository.get_by_external_id(session, tenant_id, value)
    else:
        try:
            customer = await repository.get(session, tenant_id, uuid.UUID(value))
        except ValueError:
            customer = None
    if customer is None:
        raise NotFound("No customer with this id.")
    return customer


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value


def to_read(
    c: Customer, value: CustomerValue | None = None, now: datetime | None = None
) -> CustomerRead:
    now = now or datetime.now(UTC)
    groups = {
        group: {f: getattr(c, f) for f in fields}
        for group, fields in FACT_GROUPS.items()
        if group != "other"
    }
    since_last = (now - c.last_order_at).days if c.last_order_at else None
    tenure_from = c.first_order_at or c.created_at
    return CustomerRead(
        id=c.id,
        external_id=c.external_id,
        created_at=c.created_at,
        updated_at=c.updated_at,
        demographic=groups["demographic"],
        geographic=groups["geographic"],
        psychographic=groups["psychographic"],
        contact=groups["contact"],
        referred_by=c.referred_by,
        traits=c.traits or {},
        behaviour=Behaviour(
            order_count=c.order_count,
            total_spent=c.total_spent,
            average_order_value=c.average_order_value,
            first_order_at=c.first_order_at,
            last_order_at=c.last_order_at,
            days_since_last_order=since_last,
            tenure_days=max((now - tenure_from).days, 0),
            refund_count=c.refund_count,
            refunded_amount=c.refunded_amount,
            top_categories=c.top_categories or [],
            preferred_order_channel=c.order_channel,
            preferred_event_channel=c.event_channel,
            preferred_device=c.preferred_device,
            referral_count=c.referral_count,
        ),
        value=None
        if value is None
        else CustomerValueRead.model_validate(value, from_attributes=True),
        sources=c.fact_sources or {},
    )


async def profile(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> CustomerRead:
    """The whole profile: facts, behaviour, and value facts when analysed."""
    customer = await resolve(session, tenant_id, raw)
    return to_read(customer, await repository.value_of(session, tenant_id, customer.id))


async def patch(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: CustomerPatch
) -> Customer:
    customer = await resolve(session, tenant_id, raw)
    audit.note_object(customer.id)
    fields = sorted(data.model_fields_set)
    if fields:
        values = data.model_dump(include=set(fields))
        await repository.patch(
            session, tenant_id, customer.id, values, _provenance(fields, FactSource.manual, None)
        )
        if "referred_by" in fields:
            await stats.refresh_referrals(
                session, tenant_id, {customer.referred_by or "", data.referred_by or ""}
            )
    refreshed = await repository.get(session, tenant_id, customer.id, fresh=True)
    assert refreshed is not None
    return refreshed


async def erase(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    customer = await resolve(session, tenant_id, raw)
    audit.note_object(customer.id)
    await repository.erase(session, tenant_id, customer)
    if customer.referred_by:
        await stats.refresh_referrals(session, tenant_id, {customer.referred_by})


async def erase_by_external_id(
    session: AsyncSession, tenant_id: uuid.UUID, external_id: str
) -> bool:
    """Erase if present; always leave the tombstone (a redact may precede the customer)."""
    customer = await repository.get_by_external_id(session, tenant_id, external_id)
    if customer is None:
        await repository.add_tombstone(session, tenant_id, external_id)
        return False
    await repository.erase(session, tenant_id, customer)
    if customer.referred_by:
        await stats.refresh_referrals(session, tenant_id, {customer.referred_by})
    return True


def _order_dict(order: Any, items: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "external_id": order.external_id,
        "status": order.status,
        "currency": order.currency,
        "total": format(order.total, "f"),
        "channel": order.channel,
        "placed_at": order.placed_at.isoformat(),
        "items": [
            {
                "product_id": i.product_id,
                "name": i.name,
                "category": i.category,
                "quantity": i.quantity,
                "unit_price": format(i.unit_price, "f"),
            }
            for i in items
        ],
    }


def _event_dict(e: Any) -> dict[str, Any]:
    return {
        "id": e.external_id,
        "name": e.name,
        "occurred_at": e.occurred_at.isoformat(),
        "session_id": e.session_id,
        "anonymous_id": e.anonymous_id,
        "device": e.device,
        "channel": e.channel,
        "properties": e.properties,
    }


async def export(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> CustomerExport:
    customer = await resolve(session, tenant_id, raw)
    orders, items = await repository.orders_of(session, tenant_id, customer.id)
    by_order: dict[uuid.UUID, list[Any]] = {}
    for item in items:
        by_order.setdefault(item.order_id, []).append(item)
    events = await repository.events_of(session, tenant_id, customer.id)
    responses = await _survey_entries(session, tenant_id, customer.id)
    invitations = await survey_repository.invitations_of_customer(session, tenant_id, customer.id)
    return CustomerExport(
        customer=to_read(customer),
        orders=[_order_dict(o, by_order.get(o.id, [])) for o in orders],
        events=[_event_dict(e) for e in reversed(events)],
        identities=await repository.anonymous_ids_of(session, tenant_id, customer.id),
        survey_responses=[e.data for e in responses],
        survey_invitations=[
            {
                "id": str(i.id),
                "survey_id": str(i.survey_id),
                "distribution_id": str(i.distribution_id),
                "invited_at": i.created_at.isoformat(),
                "completed_at": i.completed_at.isoformat() if i.completed_at else None,
            }
            for i in invitations
        ],
        interviews=[e.data for e in await _interview_entries(session, tenant_id, customer.id)],
        exported_at=datetime.now(UTC),
    )


def _answer_value(a: Any) -> Any:
    if a.choices is not None:
        return list(a.choices)
    if a.value_number is not None:
        n = a.value_number
        return int(n) if n == n.to_integral_value() else float(n)
    return a.value_text


async def _survey_entries(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> list[TimelineEntry]:
    """The customer's survey responses with their answers (few per customer)."""
    rows = await survey_repository.responses_of_customer(session, tenant_id, customer_id)
    answers = await survey_repository.answers_of(session, tenant_id, [r.id for r, _ in rows])
    per: dict[uuid.UUID, dict[str, Any]] = {}
    for a in answers:
        per.setdefault(a.response_id, {})[a.question_key] = _answer_value(a)
    return [
        TimelineEntry(
            at=r.completed_at or r.updated_at,
            kind="survey_response",
            id=str(r.id),
            summary=f"{r.status} response to {title!r}",
            data={
                "id": str(r.id),
                "survey_id": str(r.survey_id),
                "survey_title": title,
                "survey_version": r.survey_version,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                "answers": per.get(r.id, {}),
            },
        )
        for r, title in rows
    ]


async def _interview_entries(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> list[TimelineEntry]:
    rows = await survey_repository.interviews_of_customer(session, tenant_id, customer_id)
    return [
        TimelineEntry(
            at=i.interviewed_at,
            kind="interview",
            id=str(i.id),
            summary=f"interview by {i.interviewer or 'unknown'}",
            data={
                "id": str(i.id),
                "interviewed_at": i.interviewed_at.isoformat(),
                "interviewer": i.interviewer,
                "notes": i.notes,
                "quotes": i.quotes,
                "tags": list(i.tags),
            },
        )
        for i in rows
    ]


async def timeline(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    raw: str,
    *,
    limit: int,
    after: tuple[datetime, str, str] | None,
) -> list[TimelineEntry]:
    """Orders, events, survey responses and interviews, newest first: `limit` of them after
    the entry keyed
    (at, kind, id) = `after`. Entries sharing a timestamp are ordered by kind and id, so a
    page boundary between them loses none."""
    customer = await resolve(session, tenant_id, raw)
    before = after[0] if after else None
    orders, items = await repository.orders_of(
        session, tenant_id, customer.id, before=before, limit=limit
    )
    events = await repository.events_of(
        session, tenant_id, customer.id, before_at=before, limit=limit
    )
    if before is not None:  # the rest of the boundary timestamp
        tied_orders, tied_items = await repository.orders_of(
            session, tenant_id, customer.id, at=before
        )
        orders, items = [*tied_orders, *orders], [*tied_items, *items]
        events = [*await repository.events_of(session, tenant_id, customer.id, at=before), *events]
    by_order: dict[uuid.UUID, list[Any]] = {}
    for item in items:
        by_order.setdefault(item.order_id, []).append(item)
    entries = [
        TimelineEntry(
            at=o.placed_at,
            kind="order",
            id=str(o.id),
            summary=f"{o.status} order {o.external_id}: {o.total} {o.currency}",
            data=_order_dict(o, by_order.get(o.id, [])),
        )
        for o in orders
    ] + [
        TimelineEntry(
            at=e.occurred_at, kind="event", id=e.external_id, summary=e.name, data=_event_dict(e)
        )
        for e in events
    ]
    entries += await _survey_entries(session, tenant_id, customer.id)
    entries += await _interview_entries(session, tenant_id, customer.id)
    if after is not None:
        entries = [t for t in entries if (t.at, t.kind, t.id) < after]
    entries.sort(key=lambda t: (t.at, t.kind, t.id), reverse=True)
    return entries[:limit]


_SORTS: dict[CustomerSort, tuple[Any, bool]] = {
    CustomerSort.created_at: (Customer.created_at, False),
    CustomerSort.created_at_desc: (Customer.created_at, True),
    CustomerSort.total_spent: (Customer.total_spent, False),
    CustomerSort.total_spent_desc: (Customer.total_spent, True),
    CustomerSort.order_count: (Customer.order_count, False),
    CustomerSort.order_count_desc: (Customer.order_count, True),
    CustomerSort.last_order_at: (
        func.coalesce(Customer.last_order_at, literal(datetime(1970, 1, 1, tzinfo=UTC))),
        False,
    ),
    CustomerSort.last_order_at_desc: (
        func.coalesce(Customer.last_order_at, literal(datetime(1970, 1, 1, tzinfo=UTC))),
        True,
    ),
    CustomerSort.predicted_clv: (func.coalesce(CustomerValue.predicted_clv, -1), False),
    CustomerSort.predicted_clv_desc: (func.coalesce(CustomerValue.predicted_clv, -1), True),
}

_EQUALS = (
    "email",
    "gender",
    "marital_status",
    "age_band",
    "income_band",
    "occupation",
    "industry",
    "job_level",
    "education_level",
    "country",
    "region",
    "city",
    "postcode",
    "timezone",
    "preferred_channel",
    "accepts_marketing",
    "referred_by",
    "preferred_device",
    "decision_role",
)
_CONTAINS = {
    "interest": Customer.interests,
    "value": Customer.values,
    "lifestyle": Customer.lifestyle,
    "motivation": Customer.motivations,
    "top_category": Customer.top_categories,
}


def conditions(f: CustomerFilters, now: datetime | None = None) -> list[ColumnElement[bool]]:
    """Every filter as a SQL condition, for one query over the tenant's customers."""
    now = now or datetime.now(UTC)
    today = now.date()
    out: list[ColumnElement[bool]] = []
    out += [getattr(Customer, n) == getattr(f, n) for n in _EQUALS if getattr(f, n) is not None]
    out += [c.contains([getattr(f, n)]) for n, c in _CONTAINS.items() if getattr(f, n) is not None]
    if f.preferred_order_channel is not None:
        out.append(Customer.order_channel == f.preferred_order_channel)
    if f.min_age is not None:
        out.append(Customer.birth_date <= _years_before(today, f.min_age))
    if f.max_age is not None:
        out.append(Customer.birth_date > _years_before(today, f.max_age + 1))
    ranges: list[tuple[Any, Any, Any]] = [
        (Customer.children, f.min_children, f.max_children),
        (Customer.order_count, f.min_orders, f.max_orders),
        (Customer.total_spent, f.min_total_spent, f.max_total_spent),
        (Customer.average_order_value, f.min_average_order_value, f.max_average_order_value),
        (Customer.refund_count, f.min_refunds, None),
        (Customer.referral_count, f.min_referrals, None),
        (Customer.created_at, f.created_after, f.created_before),
        (Customer.first_order_at, f.first_order_after, f.first_order_before),
        (Customer.last_order_at, f.last_order_after, f.last_order_before),
    ]
    for column, low, high in ranges:
        if low is not None:
            out.append(column >= low)
        if high is not None:
            out.append(column <= high)
    if f.max_days_since_last_order is not None:
        out.append(Customer.last_order_at >= now - timedelta(days=f.max_days_since_last_order))
    if f.min_days_since_last_order is not None:
        out.append(Customer.last_order_at <= now - timedelta(days=f.min_days_since_last_order))
    out += _value_conditions(f)
    if f.min_tenure_days is not None:
        out.append(
            func.coalesce(Customer.first_order_at, Customer.created_at)
            <= now - timedelta(days=f.min_tenure_days)
        )
    return out


def _value_conditions(f: CustomerFilters) -> list[ColumnElement[bool]]:
    v = CustomerValue
    out: list[ColumnElement[bool]] = []
    for name in (
        "rfm_segment",
        "lifecycle_stage",
        "longest_tenure",
        "referrer",
        "above_average_spender",
    ):
        wanted = getattr(f, name)
        if wanted is not None:
            out.append(getattr(v, name) == (wanted.value if hasattr(wanted, "value") else wanted))
    for column, low, high in (
        (v.predicted_clv, f.min_predicted_clv, f.max_predicted_clv),
        (v.churn_risk, f.min_churn_risk, f.max_churn_risk),
        (v.prob_alive, f.min_prob_alive, None),
    ):
        if low is not None:
            out.append(column >= low)
        if high is not None:
            out.append(column <= high)
    return out


def _years_before(day: Any, years: int) -> Any:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def sort_key(sort: CustomerSort) -> tuple[ColumnElement[Any], bool]:
    return _SORTS[sort]


def cursor_value(c: Customer, v: CustomerValue | None, sort: CustomerSort) -> Any:
    name = sort.value.lstrip("-")
    if name == "predicted_clv":
        return v.predicted_clv if v is not None and v.predicted_clv is not None else -1
    value = getattr(c, name)
    if name == "last_order_at" and value is None:
        value = datetime(1970, 1, 1, tzinfo=UTC)
    return value


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    filters: CustomerFilters,
    *,
    limit: int,
    after: tuple[Any, uuid.UUID] | None,
) -> list[tuple[Customer, CustomerValue | None]]:
    return await repository.list_(
        session, tenant_id, conditions(filters), sort_key(filters.sort), after, limit
    )


async def fill_gaps(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Facts from a side channel (an order's customer stub) that only fill empty fields."""
    fields = sorted(values)
    await repository.fill_gaps(
        session, tenant_id, customer_id, values, _provenance(fields, FactSource.store, None)
    )


async def erase_tenant_data(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    await repository.erase_all(session, tenant_id)


async def apply_survey_facts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    response_ids: Sequence[uuid.UUID],
    mapped: Sequence[tuple[str, str, str]],
    survey_id: uuid.UUID,
    override_store: bool,
) -> None:
    """Mapped answers (question key, fact, kind) of these responses update their customers'
    facts with source `survey`; see `repository.apply_survey_facts` for store precedence."""
    for key, fact, kind in mapped:
        await repository.apply_survey_facts(
            session, tenant_id, response_ids, key, fact, kind, str(survey_id), override_store
        )
