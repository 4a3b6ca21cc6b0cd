"""Dependencies every route uses, as `Annotated` aliases so no route can forget the tenant.

`SessionDep` is the request's unit of work: one transaction, committed when the handler
returns (before the answer is sent) or rolled back on error; after-commit hooks (job pushes)
run then. Authentication runs inside it and scopes it to the key's tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import run_after_commit
from shared.errors import FieldError, Forbidden, InvalidInput, TooManyRequests, Unauthorized
from shared.jobs.queue import JobQueue
from shared.ratelimit import Limit, RateLimiter
from shared.tenants import service as tenants
from shared.tenants.schemas import Principal, Scope


async def refuse_nul_parameters(request: Request) -> None:
    """PostgreSQL refuses NUL in text, so a NUL in any path or query parameter that reaches a
    statement is a 500. Every route gets this (an app-wide dependency), so one written later
    cannot forget it; bodies are covered by the field types of shared.validation. Async: FastAPI
    runs a plain function's dependency in a thread pool, a thread hop per request."""
    errors = [
        FieldError([where, name], "must not contain NUL characters")
        for where, items in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in items
        if "\x00" in str(value) or "\x00" in name
    ]
    # `?=value`: a parameter without a name is malformed, not an unknown one to ignore.
    errors += [
        FieldError(["query", ""], "a query parameter needs a name")
        for name, _ in request.query_params.multi_items()
        if not name
    ]
    if errors:
        raise InvalidInput("The request does not match the schema.", errors=errors)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        async with session.begin():
            yield session
        await run_after_commit(session)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")


async def get_principal(
    request: Request,
    response: Response,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The calling key, counted against its rate limit (per key, shared by every API process
    through Redis): over it, 429 with `Retry-After`. Every answer carries `RateLimit-Limit`,
    `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window turns)."""
    if credentials is None:
        raise Unauthorized(
            "Send an API key: `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await tenants.authenticate(session, credentials.credentials)
    per_minute = (
        principal.rate_limit_per_minute or request.app.state.settings.api.rate_limit_per_minute
    )
    if per_minute > 0:
        limiter: RateLimiter = request.app.state.ratelimiter
        limit = Limit(requests=per_minute, window_s=60)
        decision = await limiter.hit(f"key:{principal.key_id}", limit)
        headers = {
            "RateLimit-Limit": str(per_minute),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(decision.reset_s),
        }
        if not decision.allowed:
            raise TooManyRequests(
                f"Too many requests for this API key: the limit is {limit}. "
                f"Retry after {decision.retry_after_s} s.",
                headers={**headers, "Retry-After": str(decision.retry_after_s)},
            )
        response.headers.update(headers)
    return principal


def require(scope: Scope) -> object:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"This API key lacks the {scope.value!r} scope.")
        return principal

    return Depends(check)


ReadKey = Annotated[Principal, require(Scope.read)]
WriteKey = Annotated[Principal, require(Scope.write)]
AdminKey = Annotated[Principal, require(Scope.admin)]


async def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(get_queue)]


async def get_ratelimiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.ratelimiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_ratelimiter)]
