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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select
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
    free-text answers, over the completed responses of `customers`."""
    ids = _ids(tenant_id, customers)
    a, r = SurveyAnswer, SurveyResponse
    stmt = (
        select(a.survey_id, a.question_key, a.value_text, a.value_number, a.choices, a.customer_id)
        .join(r, and_(r.tenant_id == a.tenant_id, r.id == a.response_id))
        .where(a.tenant_id == tenant_id, r.status == "completed")
    )
    if survey_id is not None:
        stmt = stmt.where(a.survey_id == survey_id)
    if ids is not None:
        stmt = stmt.where(a.customer_id.in_(ids))
    rows = (await session.execute(stmt)).all()
    survey_ids = {row.survey_id for row in rows}
    surveys = (
        (
            await session.execute(
                select(Survey).where(Survey.tenant_id == tenant_id, Survey.id.in_(survey_ids))
            )
        )
        .scalars()
        .all()
        if survey_ids
        else []
    )
    out: dict[tuple[uuid.UUID, str], QuestionEvidence] = {}
    order: list[tuple[uuid.UUID, str]] = []
    for s in sorted(surveys, key=lambda s: s.id):
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
            order.append((s.id, q.key))
    _tally(out, rows)
    return [out[k] for k in order if out[k].respondents]


def _tally(out: dict[tuple[uuid.UUID, str], QuestionEvidence], rows: Sequence[Any]) -> None:
    counts: dict[tuple[uuid.UUID, str], Counter[str]] = {}
    sums: dict[tuple[uuid.UUID, str], float] = {}
    for row in rows:
        ev = out.get((row.survey_id, row.question_key))
        if ev is None:
            continue
        ev.respondents += 1
        c = counts.setdefault((row.survey_id, row.question_key), Counter())
        if row.choices:
            c.update(row.choices)
        elif row.value_number is not None:
            c[format(row.value_number.normalize(), "f")] += 1
            sums[(row.survey_id, row.question_key)] = sums.get(
                (row.survey_id, row.question_key), 0.0
            ) + float(row.value_number)
        elif row.value_text is not None:
            if ev.type in ("short_text", "long_text"):
                if len(ev.texts) < MAX_TEXTS:
                    ev.texts.append(row.value_text)
            else:
                c[row.value_text] += 1
    for key, c in counts.items():
        out[key].counts = dict(c.most_common())
    for key, total in sums.items():
        out[key].mean = round(total / out[key].respondents, 4)


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
