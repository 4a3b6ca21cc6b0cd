"""Audit entries: written in the transaction of the change they describe, so an entry exists
exactly when its change does. They hold ids and the names of actions, never written values.

The API records one entry per successful change automatically; a service whose route
addresses an object by something other than its id (a customer's `ext:` reference) calls
`note_object` so the entry names the object by its Portrait id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import AuditEntry


@dataclass
class Draft:
    object_id: str | None = None


_draft: ContextVar[Draft | None] = ContextVar("audit_draft", default=None)


def start() -> Draft:
    """Begin collecting details for the entry of the current request."""
    draft = Draft()
    _draft.set(draft)
    return draft


def note_object(object_id: uuid.UUID | str) -> None:
    """Name the object the current change is about (ignored outside an audited request)."""
    draft = _draft.get()
    if draft is not None and draft.object_id is None:
        draft.object_id = str(object_id)


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    key_id: uuid.UUID | None,
    action: str,
    object_type: str,
    object_id: str | None,
    method: str,
    route: str,
    status: int,
    request_id: str | None,
) -> None:
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            key_id=key_id,
            action=action[:64],
            object_type=object_type[:64],
            object_id=object_id[:64] if object_id else None,
            method=method,
            route=route[:200],
            status=status,
            request_id=request_id,
        )
    )
    await session.flush()


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None = None,
    object_type: str | None = None,
    key_id: uuid.UUID | None = None,
) -> Sequence[AuditEntry]:
    """Newest first."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if after is not None:
        stmt = stmt.where(AuditEntry.id < after)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    if key_id:
        stmt = stmt.where(AuditEntry.key_id == key_id)
    stmt = stmt.order_by(AuditEntry.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()
