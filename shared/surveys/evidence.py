"""What surveys and interviews say about a group of customers, for personas to read.

    answers_for(session, tenant_id, customers=None, *, survey_id=None) -> list[QuestionEvidence]
    interview_evidence(session, tenant_id, customers=None) -> InterviewEvidence

`customers` is a segment id (uuid or str: its current members), a SQL select of customer
ids (e.g. `segments.repository.matching(...)`), or None for every customer. Only completed
responses count. Financial questions come with `self_reported=True`: weigh them lower.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Interview, SegmentMember, Survey, SurveyAnswer, SurveyResponse
from shared.surveys.schemas import Question

Customers = Select[Any] | uuid.UUID | str | None
MAX_TEXTS = 500


@dataclass
class QuestionEvidence:
    survey_id: uuid.UUID
    survey_title: str
    key: str
    text: str
    category: str
    type: str
    maps_to: str | None
    self_reported: bool
    respondents: int
    counts: dict[str, int] = field(default_factory=dict)  # choice (or number as text) -> n
    mean: float | None = None
    texts: list[str] = field(default_factory=list)


@dataclass
class Quote:
    interview_id: uuid.UUID
    customer_id: uuid.UUID
    interviewed_at: datetime
    text: str
    tags: list[str]


@dataclass
class InterviewEvidence:
    interviews: int
    customers: int
    tag_counts: dict[str, int]  # over interview tags and quote tags
    quotes: list[Quote]


def _ids(tenant_id: uuid.UUID, customers: Customers) -> Select[Any] | None:
    if customers is None:
        return None
    if isinstance(customers, uuid.UUID | str):
        return select(SegmentMember.customer_id).where(
            SegmentMember.tenant_id == tenant_id,
            SegmentMember.segment_id == uuid.UUID(str(customers)),
            SegmentMember.left_at.is_(None),
        )
    return customers


async def answers_for(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customers: Customers = None,
    *,
    survey_id: uuid.UUID | None = None,
) -> list[QuestionEvidence]:
    """Per survey question: text, category, type, counts per choice, mean of numbers and the
    free-text answers (at most 500 per question), over the completed responses of
    `customers`. Three grouped statements, whatever the number of respondents."""
    ids = _ids(tenant_id, customers)
    a, r = SurveyAnswer, SurveyResponse
    where: list[Any] = [a.tenant_id == tenant_id, r.status == "completed"]
    if survey_id is not None:
        where.append(a.survey_id == survey_id)
    if ids is not None:
        where.append(a.customer_id.in_(ids))
    joined = and_(r.tenant_id == a.tenant_id, r.id == a.response_id)
    totals = (
        await session.execute(
            select(a.survey_id, a.question_key, func.count(), func.avg(a.value_number))
            .join(r, joined)
            .where(*where)
            .group_by(a.survey_id, a.question_key)
        )
    ).all()
    if not totals:
        return []
    out = await _questions(session, tenant_id, {t.survey_id for t in totals})
    for sid, key, n, mean in totals:
        ev = out.get((sid, key))
        if ev is not None:
            ev.respondents = int(n)
            ev.mean = None if mean is None else round(float(mean), 4)
    values = func.unnest(
        func.coalesce(a.choices, array([func.coalesce(a.value_text, cast(a.value_number, Text))]))
    ).label("v")
    each = select(a.survey_id, a.question_key, values).join(r, joined).where(*where).subquery()
    counted = await session.execute(
        select(each.c.survey_id, each.c.question_key, each.c.v, func.count())
        .group_by(each.c.survey_id, each.c.question_key, each.c.v)
        .order_by(func.count().desc(), each.c.v)
    )
    for sid, key, value, n in counted:
        ev = out.get((sid, key))
        if ev is not None and ev.type not in _TEXT and value is not None:
            ev.counts[value] = int(n)
    text_keys = [k for k, ev in out.items() if ev.type in _TEXT and ev.respondents]
    if text_keys:
        ranked = (
            select(
                a.survey_id,
                a.question_key,
                a.value_text,
                func.row_number()
                .over(partition_by=(a.survey_id, a.question_key), order_by=a.answered_at.desc())
                .label("n"),
            )
            .join(r, joined)
            .where(*where, a.question_key.in_({k for _, k in text_keys}))
            .subquery()
        )
        for sid, key, value, _ in await session.execute(
            select(ranked).where(ranked.c.n <= MAX_TEXTS).order_by(ranked.c.n)
        ):
            ev = out.get((sid, key))
            if ev is not None and ev.type in _TEXT and value is not None:
                ev.texts.append(value)
    return [ev for ev in out.values() if ev.respondents]


_TEXT = ("short_text", "long_text")


async def _questions(
    session: AsyncSession, tenant_id: uuid.UUID, survey_ids: set[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], QuestionEvidence]:
    """Every question of these surveys, in survey then question order."""
    rows = await session.execute(
        select(Survey)
        .where(Survey.tenant_id == tenant_id, Survey.id.in_(survey_ids))
        .order_by(Survey.id)
    )
    out: dict[tuple[uuid.UUID, str], QuestionEvidence] = {}
    for s in rows.scalars():
        for raw in s.questions:
            q = Question.model_validate(raw)
            out[(s.id, q.key)] = QuestionEvidence(
                survey_id=s.id,
                survey_title=s.title,
                key=q.key,
                text=q.text,
                category=q.category,
                type=q.type,
                maps_to=q.maps_to,
                self_reported=q.self_reported,
                respondents=0,
            )
    return out


async def interview_evidence(
    session: AsyncSession, tenant_id: uuid.UUID, customers: Customers = None
) -> InterviewEvidence:
    """Quotes with their tags, and how often each tag (goal, pain_point, objection,
    motivation, channel) appears, over the interviews of `customers`."""
    ids = _ids(tenant_id, customers)
    stmt = select(Interview).where(Interview.tenant_id == tenant_id)
    if ids is not None:
        stmt = stmt.where(Interview.customer_id.in_(ids))
    interviews = (await session.execute(stmt.order_by(Interview.interviewed_at))).scalars().all()
    tags: Counter[str] = Counter()
    quotes: list[Quote] = []
    for i in interviews:
        tags.update(i.tags)
        for q in i.quotes:
            tags.update(q.get("tags", []))
            quotes.append(
                Quote(i.id, i.customer_id, i.interviewed_at, q["text"], list(q.get("tags", [])))
            )
    return InterviewEvidence(
        interviews=len(interviews),
        customers=len({i.customer_id for i in interviews}),
        tag_counts=dict(tags.most_common()),
        quotes=quotes,
    )
