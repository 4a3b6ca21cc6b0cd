"""All SQL for surveys: surveys, distributions and invitations, responses and answers, the
aggregates results are made of, and interviews."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import key_checks_cached
from shared.models import (
    Customer,
    Interview,
    Survey,
    SurveyAnswer,
    SurveyDistribution,
    SurveyInvitation,
    SurveyResponse,
)

CHUNK = 2000


# --- surveys -------------------------------------------------------------------------------


async def get(session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID) -> Survey | None:
    stmt = select(Survey).where(Survey.tenant_id == tenant_id, Survey.id == survey_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def existing(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Survey]:
    stmt = select(Survey).where(Survey.tenant_id == tenant_id, Survey.id.in_(ids))
    return {s.id: s for s in (await session.execute(stmt)).scalars()}


async def list_(
    session: AsyncSession, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> Sequence[Survey]:
    stmt = select(Survey).where(Survey.tenant_id == tenant_id)
    if after is not None:
        stmt = stmt.where(Survey.id < after)
    stmt = stmt.order_by(Survey.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def answered_keys(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID
) -> set[str]:
    stmt = (
        select(SurveyAnswer.question_key)
        .where(SurveyAnswer.tenant_id == tenant_id, SurveyAnswer.survey_id == survey_id)
        .distinct()
    )
    return set((await session.execute(stmt)).scalars())


async def answered_values(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, key: str
) -> tuple[set[str], Any, Any]:
    """The distinct text values and choices given to a question, and the number range."""
    a = SurveyAnswer
    where = (a.tenant_id == tenant_id, a.survey_id == survey_id, a.question_key == key)
    texts = set((await session.execute(select(a.value_text).where(*where).distinct())).scalars())
    chosen = select(func.unnest(a.choices).label("c")).where(*where).subquery()
    texts |= set((await session.execute(select(chosen.c.c).distinct())).scalars())
    low, high = (
        await session.execute(
            select(func.min(a.value_number), func.max(a.value_number)).where(*where)
        )
    ).one()
    return {t for t in texts if t is not None}, low, high


# --- distributions and invitations ---------------------------------------------------------


async def audience_members(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Select[Any], cap: int
) -> Sequence[Any]:
    stmt = (
        select(Customer.id, Customer.external_id, Customer.email)
        .where(Customer.tenant_id == tenant_id, Customer.id.in_(ids))
        .order_by(Customer.id)
        .limit(cap + 1)
    )
    return (await session.execute(stmt)).all()


async def insert_invitations(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    async with key_checks_cached(session):
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(SurveyInvitation), rows[start : start + CHUNK])


async def find_invitation(
    session: AsyncSession, tenant_id: uuid.UUID, digest: bytes
) -> SurveyInvitation | None:
    stmt = (
        select(SurveyInvitation)
        .where(SurveyInvitation.tenant_id == tenant_id, SurveyInvitation.token_hash == digest)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_link(
    session: AsyncSession, tenant_id: uuid.UUID, digest: bytes
) -> SurveyDistribution | None:
    stmt = select(SurveyDistribution).where(
        SurveyDistribution.tenant_id == tenant_id,
        SurveyDistribution.link_token_hash == digest,
        SurveyDistribution.kind == "link",
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_distribution(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, distribution_id: uuid.UUID
) -> SurveyDistribution | None:
    stmt = select(SurveyDistribution).where(
        SurveyDistribution.tenant_id == tenant_id,
        SurveyDistribution.survey_id == survey_id,
        SurveyDistribution.id == distribution_id,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_distributions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[SurveyDistribution]:
    d = SurveyDistribution
    stmt = select(d).where(d.tenant_id == tenant_id, d.survey_id == survey_id)
    if after is not None:
        stmt = stmt.where(d.id < after)
    return (await session.execute(stmt.order_by(d.id.desc()).limit(limit))).scalars().all()


async def recipients(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    distribution_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Any]:
    i, r = SurveyInvitation, SurveyResponse
    stmt = (
        select(i.id, i.customer_id, Customer.external_id, i.completed_at, r.status)
        .outerjoin(Customer, and_(Customer.tenant_id == i.tenant_id, Customer.id == i.customer_id))
        .outerjoin(r, and_(r.tenant_id == i.tenant_id, r.id == i.response_id))
        .where(i.tenant_id == tenant_id, i.distribution_id == distribution_id)
    )
    if after is not None:
        stmt = stmt.where(i.id > after)
    return (await session.execute(stmt.order_by(i.id).limit(limit))).all()


# --- responses and answers -----------------------------------------------------------------


async def get_response(
    session: AsyncSession, tenant_id: uuid.UUID, response_id: uuid.UUID
) -> SurveyResponse | None:
    stmt = select(SurveyResponse).where(
        SurveyResponse.tenant_id == tenant_id, SurveyResponse.id == response_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def answers_of(
    session: AsyncSession, tenant_id: uuid.UUID, response_ids: Sequence[uuid.UUID]
) -> Sequence[SurveyAnswer]:
    if not response_ids:
        return []
    stmt = select(SurveyAnswer).where(
        SurveyAnswer.tenant_id == tenant_id, SurveyAnswer.response_id.in_(response_ids)
    )
    return (await session.execute(stmt)).scalars().all()


async def save_answers(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    response: SurveyResponse,
    rows: dict[str, dict[str, Any]],
    drop: Sequence[str],
) -> None:
    """Upsert answers by (response, question) and delete the ones in `drop`."""
    if drop:
        await session.execute(
            delete(SurveyAnswer).where(
                SurveyAnswer.tenant_id == tenant_id,
                SurveyAnswer.response_id == response.id,
                SurveyAnswer.question_key.in_(list(drop)),
            )
        )
    if not rows:
        return
    values = [
        {
            "tenant_id": tenant_id,
            "response_id": response.id,
            "survey_id": response.survey_id,
            "customer_id": response.customer_id,
            "question_key": key,
            **row,
        }
        for key, row in rows.items()
    ]
    stmt = pg_insert(SurveyAnswer).values(values)
    ex = stmt.excluded
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "response_id", "question_key"],
            set_={
                "value_text": ex.value_text,
                "value_number": ex.value_number,
                "choices": ex.choices,
                "answered_at": func.now(),
            },
        )
    )


async def insert_responses(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    async with key_checks_cached(session):
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(SurveyResponse), rows[start : start + CHUNK])


async def insert_answers(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    async with key_checks_cached(session):
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(SurveyAnswer), rows[start : start + CHUNK])


async def touch_response(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    response_id: uuid.UUID,
    completed_at: datetime | None,
) -> None:
    values: dict[str, Any] = {"updated_at": func.now()}
    if completed_at is not None:
        values.update(status="completed", completed_at=completed_at)
    await session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.tenant_id == tenant_id, SurveyResponse.id == response_id)
        .values(**values)
    )


async def list_responses(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int | None,
    audience: Select[Any] | None = None,
) -> Sequence[Any]:
    r = SurveyResponse
    stmt = (
        select(r, Customer.external_id)
        .outerjoin(Customer, and_(Customer.tenant_id == r.tenant_id, Customer.id == r.customer_id))
        .where(r.tenant_id == tenant_id, r.survey_id == survey_id)
    )
    if audience is not None:
        stmt = stmt.where(r.customer_id.in_(audience))
    if after is not None:
        stmt = stmt.where(r.id > after)
    stmt = stmt.order_by(r.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.execute(stmt)).all()


async def responses_of_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> Sequence[Any]:
    r = SurveyResponse
    stmt = (
        select(r, Survey.title)
        .join(Survey, and_(Survey.tenant_id == r.tenant_id, Survey.id == r.survey_id))
        .where(r.tenant_id == tenant_id, r.customer_id == customer_id)
        .order_by(r.started_at, r.id)
    )
    return (await session.execute(stmt)).all()


async def invitations_of_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> Sequence[SurveyInvitation]:
    i = SurveyInvitation
    stmt = select(i).where(i.tenant_id == tenant_id, i.customer_id == customer_id).order_by(i.id)
    return (await session.execute(stmt)).scalars().all()


# --- aggregates for results ----------------------------------------------------------------


def _answers(
    tenant_id: uuid.UUID, survey_id: uuid.UUID, key: str, audience: Select[Any] | None
) -> list[Any]:
    a = SurveyAnswer
    where = [a.tenant_id == tenant_id, a.survey_id == survey_id, a.question_key == key]
    if audience is not None:
        where.append(a.customer_id.in_(audience))
    return where


async def response_counts(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, audience: Select[Any] | None
) -> tuple[int, int]:
    r = SurveyResponse
    stmt = select(func.count(), func.count().filter(r.status == "completed")).where(
        r.tenant_id == tenant_id, r.survey_id == survey_id
    )
    if audience is not None:
        stmt = stmt.where(r.customer_id.in_(audience))
    total, completed = (await session.execute(stmt)).one()
    return int(total), int(completed)


async def value_counts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    key: str,
    audience: Select[Any] | None,
    *,
    multiple: bool,
    numeric: bool,
) -> list[tuple[str, int]]:
    a = SurveyAnswer
    where = _answers(tenant_id, survey_id, key, audience)
    if multiple:
        value: Any = func.unnest(a.choices)
    elif numeric:
        value = cast(a.value_number, Text)
    else:
        value = a.value_text
    sub = select(value.label("v")).where(*where).subquery()
    stmt = select(sub.c.v, func.count()).group_by(sub.c.v).order_by(func.count().desc(), sub.c.v)
    return [(str(v), int(n)) for v, n in await session.execute(stmt)]


async def answered(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    key: str,
    audience: Select[Any] | None,
) -> int:
    where = _answers(tenant_id, survey_id, key, audience)
    return int(await session.scalar(select(func.count()).where(*where)) or 0)


async def number_stats(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    key: str,
    audience: Select[Any] | None,
    satisfied_from: float,
) -> Any:
    a = SurveyAnswer
    v = a.value_number
    stmt = select(
        func.avg(v),
        func.percentile_cont(0.5).within_group(v),
        func.count().filter(v >= 9),
        func.count().filter(and_(v >= 7, v <= 8)),
        func.count().filter(v <= 6),
        func.count().filter(v >= satisfied_from),
    ).where(*_answers(tenant_id, survey_id, key, audience))
    return (await session.execute(stmt)).one()


async def free_texts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    key: str,
    audience: Select[Any] | None,
    limit: int,
) -> list[str]:
    a = SurveyAnswer
    stmt = (
        select(a.value_text)
        .where(*_answers(tenant_id, survey_id, key, audience))
        .order_by(a.answered_at.desc())
        .limit(limit)
    )
    return [t for t in (await session.execute(stmt)).scalars() if t is not None]


async def invitation_rates(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, group: Select[Any] | None
) -> tuple[int, int]:
    """(invited, completed) among invitations to known customers, optionally in a group."""
    i = SurveyInvitation
    stmt = select(func.count(), func.count(i.completed_at)).where(
        i.tenant_id == tenant_id, i.survey_id == survey_id, i.customer_id.is_not(None)
    )
    if group is not None:
        stmt = stmt.where(i.customer_id.in_(group))
    invited, done = (await session.execute(stmt)).one()
    return int(invited), int(done)


# --- interviews ----------------------------------------------------------------------------


async def get_interview(
    session: AsyncSession, tenant_id: uuid.UUID, interview_id: uuid.UUID
) -> Interview | None:
    stmt = select(Interview).where(Interview.tenant_id == tenant_id, Interview.id == interview_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_interviews(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    customer_id: uuid.UUID | None,
    tag: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Interview]:
    stmt = select(Interview).where(Interview.tenant_id == tenant_id)
    if customer_id is not None:
        stmt = stmt.where(Interview.customer_id == customer_id)
    if tag is not None:
        stmt = stmt.where(Interview.tags.contains([tag]))
    if after is not None:
        stmt = stmt.where(Interview.id < after)
    return (await session.execute(stmt.order_by(Interview.id.desc()).limit(limit))).scalars().all()


async def interviews_of_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> Sequence[Interview]:
    stmt = (
        select(Interview)
        .where(Interview.tenant_id == tenant_id, Interview.customer_id == customer_id)
        .order_by(Interview.interviewed_at, Interview.id)
    )
    return (await session.execute(stmt)).scalars().all()
