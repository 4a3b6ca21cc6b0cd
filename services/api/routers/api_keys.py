"""`/v1/api-keys`: create, list and revoke the store's API keys (`admin` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.api.auditing import Audited
from services.api.deps import AdminKey, SessionDep
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from services.api.pagination import Page, PageDep
from services.api.problems import responses
from shared.tenants import repository
from shared.tenants import service as tenants
from shared.tenants.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(route_class=Route, prefix="/v1/api-keys", tags=["api keys"])


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent, Audited],
)
async def create(data: ApiKeyCreate, session: SessionDep, principal: AdminKey) -> ApiKeyCreated:
    """A new key with the given scopes (`admin` grants `write`, `write` grants `read`). The
    full key is in this answer only; Portrait keeps its SHA-256 digest."""
    return await tenants.create_key(session, principal.tenant_id, data)


@router.get("", response_model=Page[ApiKeyRead])
async def list_(session: SessionDep, principal: AdminKey, page: PageDep) -> Page[ApiKeyRead]:
    """Keys newest first, with `last_used_at` (to the minute) and `revoked_at`."""
    rows = await repository.list_keys(
        session, principal.tenant_id, limit=page.limit + 1, after=page.after_id()
    )
    return page.page([ApiKeyRead.model_validate(r) for r in rows], lambda k: {"id": str(k.id)})


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404, 409),
    dependencies=[Audited],
)
async def delete(key_id: str, session: SessionDep, principal: AdminKey) -> Response:
    """Revoke a key: its next request is refused. Revoking twice is harmless."""
    await tenants.revoke_key(session, principal.tenant_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
