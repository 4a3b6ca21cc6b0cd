"""The seam between personas and the qualitative sources: survey answers, interview notes,
funnel drop-offs.

Each function returns plain evidence records for one segment, next to the same figures for
all customers, so the persona builder can give shares, intervals and lifts. The sources are
other domains' tables; with no answers, interviews or funnels a function returns nothing and
the persona says which survey question would fill the field. Everything that knows those
tables' shapes lives here and only here. (`shared.surveys.evidence.answers_for` counts one
group's answers; here the segment and the whole store are counted in the same statement.)

Shapes read:
- `surveys(id, title, questions jsonb)`: each question a JSON object with a `key`, a `type`,
  its text (`text`, `prompt` or `title`), a `category`, and optionally the profile fact it
  maps to (`maps_to`, `profile_fact` or `fact`) or the library question it came from
  (`library_key` or `library`).
- `survey_answers(response_id, survey_id, question_key, customer_id, value_text, value_number,
  choices)`; only answers of `survey_responses` with status `completed` count.
- `interviews(id, customer_id, interviewed_at, notes, quotes jsonb [{text, tags}], tags)`.
- funnels (issue 8): `funnels(id, name, definition jsonb)`, the definition's `steps` each an
  object with `event`; reach per step is counted from `events` by event name in step order
  (a simpler count than a funnel run's: no window, filters or exclusions).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

FREE_TEXT_TYPES = frozenset({"short_text", "long_text", "text", "free_text", "open"})
MAX_QUOTES = 5


@dataclass(frozen=True)
class AnswerCount:
    value: str
    count: int  # segment members who gave this answer
    store_count: int  # customers (all) who gave it


@dataclass
class QuestionEvidence:
    """One survey question answered by customers: what the segment answered next to all."""

    survey_id: str
    survey_title: str
    question_key: str
    question_text: str
    question_type: str
    topic: str  # the profile fact or library question it maps to, else its key
    respondents: int  # segment members who answered it
    store_respondents: int
    answers: list[AnswerCount] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # free-text answers of members (quotes)
    self_reported: bool = False


@dataclass(frozen=True)
class InterviewEvidence:
    """One highlighted quote (or the notes) from an interview with a segment member."""

    interview_id: str
    customer_id: str
    interviewed_at: str
    text: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class FunnelDropoff:
    """Where the segment leaves a funnel: the step after which it goes no further."""

    funnel_id: str
    funnel_name: str
    step: int  # 1-based: the step reached, the next one not
    from_step: str
    to_step: str
    reached: int  # segment members who reached `from_step`
    dropped: int  # of those, how many never did `to_step`
    store_reached: int
    store_dropped: int


def _first(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if obj.get(name) not in (None, ""):
            return obj[name]
    return None


_MEMBER = """JOIN survey_responses r ON r.tenant_id = a.tenant_id AND r.id = a.response_id
    AND r.status = 'completed'
LEFT JOIN segment_members m ON m.tenant_id = a.tenant_id AND m.segment_id = :s
    AND m.customer_id = a.customer_id AND m.left_at IS NULL"""


async def survey_evidence(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> list[QuestionEvidence]:
    """Every answered survey question, the segment's answers next to all respondents'."""
    params = {"t": tenant_id, "s": segment_id}
    totals = (
        await session.execute(
            text(
                f"""SELECT a.survey_id, a.question_key,
                   count(DISTINCT a.customer_id) FILTER (WHERE m.customer_id IS NOT NULL) AS seg,
                   count(DISTINCT a.customer_id) AS store
                FROM survey_answers a {_MEMBER}
                WHERE a.tenant_id = :t AND a.customer_id IS NOT NULL GROUP BY 1, 2"""
            ),
            params,
        )
    ).all()
    if not totals:
        return []
    counts = (
        await session.execute(
            text(
                f"""SELECT a.survey_id, a.question_key,
                   coalesce(k.value, a.value_text, a.value_number::text) AS value,
                   count(DISTINCT a.customer_id) FILTER (WHERE m.customer_id IS NOT NULL) AS seg,
                   count(DISTINCT a.customer_id) AS store
                FROM survey_answers a
                LEFT JOIN LATERAL unnest(a.choices) AS k(value) ON true
                {_MEMBER}
                WHERE a.tenant_id = :t AND a.customer_id IS NOT NULL
                GROUP BY 1, 2, 3"""
            ),
            params,
        )
    ).all()
    texts = (
        await session.execute(
            text(
                f"""SELECT a.survey_id, a.question_key, a.value_text
                FROM survey_answers a {_MEMBER.replace("LEFT JOIN segment", "JOIN segment")}
                WHERE a.tenant_id = :t AND a.value_text IS NOT NULL
                  AND length(a.value_text) > 20
                ORDER BY a.survey_id, a.question_key, length(a.value_text) DESC, a.value_text
                LIMIT 200"""
            ),
            params,
        )
    ).all()
    survey_ids = sorted({r.survey_id for r in totals})
    surveys = {
        r.id: r
        for r in (
            await session.execute(
                text(
                    "SELECT id, title, questions FROM surveys WHERE tenant_id = :t "
                    "AND id = ANY(:ids)"
                ),
                {"t": tenant_id, "ids": survey_ids},
            )
        ).all()
    }
    by_question: dict[tuple[Any, str], list[AnswerCount]] = defaultdict(list)
    for r in counts:
        if r.value is not None:
            by_question[(r.survey_id, r.question_key)].append(
                AnswerCount(str(r.value), int(r.seg), int(r.store))
            )
    texts_by: dict[tuple[Any, str], list[str]] = defaultdict(list)
    for r in texts:
        texts_by[(r.survey_id, r.question_key)].append(r.value_text)
    out = []
    for r in totals:
        survey = surveys.get(r.survey_id)
        questions = (survey.questions if survey is not None else None) or []
        question = next(
            (q for q in questions if isinstance(q, dict) and q.get("key") == r.question_key), {}
        )
        qtype = str(question.get("type") or "")
        key = (r.survey_id, r.question_key)
        out.append(
            QuestionEvidence(
                survey_id=str(r.survey_id),
                survey_title=survey.title if survey is not None else "",
                question_key=r.question_key,
                question_text=str(_first(question, "text", "prompt", "title") or r.question_key),
                question_type=qtype,
                topic=str(
                    _first(question, "maps_to", "profile_fact", "fact", "library_key", "library")
                    or r.question_key
                ),
                respondents=int(r.seg),
                store_respondents=int(r.store),
                answers=sorted(by_question[key], key=lambda a: (-a.count, -a.store_count, a.value))
                if qtype not in FREE_TEXT_TYPES
                else [],
                texts=texts_by[key][:MAX_QUOTES] if qtype in FREE_TEXT_TYPES else [],
                self_reported=str(question.get("category") or "") == "financial",
            )
        )
    return out


async def interview_evidence(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> list[InterviewEvidence]:
    """Highlighted quotes (with their tags) from interviews with the segment's members."""
    rows = (
        await session.execute(
            text(
                """SELECT i.id, i.customer_id, i.interviewed_at, i.notes, i.quotes, i.tags
                FROM interviews i JOIN segment_members m ON m.tenant_id = i.tenant_id
                     AND m.segment_id = :s AND m.customer_id = i.customer_id
                     AND m.left_at IS NULL
                WHERE i.tenant_id = :t ORDER BY i.interviewed_at DESC, i.id LIMIT 200"""
            ),
            {"t": tenant_id, "s": segment_id},
        )
    ).all()
    out = []
    for r in rows:
        quotes = [q for q in (r.quotes or []) if isinstance(q, dict) and q.get("text")]
        base = dict(
            interview_id=str(r.id),
            customer_id=str(r.customer_id),
            interviewed_at=r.interviewed_at.isoformat() if r.interviewed_at else "",
        )
        for q in quotes:
            tags = tuple(str(t) for t in (q.get("tags") or r.tags or []))
            out.append(InterviewEvidence(**base, text=str(q["text"]), tags=tags))
        if not quotes and r.notes and r.tags:
            out.append(InterviewEvidence(**base, text=str(r.notes), tags=tuple(r.tags)))
    return out


def _step_event(step: Any) -> str | None:
    if isinstance(step, str):
        return step
    if isinstance(step, dict):
        value = _first(step, "event", "name", "event_name")
        return str(value) if value is not None else None
    return None


async def funnel_dropoffs(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> list[FunnelDropoff]:
    """Per saved funnel, how many of the segment reached each step and went no further.

    Reach is counted from events in step order (each step's first time after the previous
    step's first time), for the segment and for all customers. Once the funnels service
    lands, its own per-run drop-offs can replace this count."""
    funnels = (
        await session.execute(
            text(
                "SELECT id, name, definition -> 'steps' AS steps FROM funnels "
                "WHERE tenant_id = :t ORDER BY id LIMIT 20"
            ),
            {"t": tenant_id},
        )
    ).all()
    out: list[FunnelDropoff] = []
    for f in funnels:
        names = [_step_event(s) for s in (f.steps or [])]
        if len(names) < 2 or any(n is None for n in names):
            continue
        reached = await _reach(session, tenant_id, segment_id, [str(n) for n in names])
        for i in range(len(names) - 1):
            seg_at, store_at = reached[i]
            seg_next, store_next = reached[i + 1]
            out.append(
                FunnelDropoff(
                    funnel_id=str(f.id),
                    funnel_name=str(f.name),
                    step=i + 1,
                    from_step=str(names[i]),
                    to_step=str(names[i + 1]),
                    reached=seg_at,
                    dropped=seg_at - seg_next,
                    store_reached=store_at,
                    store_dropped=store_at - store_next,
                )
            )
    return out


async def _reach(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, steps: list[str]
) -> list[tuple[int, int]]:
    """(segment, store) customers reaching each step in order, one statement."""
    ctes = [
        "s0 AS (SELECT e.customer_id, min(e.occurred_at) AS at FROM events e "
        "WHERE e.tenant_id = :t AND e.customer_id IS NOT NULL AND e.name = :e0 GROUP BY 1)"
    ]
    for i in range(1, len(steps)):
        ctes.append(
            f"s{i} AS (SELECT p.customer_id, min(e.occurred_at) AS at FROM s{i - 1} p "
            f"JOIN events e ON e.tenant_id = :t AND e.customer_id = p.customer_id "
            f"AND e.name = :e{i} AND e.occurred_at >= p.at GROUP BY 1)"
        )
    counts = ", ".join(
        f"(SELECT count(*) FROM s{i} x JOIN segment_members m ON m.tenant_id = :t "
        f"AND m.segment_id = :s AND m.customer_id = x.customer_id AND m.left_at IS NULL) "
        f"AS seg{i}, (SELECT count(*) FROM s{i}) AS store{i}"
        for i in range(len(steps))
    )
    params: dict[str, Any] = {"t": tenant_id, "s": segment_id}
    params.update({f"e{i}": name for i, name in enumerate(steps)})
    row = (await session.execute(text(f"WITH {', '.join(ctes)} SELECT {counts}"), params)).one()
    return [(int(row[2 * i]), int(row[2 * i + 1])) for i in range(len(steps))]
