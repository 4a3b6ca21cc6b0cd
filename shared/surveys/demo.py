"""The demo store's survey: a "Customer profile" survey built from the question library (decision
role, motivations, frustrations, goals, NPS; mapped where a profile fact exists) and the
generator's answers loaded as completed responses, which enrich the profiles like real ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.base import new_id
from shared.db.engine import unit_of_work
from shared.ingest.demo import survey_vocabulary
from shared.models import Customer, Survey, SurveyResponse
from shared.surveys import answers as checks
from shared.surveys import library, repository
from shared.surveys import service as surveys
from shared.surveys.schemas import Question, SurveyCreate

TITLE = "Customer profile"
KEYS = ("decision_role", "motivations", "frustrations", "goals", "nps")


class DemoSurveyError(RuntimeError):
    """The generator produced an answer the survey would refuse: a bug in the generator."""


def demo_questions() -> list[Question]:
    out = []
    for q in library.questions(KEYS):
        raw = q.model_dump(exclude_none=True)
        if q.key in ("motivations", "frustrations", "goals"):
            raw["choices"] = list(survey_vocabulary(q.key))
        out.append(Question.model_validate(raw))
    return out


async def ensure_survey(session: AsyncSession, tenant_id: uuid.UUID) -> Survey:
    """The demo survey, made once per tenant (active: its questions are the generator's)."""
    found = await session.execute(
        select(Survey).where(
            Survey.tenant_id == tenant_id,
            Survey.title == TITLE,
            Survey.template == "customer_profile",
        )
    )
    survey = found.scalars().first()
    if survey is not None:
        return survey
    survey = await surveys.create(
        session,
        tenant_id,
        SurveyCreate(
            title=TITLE,
            introduction="Tell us who you are, so we can serve you better.",
            questions=demo_questions(),
        ),
    )
    survey.template = "customer_profile"
    survey.status = "active"
    await session.flush()
    return survey


async def _load_batch(session: AsyncSession, survey: Survey, batch: list[dict[str, Any]]) -> None:
    tenant_id = survey.tenant_id
    by_ext = {row["customer_external_id"]: row for row in batch}
    known = await session.execute(
        select(Customer.external_id, Customer.id)
        .outerjoin(
            SurveyResponse,
            and_(
                SurveyResponse.tenant_id == Customer.tenant_id,
                SurveyResponse.customer_id == Customer.id,
                SurveyResponse.survey_id == survey.id,
            ),
        )
        .where(
            Customer.tenant_id == tenant_id,
            Customer.external_id.in_(list(by_ext)),
            SurveyResponse.id.is_(None),  # loading again adds nothing
        )
    )
    qs = {q.key: q for q in surveys.questions_of(survey)}
    responses: list[dict[str, Any]] = []
    answer_rows: list[dict[str, Any]] = []
    for ext, customer_id in known:
        row = by_ext[ext]
        at = datetime.fromisoformat(str(row["answered_at"]).replace("Z", "+00:00"))
        response_id = new_id()
        responses.append(
            {
                "tenant_id": tenant_id,
                "id": response_id,
                "survey_id": survey.id,
                "survey_version": survey.version,
                "distribution_id": None,
                "customer_id": customer_id,
                "status": "completed",
                "started_at": at,
                "updated_at": at,
                "completed_at": at,
            }
        )
        for key, value in row["answers"].items():
            try:
                stored = checks.check(qs[key], value)
            except (KeyError, checks.BadAnswer) as exc:
                raise DemoSurveyError(f"demo answer {key}={value!r} for {ext}: {exc}") from exc
            answer_rows.append(
                {
                    "tenant_id": tenant_id,
                    "response_id": response_id,
                    "question_key": key,
                    "survey_id": survey.id,
                    "customer_id": customer_id,
                    "value_text": stored.value_text,
                    "value_number": stored.value_number,
                    "choices": stored.choices,
                    "answered_at": at,
                }
            )
    if not responses:
        return
    await repository.insert_responses(session, responses)
    await repository.insert_answers(session, answer_rows)
    await surveys.enrich(session, survey, [r["id"] for r in responses])


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


async def load_answers(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    rows: Iterable[dict[str, Any]],
    *,
    batch: int = 1000,
) -> int:
    """Load `shared.ingest.demo.iter_survey_answers` rows as completed responses to the demo
    survey, a batch per transaction. Returns the rows handed in."""
    async with unit_of_work(sessionmaker, tenant_id) as session:
        survey_id = (await ensure_survey(session, tenant_id)).id
    done = 0
    for chunk in _batches(rows, batch):
        async with unit_of_work(sessionmaker, tenant_id) as session:
            survey = await repository.get(session, tenant_id, survey_id)
            assert survey is not None
            await _load_batch(session, survey, chunk)
        done += len(chunk)
    return done
