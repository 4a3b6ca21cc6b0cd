"""Tenant rules: creating a store with its first key, and authenticating a key."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import new_id
from shared.db.engine import set_tenant
from shared.errors import Conflict, Unauthorized
from shared.tenants import keys, repository
from shared.tenants.schemas import IMPLIED, Principal, Scope, TenantCreate, TenantCreated


async def create(session: AsyncSession, data: TenantCreate) -> TenantCreated:
    """A new tenant with an admin key and a webhook secret, both shown only now."""
    tenant_id = new_id()
    await set_tenant(session, tenant_id)
    secret = keys.new_webhook_secret()
    try:
        async with session.begin_nested():
            await repository.insert_tenant(
                session, tenant_id, data.slug, data.name or data.slug, secret
            )
    except IntegrityError:
        raise Conflict(f"A tenant with the slug {data.slug!r} exists already.") from None
    api_key, prefix = keys.new_key(tenant_id)
    await repository.insert_key(
        session,
        tenant_id,
        "initial admin key",
        prefix,
        keys.digest(api_key),
        [Scope.admin.value],
    )
    return TenantCreated(tenant_id=tenant_id, api_key=api_key, webhook_secret=secret)


async def authenticate(session: AsyncSession, raw_key: str) -> Principal:
    """Resolve a bearer key and scope the session to its tenant. Every failure looks the same,
    so keys and tenant ids cannot be probed."""
    parsed = keys.parse(raw_key)
    if parsed is None:
        raise Unauthorized("The API key is missing or not valid.")
    await set_tenant(session, parsed.tenant_id)
    key = await repository.find_active_key(session, parsed.tenant_id, parsed.digest)
    if key is None:
        raise Unauthorized("The API key is missing or not valid.")
    scopes: set[Scope] = set()
    for s in key.scopes:
        scopes |= IMPLIED.get(Scope(s), set())
    return Principal(tenant_id=parsed.tenant_id, key_id=key.id, scopes=frozenset(scopes))
