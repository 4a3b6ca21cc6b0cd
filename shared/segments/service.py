"""Segment rules: saved rule, static and built-in segments, previews, membership refreshes
with history, the segment's portrait next to the whole store's, and STP comparison."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import String, Uuid, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.customers import service as customers
from shared.errors import FieldError, InvalidInput, NotFound
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue
from shared.jobs.runner import JobKind, JobRun
from shared.models import Customer, Segment
from shared.outbound.emit import emit
from shared.outbound.schemas import EventType
from shared.segments import conditions, repository
from shared.segments.schemas import (
    CustomerBrief,
    Growth,
    PreviewResult,
    SegmentCreate,
    SegmentRead,
    SegmentUpdate,
)
from shared.surveys import repository as survey_repository

REFRESH = "segments.refresh"
_CONDITION: TypeAdapter[Any] = TypeAdapter(conditions.Condition)

# Built-in segments: the three questions stores ask about their core customers.
BUILTINS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "builtin:longest-tenure": (
        "Longest-standing customers",
        "Who has bought from us longest.",
        {"fact": "longest_tenure", "op": "eq", "value": True},
    ),
    "builtin:referrers": (
        "Referrers",
        "Customers who brought in others.",
        {"fact": "referrer", "op": "eq", "value": True},
    ),
    "builtin:above-average-spenders": (
        "Above-average spenders",
        "Customers who spend more than the average buyer.",
        {"fact": "above_average_spender", "op": "eq", "value": True},
    ),
}


def parse_id(raw: str | uuid.UUID) -> uuid.UUID:
    return errors.parse_id(raw, "segment")


def to_read(s: Segment, refresh_job_id: uuid.UUID | None = None) -> SegmentRead:
    return SegmentRead(
        id=s.id,
        slug=s.slug,
        name=s.name,
        description=s.description,
        kind=s.kind,
        condition=s.condition,
        details=s.details or {},
        refresh_every_minutes=s.refresh_every_minutes,
        size=s.size,
        refreshed_at=s.refreshed_at,
        created_at=s.created_at,
        updated_at=s.updated_at,
        refresh_job_id=refresh_job_id,
    )


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str | uuid.UUID) -> Segment:
    segment = await repository.get(session, tenant_id, parse_id(raw))
    if segment is None:
        raise NotFound("No segment with this id.")
    return segment


def compiled(condition: dict[str, Any], tenant_id: uuid.UUID) -> Any:
    node = _CONDITION.validate_python(condition)
    return conditions.compile_condition(node, conditions.Context(tenant_id, datetime.now(UTC)))


async def _check_refs(
    session: AsyncSession, tenant_id: uuid.UUID, node: Any, own_id: uuid.UUID | None = None
) -> None:
    """`in_segment` must name an existing segment of this tenant and must not loop back;
    `survey` must name a survey of this tenant and one of its questions."""
    await _check_survey_refs(session, tenant_id, node)
    refs = conditions.segment_refs(node)
    if not refs:
        return
    ids: list[uuid.UUID] = []
    for ref in sorted(refs):
        try:
            ids.append(uuid.UUID(ref))
        except ValueError:
            raise _bad_ref(ref) from None
    found = await repository.existing_ids(session, tenant_id, ids)
    for ref_id in ids:
        if ref_id not in found or ref_id == own_id:
            raise _bad_ref(str(ref_id), own=ref_id == own_id)
    if own_id is not None:
        seen: set[uuid.UUID] = set()
        frontier = list(ids)
        while frontier:
            ref_id = frontier.pop()
            if ref_id in seen:
                continue
            seen.add(ref_id)
            other = await repository.get(session, tenant_id, ref_id)
            if other is not None and other.condition:
                nested = conditions.segment_refs(_CONDITION.validate_python(other.condition))
                if str(own_id) in nested:
                    raise _bad_ref(str(ref_id), own=True)
                frontier += [uuid.UUID(n) for n in nested]


_NUMERIC_QUESTIONS = {"rating", "nps", "number"}
_CONTAINS_QUESTIONS = {"short_text", "long_text", "single_choice", "multiple_choice"}


async def _check_survey_refs(session: AsyncSession, tenant_id: uuid.UUID, node: Any) -> None:
    refs = conditions.survey_refs(node)
    if not refs:
        return
    ids: set[uuid.UUID] = set()
    for loc, f in refs:
        try:
            ids.add(uuid.UUID(f.survey_id))
        except ValueError:
            raise _bad_survey(loc, "survey_id", f"no survey {f.survey_id} in this store") from None
    found = await survey_repository.existing(session, tenant_id, list(ids))
    for loc, f in refs:
        survey = found.get(uuid.UUID(f.survey_id))
        if survey is None:
            raise _bad_survey(loc, "survey_id", f"no survey {f.survey_id} in this store")
        question = next((q for q in survey.questions if q.get("key") == f.question), None)
        if question is None:
            raise _bad_survey(loc, "question", f"the survey has no question {f.question!r}")
        kind = question["type"]
        if f.op in ("gte", "lte", "between") and kind not in _NUMERIC_QUESTIONS:
            raise _bad_survey(loc, "op", f"{f.op!r} needs a rating, NPS or number question")
        if f.op == "contains" and kind not in _CONTAINS_QUESTIONS:
            raise _bad_survey(loc, "op", "'contains' needs a text or choice question")
        if f.op in ("eq", "in") and question.get("choices"):
            values = f.value if isinstance(f.value, list) else [f.value]
            unknown = [v for v in values if v not in question["choices"]]
            if unknown:
                raise _bad_survey(loc, "value", f"not a choice of {f.question!r}: {unknown}")


def _bad_survey(loc: tuple[str | int, ...], field: str, msg: str) -> InvalidInput:
    return InvalidInput(msg, errors=[FieldError(["body", "condition", *loc, field], msg)])


def _bad_ref(ref: str, *, own: bool = False) -> InvalidInput:
    msg = "a segment cannot contain itself" if own else f"no segment {ref} in this store"
    return InvalidInput(msg, errors=[FieldError(["body", "condition"], msg)])


async def _queue_refresh(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> uuid.UUID:
    job = await jobs.create(session, queue, tenant_id, REFRESH, {"segment_id": str(segment_id)})
    return job.id


async def create(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, data: SegmentCreate
) -> SegmentRead:
    condition = None
    if data.condition is not None:
        await _check_refs(session, tenant_id, data.condition)
        condition = data.condition.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    segment = Segment(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        kind=data.kind,
        condition=condition,
        refresh_every_minutes=data.refresh_every_minutes,
        details={},
    )
    session.add(segment)
    await session.flush()
    if data.kind == "static":
        await _set_static_members(session, tenant_id, segment, data.customer_ids or [])
        return to_read(segment)
    job_id = await _queue_refresh(session, queue, tenant_id, segment.id)
    return to_read(segment, job_id)


async def _set_static_members(
    session: AsyncSession, tenant_id: uuid.UUID, segment: Segment, refs: Sequence[str]
) -> None:
    ids, external = [], []
    for n, ref in enumerate(refs):
        kind, value = customers.parse_ref(ref)
        if kind == "external":
            external.append(value)
        else:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                raise InvalidInput(
                    "Not a customer id.",
                    errors=[FieldError(["body", "customer_ids", n], "not a customer id")],
                ) from None
    # Arrays, not IN lists: up to 100,000 ids would overflow a statement's parameters.
    found = select(Customer.id).where(
        Customer.tenant_id == tenant_id,
        (Customer.id == any_(bindparam("ids", ids, type_=ARRAY(Uuid))))
        | (Customer.external_id == any_(bindparam("exts", external, type_=ARRAY(String)))),
    )
    size, _, _ = await repository.replace_members(
        session, tenant_id, segment.id, found, datetime.now(UTC)
    )
    segment.size = size
    segment.refreshed_at = datetime.now(UTC)
    segment.details = {**(segment.details or {}), "requested": len(refs), "matched": size}


async def update(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, raw: str, data: SegmentUpdate
) -> SegmentRead:
    segment = await get(session, tenant_id, raw)
    fields = data.model_fields_set
    if "name" in fields and data.name is not None:
        segment.name = data.name
    if "description" in fields:
        segment.description = data.description
    if "refresh_every_minutes" in fields:
        segment.refresh_every_minutes = data.refresh_every_minutes
    job_id = None
    if "condition" in fields and data.condition is not None:
        if segment.kind != "rule":
            raise InvalidInput(f"A {segment.kind} segment's members are not set by a condition.")
        await _check_refs(session, tenant_id, data.condition, own_id=segment.id)
        segment.condition = data.condition.model_dump(
            mode="json", by_alias=True, exclude_defaults=True
        )
        job_id = await _queue_refresh(session, queue, tenant_id, segment.id)
    segment.updated_at = datetime.now(UTC)
    await session.flush()
    return to_read(segment, job_id)


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    segment = await get(session, tenant_id, raw)
    await session.delete(segment)
    await session.flush()


async def preview(
    session: AsyncSession, tenant_id: uuid.UUID, node: Any, sample: int
) -> PreviewResult:
    await _check_refs(session, tenant_id, node)
    condition = conditions.compile_condition(node, conditions.Context(tenant_id, datetime.now(UTC)))
    size, rows = await repository.preview(session, tenant_id, condition, sample)
    total = await repository.count_customers(session, tenant_id)
    return PreviewResult(
        size=size,
        total_customers=total,
        share=round(size / total, 6) if total else 0.0,
        sample=[
            CustomerBrief(
                id=c.id,
                external_id=c.external_id,
                first_name=c.first_name,
                country=c.country,
                order_count=c.order_count,
                total_spent=format(c.total_spent, ".2f"),
            )
            for c in rows
        ],
    )


async def refresh(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> dict[str, Any]:
    """Recompute a rule or built-in segment's members (set-based, keeping history).

    The segment's row is locked first: two refreshes of one segment at once (a burst of
    writes queues several) would otherwise both open the same memberships, and the second
    would fail on the unique open-membership index."""
    segment = await repository.get(session, tenant_id, segment_id, for_update=True)
    if segment is None or segment.condition is None:
        return {"skipped": "the segment is gone or has no condition"}
    now = datetime.now(UTC)
    ids = repository.matching(tenant_id, compiled(segment.condition, tenant_id))
    size, entered, left = await repository.replace_members(session, tenant_id, segment.id, ids, now)
    segment.size, segment.refreshed_at = size, now
    if entered or left:
        await emit(
            session,
            tenant_id,
            EventType.segment_membership_changed,
            {
                "segment_id": str(segment.id),
                "size": size,
                "entered": entered,
                "left": left,
                "refreshed_at": now.isoformat(),
            },
        )
    return {"segment_id": str(segment.id), "size": size, "entered": entered, "left": left}


async def refresh_job(run: JobRun) -> dict[str, Any]:
    return await refresh(run.session, run.tenant_id, uuid.UUID(run.params["segment_id"]))


REFRESH_KIND = JobKind(REFRESH, refresh_job, timeout_s=600, max_tries=3)


async def ensure_builtins(session: AsyncSession, tenant_id: uuid.UUID) -> list[Segment]:
    """The built-in core-customer segments exist for every tenant (created on first need)."""
    made = []
    for slug, (name, description, condition) in BUILTINS.items():
        segment = await repository.get_by_slug(session, tenant_id, slug)
        if segment is None:
            segment = Segment(
                tenant_id=tenant_id,
                slug=slug,
                name=name,
                description=description,
                kind="builtin",
                condition=condition,
                details={},
            )
            session.add(segment)
            await session.flush()
        made.append(segment)
    return made


async def refresh_rule_segments(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, *, due_only: bool
) -> int:
    """Queue refreshes for rule and built-in segments (all, or those due by schedule)."""
    where = "tenant_id = :t AND kind IN ('rule', 'builtin')"
    if due_only:
        where += (
            " AND refresh_every_minutes IS NOT NULL AND (refreshed_at IS NULL OR "
            "refreshed_at < now() - make_interval(mins => refresh_every_minutes))"
        )
    rows = await session.execute(text(f"SELECT id FROM segments WHERE {where}"), {"t": tenant_id})
    ids = list(rows.scalars())
    for segment_id in ids:
        await _queue_refresh(session, queue, tenant_id, segment_id)
    return len(ids)


async def growth(
    session: AsyncSession, tenant_id: uuid.UUID, segment: Segment, period_days: int
) -> Growth:
    since = datetime.now(UTC) - timedelta(days=period_days)
    then, entered, left = await repository.growth(session, tenant_id, segment.id, since)
    change = segment.size - then
    return Growth(
        period_days=period_days,
        size_then=then,
        entered=entered,
        left=left,
        change=change,
        rate=round(change / then, 6) if then else None,
    )


def money(value: Decimal | float | None) -> str:
    return f"{Decimal(str(value or 0)):.2f}"
