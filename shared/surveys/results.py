"""Survey results: per question counts and shares, mean and median, NPS and CSAT, free texts,
for everyone or one audience; response rates per built-in group next to the audience's makeup;
responses as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.surveys import repository
from shared.surveys import service as surveys
from shared.surveys.schemas import (
    AudienceRate,
    ChoiceCount,
    Csat,
    DistributionCreated,
    Nps,
    Question,
    QuestionResult,
    ResponseRead,
    SurveyResults,
)

MAX_TEXTS = 200
_COUNTED = {"single_choice", "multiple_choice", "yes_no", "rating", "nps"}
_NUMERIC = {"rating", "nps", "number"}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def _question(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    q: Question,
    audience: Select[Any] | None,
) -> QuestionResult:
    n = await repository.answered(session, tenant_id, survey_id, q.key, audience)
    result = QuestionResult(
        key=q.key,
        text=q.text,
        type=q.type,
        category=q.category,
        self_reported=q.self_reported,
        answered=n,
    )
    if q.type in _COUNTED:
        counts = await repository.value_counts(
            session,
            tenant_id,
            survey_id,
            q.key,
            audience,
            multiple=q.type == "multiple_choice",
            numeric=q.type in _NUMERIC,
        )
        result.counts = [
            ChoiceCount(value=v, count=c, share=_share(c, n) or 0.0) for v, c in counts
        ]
    if q.type in _NUMERIC:
        top = float(q.scale_max or 5)
        mean, median, promoters, passives, detractors, satisfied = await repository.number_stats(
            session, tenant_id, survey_id, q.key, audience, satisfied_from=top - 1
        )
        result.mean = None if mean is None else round(float(mean), 4)
        result.median = None if median is None else float(median)
        if q.type == "nps":
            score = None if not n else round(100 * (promoters - detractors) / n, 1)
            result.nps = Nps(
                promoters=promoters, passives=passives, detractors=detractors, score=score
            )
        if q.type == "rating":
            # CSAT: the share answering in the top two points of the scale.
            result.csat = Csat(satisfied=satisfied, share=_share(satisfied, n))
    if q.type in ("short_text", "long_text"):
        result.texts = await repository.free_texts(
            session, tenant_id, survey_id, q.key, audience, MAX_TEXTS
        )
    return result


async def results(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    raw: str,
    *,
    segment_id: str | None = None,
    group: str | None = None,
) -> SurveyResults:
    survey = await surveys.get(session, tenant_id, raw)
    audience = None
    described: dict[str, Any] = {}
    if segment_id is not None or group is not None:
        loc: list[str | int] = ["query", "segment_id" if segment_id is not None else "group"]
        audience = await surveys.audience(
            session, tenant_id, segment_id=segment_id, group=group, loc=loc
        )
        described = {"segment_id": segment_id} if segment_id is not None else {"group": group}
    total, completed = await repository.response_counts(session, tenant_id, survey.id, audience)
    questions = [
        await _question(session, tenant_id, survey.id, q, audience)
        for q in surveys.questions_of(survey)
    ]
    return SurveyResults(
        survey_id=survey.id,
        audience=described,
        responses=total,
        completed=completed,
        partial=total - completed,
        questions=questions,
        response_rates=await response_rates(session, tenant_id, survey.id),
    )


async def response_rates(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID
) -> list[AudienceRate]:
    """Per built-in group: invited, completed, the rate, and the group's share of everyone
    invited next to its share of the respondents (who is over- or under-represented)."""
    invited_all, done_all = await repository.invitation_rates(session, tenant_id, survey_id, None)
    rows = [
        AudienceRate(
            group="all",
            invited=invited_all,
            responded=done_all,
            rate=_share(done_all, invited_all),
            share_of_invited=1.0 if invited_all else None,
            share_of_respondents=1.0 if done_all else None,
        )
    ]
    for name in surveys.GROUPS:
        ids = await surveys.audience(session, tenant_id, group=name)
        invited, done = await repository.invitation_rates(session, tenant_id, survey_id, ids)
        rows.append(
            AudienceRate(
                group=name,
                invited=invited,
                responded=done,
                rate=_share(done, invited),
                share_of_invited=_share(invited, invited_all),
                share_of_respondents=_share(done, done_all),
            )
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    out = str(value)
    # Spreadsheets run cells that start like a formula: keep them text.
    return "'" + out if out[:1] in ("=", "+", "-", "@", "\t", "\r") else out


def responses_csv(questions: Sequence[Question], rows: Sequence[ResponseRead]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    head = ["response_id", "customer_id", "external_id", "status", "started_at", "completed_at"]
    writer.writerow(head + [q.key for q in questions])
    for r in rows:
        writer.writerow(
            [
                r.id,
                r.customer_id or "",
                _cell(r.external_id),
                r.status,
                r.started_at.isoformat(),
                r.completed_at.isoformat() if r.completed_at else "",
                *(_cell(r.answers.get(q.key)) for q in questions),
            ]
        )
    return buf.getvalue()


def invitations_csv(created: DistributionCreated) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["invitation_id", "customer_id", "external_id", "email", "token", "link"])
    for i in created.invitations:
        writer.writerow(
            [i.invitation_id, i.customer_id, _cell(i.external_id), _cell(i.email), i.token, i.link]
        )
    if created.token:
        writer.writerow(["", "", "", "", created.token, created.link or ""])
    return buf.getvalue()
