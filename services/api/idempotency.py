"""`Idempotency-Key` on creates: a retry with the same key and body replays the first answer.

Declared on a route as `dependencies=[Idempotent]`. The key is per tenant. Under a
transaction-scoped advisory lock on (tenant, key) the dependency looks the key up:
- not seen: the route runs; its answer (status, body, `Location`, `Content-Type`) is stored in
  the same transaction as the route's writes, so the key exists exactly when the create does;
- seen with the same method, path, query and body: the stored answer is replayed with
  `Idempotent-Replayed: true`, and the route does not run;
- seen with anything else: 422;
- the lock is held by a request still running with this key: 409 with `Retry-After`.

Only successful answers (< 400) are stored. A validation error, a domain error or a 5xx rolls
the whole transaction back, key included, so a failed first attempt never poisons the key: the
retry runs afresh (Stripe stores 5xx answers too; here nothing was committed, so re-running is
the safe choice). Keys are kept `api.idempotency_keep_hours` (24 h, never less), then purged by
the worker; an older key is treated as new.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import SessionDep, get_principal
from services.api.hooks import ShortCircuit, before_commit, declare_responses
from services.api.problems import responses
from shared.db.base import utcnow
from shared.errors import Conflict, FieldError, InvalidInput
from shared.idempotency import KEEP_HOURS_MIN
from shared.models import IdempotencyKey
from shared.settings import get_settings
from shared.tenants.schemas import Principal

HEADER_DOC = (
    "A unique value (such as a UUID, at most 255 printable ASCII characters) that makes "
    "retrying this create safe: a retry with the same key and the same body gets the first "
    "answer again, with `Idempotent-Replayed: true`; the same key with another body is a 422; "
    "a retry while the first request is still running is a 409 with `Retry-After`. Keys are "
    "per store and kept at least 24 hours. Failed attempts (4xx, 5xx) are not stored, so "
    "they can be retried with the same key."
)
# The first half of the two-part advisory lock id, so these locks never meet others.
_LOCK_SPACE = 0x1DE7
# Answer headers worth replaying; the rest (request id, rate limits) belong to each request.
_KEPT_HEADERS = ("content-type", "location")


def _keep() -> timedelta:
    return timedelta(hours=max(get_settings().api.idempotency_keep_hours, KEEP_HOURS_MIN))


async def _fingerprint(request: Request) -> bytes:
    h = hashlib.sha256()
    h.update(request.method.encode() + b"\0" + request.url.path.encode() + b"\0")
    h.update(request.url.query.encode() + b"\0")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > get_settings().api.max_body_bytes:
        # A bulk upload is streamed, never held in memory: it is known by its size and type.
        h.update(b"stream\0" + declared.encode() + request.headers.get("content-type", "").encode())
    else:
        h.update(await request.body())
    return h.digest()


async def _lock(session: AsyncSession, key: str) -> bool:
    tenant = session.info.get("tenant_id", "")
    acquired = await session.scalar(
        select(func.pg_try_advisory_xact_lock(_LOCK_SPACE, func.hashtext(f"{tenant}:{key}")))
    )
    return bool(acquired)


async def idempotency(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(get_principal)],
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description=HEADER_DOC,
        ),
    ] = None,
) -> None:
    if key is None:
        return
    fingerprint = await _fingerprint(request)
    if not await _lock(session, key):
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )
    tenant_id = principal.tenant_id
    row = await session.get(IdempotencyKey, (tenant_id, key))
    if row is not None and row.created_at < utcnow() - _keep():
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key
            )
        )
        row = None
    if row is not None:
        if row.body_hash != fingerprint:
            raise InvalidInput(
                "This Idempotency-Key was used with another request; use a new key.",
                errors=[FieldError(["header", "Idempotency-Key"], "Key reused with another body.")],
            )
        headers: dict[str, Any] = {**row.headers, "Idempotent-Replayed": "true"}
        raise ShortCircuit(Response(content=row.response, status_code=row.status, headers=headers))

    async def store(response: Response) -> None:
        body = getattr(response, "body", None)
        if not isinstance(body, bytes | memoryview):
            return  # a streamed answer cannot be replayed; none of the creates stream
        kept = {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS}
        session.add(
            IdempotencyKey(
                tenant_id=tenant_id,
                key=key,
                method=request.method,
                path=request.url.path[:500],
                body_hash=fingerprint,
                status=response.status_code,
                response=bytes(body),
                headers=kept,
            )
        )
        await session.flush()

    before_commit(request, store)


Idempotent = Depends(idempotency)
declare_responses(idempotency, responses(409))
