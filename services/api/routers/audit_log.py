"""`/v1/audit-log`: who (which API key) changed or erased what, and when (`admin` scope)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import AdminKey, SessionDep
from services.api.hooks import Route
from services.api.pagination import Page, PageDep
from shared.audit import service as audit
from shared.audit.schemas import AuditEntryRead

router = APIRouter(route_class=Route, prefix="/v1/audit-log", tags=["audit log"])


@router.get("", response_model=Page[AuditEntryRead])
async def list_(
    session: SessionDep,
    principal: AdminKey,
    page: PageDep,
    object_type: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z-]+$")] = None,
    key_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[AuditEntryRead]:
    """Entries newest first: the key, the action (`customers.delete`, `segments.create`, ...),
    the object's id, the request id. Ids only, never the values written."""
    rows = await audit.list_(
        session,
        principal.tenant_id,
        limit=page.limit + 1,
        after=page.after_id(),
        object_type=object_type,
        key_id=key_id,
    )
    return page.page([AuditEntryRead.model_validate(r) for r in rows], lambda e: {"id": str(e.id)})
