"""All SQL for tenants and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, text, update
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
    rate_limit_per_minute: int | None = None,
) -> ApiKey:
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=scopes,
        rate_limit_per_minute=rate_limit_per_minute,
    )
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


async def touch_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Set `last_used_at`, unless another request holds the row right now (it is setting the
    same thing): concurrent requests of one key never queue behind each other."""
    locked = (
        select(ApiKey.id)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await session.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.id == locked)
        .values(last_used_at=func.now())
    )


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def all_tenant_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant's id, through the owner-run `portrait_tenant_ids()` (ids only), for the
    nightly and scheduled jobs that then work under each tenant's row-level security."""
    return list((await session.execute(text("SELECT portrait_tenant_ids()"))).scalars())


async def list_keys(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
) -> Sequence[ApiKey]:
    """Newest first, revoked ones included (they say when)."""
    stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if after is not None:
        stmt = stmt.where(ApiKey.id < after)
    return (await session.execute(stmt.order_by(ApiKey.id.desc()).limit(limit))).scalars().all()


async def get_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID, *, for_update: bool = False
) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_active_admin_keys(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(
        ApiKey.tenant_id == tenant_id,
        ApiKey.revoked_at.is_(None),
        text("'admin' = ANY(scopes)"),
    )
    return int((await session.execute(stmt)).scalar_one())


async def get_tenant_for_update(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    stmt = select(Tenant).where(Tenant.id == tenant_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()
