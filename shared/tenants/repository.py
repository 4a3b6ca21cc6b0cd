"""All SQL for tenants and API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiKey, Tenant


async def insert_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, slug: str, name: str, webhook_secret: str
) -> Tenant:
    tenant = Tenant(id=tenant_id, slug=slug, name=name, webhook_secret=webhook_secret)
    session.add(tenant)
    await session.flush()
    return tenant


async def insert_key(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    scopes: list[str],
) -> ApiKey:
    key = ApiKey(tenant_id=tenant_id, name=name, prefix=prefix, key_hash=key_hash, scopes=scopes)
    session.add(key)
    await session.flush()
    return key


async def find_active_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_hash: bytes
) -> ApiKey | None:
    stmt = select(ApiKey).where(
        ApiKey.tenant_id == tenant_id, ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def all_tenant_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant's id, through the owner-run `portrait_tenant_ids()` (ids only), for the
    nightly and scheduled jobs that then work under each tenant's row-level security."""
    return list((await session.execute(text("SELECT portrait_tenant_ids()"))).scalars())
