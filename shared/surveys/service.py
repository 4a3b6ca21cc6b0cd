"""Survey rules: the lifecycle, warnings, changes that would invalidate answers, sending to
audiences, the respondent's side (validation, skip logic, resume, single use) and the
enrichment of profiles by mapped answers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.customers import service as customers
from shared.db.base import new_id
from shared.db.engine import set_tenant
from shared.errors import Conflict, FieldError, InvalidInput, NotFound
from shared.models import (
    SegmentMember,
    Survey,
    SurveyDistribution,
    SurveyInvitation,
    SurveyResponse,
    Tenant,
)
from shared.outbound.emit import emit
from shared.outbound.schemas import EventType
from shared.segments import repository as segment_repository
from shared.segments import service as segments
from shared.surveys import answers as checks
from shared.surveys import library, repository, tokens
from shared.surveys.schemas import (
    MAPPABLE,
    MAX_QUESTIONS,
    MIN_QUESTIONS,
    DistributionCreate,
    DistributionCreated,
    DistributionRead,
    Invitation,
    PublicSubmit,
    PublicSubmitted,
    PublicSurvey,
    Question,
    ResponseRead,
    SurveyCreate,
    SurveyRead,
    SurveyUpdate,
    check_questions,
)

MAX_RECIPIENTS = 50_000
PUBLIC_PATH = "/v1/public/responses/"

# Built-in audiences, as segment conditions (compiled to SQL by the segments domain).
GROUPS: dict[str, dict[str, Any]] = {
    "frequent_buyers": {"fact": "order_count", "op": "gte", "value": 3},
    "one_time_buyers": {"fact": "order_count", "op": "eq", "value": 1},
    "cart_abandoners": {
        "all": [{"event": "add_to_cart"}, {"fact": "order_count", "op": "eq", "value": 0}]
    },
    "prospects": {"fact": "order_count", "op": "eq", "value": 0},
}
_TRANSITIONS = {("draft", "active"), ("active", "closed")}
_NOT_FOUND = "No survey with this id."


def parse_id(raw: str | uuid.UUID, what: str = "survey") -> uuid.UUID:
    return errors.parse_id(raw, what)


def questions_of(survey: Survey) -> list[Question]:
    return [Question.model_validate(q) for q in survey.questions]


def warnings(questions: Sequence[Question]) -> list[str]:
    n = len(questions)
    out: list[str] = []
    if n < MIN_QUESTIONS:
        out.append(
            f"The survey has {n} questions; fewer than {MIN_QUESTIONS} rarely make a useful "
            "profile."
        )
    if n > MAX_QUESTIONS:
        out.append(
            f"The survey has {n} questions; more than {MAX_QUESTIONS} make many respondents quit."
        )
    return out


def to_read(s: Survey) -> SurveyRead:
    qs = questions_of(s)
    return SurveyRead(
        id=s.id,
        title=s.title,
        introduction=s.introduction,
        status=s.status,
        version=s.version,
        template=s.template,
        questions=qs,
        created_at=s.created_at,
        updated_at=s.updated_at,
        warnings=warnings(qs),
    )


def _dump(questions: Sequence[Question]) -> list[dict[str, Any]]:
    return [q.model_dump(mode="json", exclude_none=True) for q in questions]


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str | uuid.UUID) -> Survey:
    survey = await repository.get(session, tenant_id, parse_id(raw))
    if survey is None:
        raise NotFound(_NOT_FOUND)
    return survey


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: SurveyCreate) -> Survey:
    """A draft survey from explicit questions, library questions and/or a template."""
    keys: list[str] = list(library.TEMPLATES.get(data.template or "", ()))
    for i, key in enumerate(data.library or []):
        if key not in library.LIBRARY:
            raise InvalidInput(
                f"No library question {key!r}.",
                errors=[FieldError(["body", "library", i], "unknown library question")],
            )
        if key not in keys:
            keys.append(key)
    own = {q.key for q in data.questions}
    qs = [q for q in library.questions(keys) if q.key not in own] + list(data.questions)
    _check_all(qs)
    survey = Survey(
        tenant_id=tenant_id,
        id=new_id(),
        title=data.title,
        introduction=data.introduction,
        status="draft",
        version=1,
        questions=_dump(qs),
        template=data.template,
    )
    session.add(survey)
    await session.flush()
    await session.refresh(survey)
    return survey


def _check_all(qs: Sequence[Question]) -> None:
    try:
        check_questions(list(qs))
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[FieldError(["body", "questions"], str(exc))]) from None


async def update(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: SurveyUpdate
) -> Survey:
    survey = await get(session, tenant_id, raw)
    if data.questions is not None:
        if survey.status == "closed":
            raise Conflict("A closed survey's questions cannot change.")
        if survey.status == "active":
            await _check_compatible(session, tenant_id, survey, data.questions)
        if _dump(data.questions) != survey.questions:
            survey.questions = _dump(data.questions)
            survey.version += 1
    if data.title is not None:
        survey.title = data.title
    if "introduction" in data.model_fields_set:
        survey.introduction = data.introduction
    if data.status is not None and data.status != survey.status:
        if (survey.status, data.status) not in _TRANSITIONS:
            raise Conflict(
                f"A survey goes draft -> active -> closed; it cannot go from {survey.status} "
                f"to {data.status}."
            )
        if data.status == "active" and not survey.questions:
            raise Conflict("A survey needs questions before it can go active.")
        survey.status = data.status
    survey.updated_at = datetime.now(UTC)
    await session.flush()
    return survey


async def _check_compatible(
    session: AsyncSession, tenant_id: uuid.UUID, survey: Survey, new: Sequence[Question]
) -> None:
    """An active survey may change only in ways that keep every answer given valid."""
    answered = await repository.answered_keys(session, tenant_id, survey.id)
    if not answered:
        return
    old = {q.key: q for q in questions_of(survey)}
    by_key = {q.key: (i, q) for i, q in enumerate(new)}
    errors: list[FieldError] = []
    for key in sorted(answered):
        if key not in by_key:
            errors.append(FieldError(["body", "questions"], f"{key!r} has answers: it cannot go"))
            continue
        i, q = by_key[key]
        loc: list[str | int] = ["body", "questions", i]
        before = old.get(key)
        if before is not None and before.type != q.type:
            errors.append(FieldError(loc, f"{key!r} has answers: its type cannot change"))
            continue
        texts, low, high = await repository.answered_values(session, tenant_id, survey.id, key)
        try:
            if q.type in ("single_choice", "multiple_choice"):
                for value in texts:
                    checks.check(q, value if q.type == "single_choice" else [value])
            for value in (low, high):
                if value is not None and q.type in ("rating", "nps", "number"):
                    checks.check(q, int(value) if value == int(value) else float(value))
        except checks.BadAnswer as exc:
            errors.append(FieldError(loc, f"{key!r} has answers this change makes invalid ({exc})"))
    if errors:
        raise Conflict(
            "The survey is active and answered: this change would invalidate answers already "
            "given. Add questions or new choices instead, or close it and start a new survey.",
            errors=errors,
        )


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    survey = await get(session, tenant_id, raw)
    if survey.status == "active":
        raise Conflict("Close the survey before deleting it.")
    await session.delete(survey)
    await session.flush()


# --- audiences and distributions -----------------------------------------------------------


async def audience(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    segment_id: str | None = None,
    group: str | None = None,
    loc: list[str | int] | None = None,
) -> Select[Any]:
    """The ids of the customers in a saved segment or a built-in group, as a subquery."""
    if group is not None:
        return segment_repository.matching(tenant_id, segments.compiled(GROUPS[group], tenant_id))
    try:
        segment = await segments.get(session, tenant_id, str(segment_id))
    except NotFound:
        raise InvalidInput(
            "No segment with this id.",
            errors=[FieldError(loc or ["segment_id"], "no such segment")],
        ) from None
    return select(SegmentMember.customer_id).where(
        SegmentMember.tenant_id == tenant_id,
        SegmentMember.segment_id == segment.id,
        SegmentMember.left_at.is_(None),
    )


def _link(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PUBLIC_PATH + token


def distribution_read(d: SurveyDistribution) -> DistributionRead:
    return DistributionRead(
        id=d.id,
        survey_id=d.survey_id,
        kind=d.kind,
        audience=d.audience,
        recipients=d.recipients,
        created_at=d.created_at,
    )


async def distribute(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: DistributionCreate, base_url: str
) -> DistributionCreated:
    survey = await get(session, tenant_id, raw)
    if survey.status != "active":
        raise Conflict(f"Only an active survey can be sent; this one is {survey.status}.")
    distribution = SurveyDistribution(
        tenant_id=tenant_id, id=new_id(), survey_id=survey.id, kind=data.kind, audience={}
    )
    if data.kind == "link":
        token, digest = tokens.new_token(tenant_id, tokens.LINK)
        distribution.link_token_hash = digest
        session.add(distribution)
        await session.flush()
        await session.refresh(distribution)
        read = distribution_read(distribution)
        return DistributionCreated(**read.model_dump(), token=token, link=_link(base_url, token))
    ids = await audience(
        session,
        tenant_id,
        segment_id=data.segment_id,
        group=data.group,
        loc=["body", "segment_id"],
    )
    members = await repository.audience_members(session, tenant_id, ids, MAX_RECIPIENTS)
    if len(members) > MAX_RECIPIENTS:
        raise InvalidInput(
            f"The audience has more than {MAX_RECIPIENTS} customers: send to a smaller segment.",
            errors=[FieldError(["body"], "audience too large")],
        )
    distribution.audience = (
        {"group": data.group} if data.group else {"segment_id": str(data.segment_id)}
    )
    distribution.recipients = len(members)
    session.add(distribution)
    await session.flush()
    invitations: list[Invitation] = []
    rows: list[dict[str, Any]] = []
    for m in members:
        token, digest = tokens.new_token(tenant_id)
        invitation_id = new_id()
        rows.append(
            {
                "tenant_id": tenant_id,
                "id": invitation_id,
                "distribution_id": distribution.id,
                "survey_id": survey.id,
                "customer_id": m.id,
                "token_hash": digest,
            }
        )
        invitations.append(
            Invitation(
                invitation_id=invitation_id,
                customer_id=m.id,
                external_id=m.external_id,
                email=m.email,
                token=token,
                link=_link(base_url, token),
            )
        )
    await repository.insert_invitations(session, rows)
    await session.refresh(distribution)
    read = distribution_read(distribution)
    return DistributionCreated(**read.model_dump(), invitations=invitations)


# --- the respondent's side -----------------------------------------------------------------


@dataclass
class _Target:
    survey: Survey
    invitation: SurveyInvitation | None
    link: SurveyDistribution | None
    response: SurveyResponse | None


_BAD_TOKEN = "No survey for this token."


async def _resolve(session: AsyncSession, raw_token: str) -> _Target:
    """Everything a token reaches, under its own tenant's row-level security only. Unknown,
    malformed and foreign tokens are the same 404."""
    parsed = tokens.parse(raw_token)
    if parsed is None:
        raise NotFound(_BAD_TOKEN)
    await set_tenant(session, parsed.tenant_id)
    tenant_id = parsed.tenant_id
    invitation = link = response = None
    if parsed.kind == "invitation":
        invitation = await repository.find_invitation(session, tenant_id, parsed.digest)
        if invitation is None:
            raise NotFound(_BAD_TOKEN)
        survey_id = invitation.survey_id
        if invitation.response_id is not None:
            response = await repository.get_response(session, tenant_id, invitation.response_id)
    else:
        link = await repository.find_link(session, tenant_id, parsed.digest)
        if link is None:
            raise NotFound(_BAD_TOKEN)
        survey_id = link.survey_id
    survey = await repository.get(session, tenant_id, survey_id)
    if survey is None or survey.status == "draft":
        raise NotFound(_BAD_TOKEN)
    return _Target(survey, invitation, link, response)


async def _stored_answers(
    session: AsyncSession, survey: Survey, response: SurveyResponse | None
) -> dict[str, Any]:
    if response is None:
        return {}
    by_key = {q.key: q for q in questions_of(survey)}
    out: dict[str, Any] = {}
    for a in await repository.answers_of(session, survey.tenant_id, [response.id]):
        q = by_key.get(a.question_key)
        if q is not None:
            out[a.question_key] = checks.typed(
                q, checks.Stored(a.value_text, a.value_number, a.choices)
            )
    return out


async def public_get(session: AsyncSession, raw_token: str) -> PublicSurvey:
    t = await _resolve(session, raw_token)
    if t.survey.status == "closed":
        raise Conflict("This survey is closed.")
    status = "new" if t.response is None else t.response.status
    return PublicSurvey(
        title=t.survey.title,
        introduction=t.survey.introduction,
        questions=questions_of(t.survey),
        answers=await _stored_answers(session, t.survey, t.response),
        status=status,
    )


def _distribution_id(t: _Target) -> uuid.UUID:
    if t.invitation is not None:
        return t.invitation.distribution_id
    assert t.link is not None
    return t.link.id


def _checked(
    qs: Sequence[Question], answers: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, checks.Stored]]:
    """The answers given (None clears one) and their stored forms; 422 listing every answer
    that does not fit, each pointing at its question."""
    by_key = {q.key: q for q in qs}
    errors: list[FieldError] = []
    given: dict[str, Any] = {}
    stored: dict[str, checks.Stored] = {}
    for key, value in answers.items():
        loc: list[str | int] = ["body", "answers", key]
        q = by_key.get(key)
        if q is None:
            errors.append(FieldError(loc, "no such question in this survey"))
            continue
        given[key] = value
        if value is None:
            continue
        try:
            stored[key] = checks.check(q, value)
        except checks.BadAnswer as exc:
            errors.append(FieldError(loc, str(exc)))
    if errors:
        raise InvalidInput("Some answers do not fit their questions.", errors=errors)
    return given, stored


async def _open_response(session: AsyncSession, t: _Target) -> tuple[SurveyResponse, str | None]:
    """The response a first submission starts; an anonymous one gets a resume token."""
    survey, tenant_id = t.survey, t.survey.tenant_id
    response = SurveyResponse(
        tenant_id=tenant_id,
        id=new_id(),
        survey_id=survey.id,
        survey_version=survey.version,
        distribution_id=_distribution_id(t),
        customer_id=t.invitation.customer_id if t.invitation is not None else None,
        status="partial",
    )
    session.add(response)
    await session.flush()
    if t.invitation is not None:
        t.invitation.response_id = response.id
        return response, None
    token, digest = tokens.new_token(tenant_id)
    t.invitation = SurveyInvitation(
        tenant_id=tenant_id,
        id=new_id(),
        distribution_id=response.distribution_id,
        survey_id=survey.id,
        customer_id=None,
        token_hash=digest,
        response_id=response.id,
    )
    session.add(t.invitation)
    return response, token


async def public_submit(
    session: AsyncSession, raw_token: str, data: PublicSubmit
) -> PublicSubmitted:
    """Validate every answer against its question, then store them (all or nothing). A
    completed response cannot be changed; an anonymous link gets a resume token."""
    t = await _resolve(session, raw_token)
    survey = t.survey
    if survey.status == "closed":
        raise Conflict("This survey is closed.")
    if t.invitation is not None and t.invitation.completed_at is not None:
        raise Conflict("This invitation has been answered already; it can be used once.")
    qs = questions_of(survey)
    given, stored = _checked(qs, data.answers)
    previous = await _stored_answers(session, survey, t.response)
    merged = {**previous, **given}
    visible = checks.visible_answers(qs, merged)
    hidden = [k for k in stored if k not in visible]
    if hidden:
        raise InvalidInput(
            "Some answers are to questions skipped by the answers given.",
            errors=[FieldError(["body", "answers", k], "this question is skipped") for k in hidden],
        )
    missing = checks.missing_required(qs, merged) if data.complete else []
    if missing:
        raise InvalidInput(
            "Required questions are unanswered.",
            errors=[FieldError(["body", "answers", k], "required") for k in missing],
        )
    response, resume_token = t.response, None
    if response is None:
        response, resume_token = await _open_response(session, t)
    drop = [k for k in {**previous, **given} if k not in visible]
    rows = {
        k: {"value_text": v.value_text, "value_number": v.value_number, "choices": v.choices}
        for k, v in stored.items()
    }
    await repository.save_answers(session, survey.tenant_id, response, rows, drop)
    now = datetime.now(UTC)
    await repository.touch_response(
        session, survey.tenant_id, response.id, now if data.complete else None
    )
    if data.complete:
        assert t.invitation is not None
        t.invitation.completed_at = now
        await session.flush()
        if response.customer_id is not None:
            await enrich(session, survey, [response.id])
        # Ids only: a receiver reads the answers through the API with its key.
        await emit(
            session,
            survey.tenant_id,
            EventType.survey_response_received,
            {"survey_id": str(survey.id), "response_id": str(response.id)},
        )
    await session.flush()
    return PublicSubmitted(
        status="completed" if data.complete else "partial",
        answers=visible,
        resume_token=resume_token,
    )


def mapped_questions(qs: Sequence[Question]) -> list[tuple[str, str, str]]:
    out = []
    for q in qs:
        if q.maps_to is None or q.maps_to not in MAPPABLE:
            continue
        kind = "list" if q.type == "multiple_choice" else "int" if q.type == "number" else "text"
        out.append((q.key, q.maps_to, kind))
    return out


async def enrich(session: AsyncSession, survey: Survey, response_ids: Sequence[uuid.UUID]) -> None:
    """Completed responses' mapped answers set their respondents' profile facts."""
    mapped = mapped_questions(questions_of(survey))
    if not mapped:
        return
    tenant = await session.get(Tenant, survey.tenant_id)
    override = bool(tenant and tenant.survey_answers_override_store)
    await customers.apply_survey_facts(
        session, survey.tenant_id, response_ids, mapped, survey.id, override
    )


async def response_reads(
    session: AsyncSession, survey: Survey, rows: Sequence[Any]
) -> list[ResponseRead]:
    by_key = {q.key: q for q in questions_of(survey)}
    answers = await repository.answers_of(session, survey.tenant_id, [r.id for r, _ in rows])
    per: dict[uuid.UUID, dict[str, Any]] = {}
    for a in answers:
        q = by_key.get(a.question_key)
        if q is not None:
            per.setdefault(a.response_id, {})[a.question_key] = checks.typed(
                q, checks.Stored(a.value_text, a.value_number, a.choices)
            )
    return [
        ResponseRead(
            id=r.id,
            survey_id=r.survey_id,
            survey_version=r.survey_version,
            customer_id=r.customer_id,
            external_id=ext,
            status=r.status,
            started_at=r.started_at,
            updated_at=r.updated_at,
            completed_at=r.completed_at,
            answers={k: per[r.id][k] for k in by_key if k in per.get(r.id, {})},
        )
        for r, ext in rows
    ]
