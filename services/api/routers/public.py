"""`/v1/public/responses/{token}`: the respondent's side. No API key: the token is the
credential, and it names its tenant, so everything it reaches is read under that tenant's
row-level security. Rate limited per token and per client address."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request

from services.api.deps import RateLimiterDep, SessionDep
from services.api.problems import responses
from shared.ratelimit import Limit
from shared.surveys import service as surveys
from shared.surveys.schemas import PublicSubmit, PublicSubmitted, PublicSurvey

router = APIRouter(prefix="/v1/public/responses", tags=["public"])


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


async def _limit(request: Request, limiter: RateLimiterDep, token: str) -> None:
    api = request.app.state.settings.api
    await limiter.check(
        f"survey-token:{_digest(token)}",
        Limit(api.survey_token_limit_per_minute, 60),
        "survey token",
    )
    host = request.client.host if request.client else "unknown"
    await limiter.check(
        f"survey-ip:{_digest(host)}", Limit(api.survey_ip_limit_per_minute, 60), "address"
    )


@router.get(
    "/{token}", response_model=PublicSurvey, responses=responses(400, 404, 409, 422, 429, 500, 503)
)
async def get(
    token: str, request: Request, session: SessionDep, limiter: RateLimiterDep
) -> PublicSurvey:
    """The survey, its questions (with skip logic) and the answers saved so far."""
    await _limit(request, limiter, token)
    return await surveys.public_get(session, token)


@router.post(
    "/{token}",
    response_model=PublicSubmitted,
    responses=responses(400, 404, 409, 422, 429, 500, 503),
)
async def submit(
    token: str,
    data: PublicSubmit,
    request: Request,
    session: SessionDep,
    limiter: RateLimiterDep,
) -> PublicSubmitted:
    """Save answers (partially, to resume later, or `complete: true` to finish). Every answer
    is checked against its question; errors point at it (`loc: ["body", "answers", key]`). A
    single-use invitation cannot answer again once completed (409)."""
    await _limit(request, limiter, token)
    return await surveys.public_submit(session, token, data)
