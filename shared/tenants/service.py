"""Tenant rules: creating a store with its first key, and authenticating a key."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.db.base import new_id, utcnow
from shared.db.engine import set_tenant
from shared.errors import Conflict, NotFound, Unauthorized
from shared.tenants import keys, repository
from shared.tenants.schemas import (
    IMPLIED,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    Principal,
    Scope,
    TenantCreate,
    TenantCreated,
    WebhookSecretRotated,
)


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


# `last_used_at` is written at most this often per key: a request only reads the key row.
LAST_USED_EVERY = timedelta(minutes=1)


async def authenticate(session: AsyncSession, raw_key: str) -> Principal:
    """Resolve a bearer key and scope the session to its tenant. Every failure looks the same,
    so keys and tenant ids cannot be probed. Nothing is cached: a revoked key fails on its
    very next request."""
    parsed = keys.parse(raw_key)
    if parsed is None:
        raise Unauthorized("The API key is missing or not valid.")
    await set_tenant(session, parsed.tenant_id)
    key = await repository.find_active_key(session, parsed.tenant_id, parsed.digest)
    if key is None:
        raise Unauthorized("The API key is missing or not valid.")
    if key.last_used_at is None or key.last_used_at < utcnow() - LAST_USED_EVERY:
        await repository.touch_key(session, parsed.tenant_id, key.id)
    scopes: set[Scope] = set()
    for s in key.scopes:
        scopes |= IMPLIED.get(Scope(s), set())
    return Principal(
        tenant_id=parsed.tenant_id,
        key_id=key.id,
        scopes=frozenset(scopes),
        rate_limit_per_minute=key.rate_limit_per_minute,
    )


def parse_key_id(raw: str) -> uuid.UUID:
    return errors.parse_id(raw, "API key")


async def create_key(
    session: AsyncSession, tenant_id: uuid.UUID, data: ApiKeyCreate
) -> ApiKeyCreated:
    api_key, prefix = keys.new_key(tenant_id)
    row = await repository.insert_key(
        session,
        tenant_id,
        data.name,
        prefix,
        keys.digest(api_key),
        sorted({s.value for s in data.scopes}),
        data.rate_limit_per_minute,
    )
    await session.refresh(row)
    return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=api_key)


async def revoke_key(session: AsyncSession, tenant_id: uuid.UUID, raw_id: str) -> None:
    """Revoke at once (authentication caches nothing). The last active admin key cannot be
    revoked: the store would lose its way to make keys."""
    key = await repository.get_key(session, tenant_id, parse_key_id(raw_id), for_update=True)
    if key is None:
        raise NotFound("No API key with this id.")
    if key.revoked_at is not None:
        return
    if "admin" in key.scopes and await repository.count_active_admin_keys(session, tenant_id) <= 1:
        raise Conflict("This is the last active admin key; create another admin key first.")
    key.revoked_at = utcnow()
    await session.flush()


# Webhook secrets change rarely and every delivery needs them: each process keeps them for a
# few seconds. After a rotation the process that rotated forgets them at once; others within
# SECRET_TTL_S, which the overlap (hours) covers.
SECRET_TTL_S = 30.0
_secrets: dict[uuid.UUID, tuple[str | None, str | None, datetime | None, float]] = {}


async def webhook_secrets(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    """The secrets a delivery may be signed with now: the current one, and the previous one
    during its overlap after a rotation. Empty for an unknown tenant."""
    cached = _secrets.get(tenant_id)
    now = time.monotonic()
    if cached is None or cached[3] <= now:
        tenant = await repository.get_tenant(session, tenant_id)
        cached = (
            (
                tenant.webhook_secret,
                tenant.previous_webhook_secret,
                tenant.previous_secret_expires_at,
                now + SECRET_TTL_S,
            )
            if tenant is not None
            else (None, None, None, now + SECRET_TTL_S)
        )
        if len(_secrets) > 10_000:
            _secrets.clear()
        _secrets[tenant_id] = cached
    current, previous, until, _ = cached
    found = [current] if current else []
    if previous and until is not None and until > utcnow():
        found.append(previous)
    return found


async def rotate_webhook_secret(
    session: AsyncSession, tenant_id: uuid.UUID, overlap: timedelta
) -> WebhookSecretRotated:
    """A new secret; the one it replaces stays accepted for `overlap`. Rotating again during
    an overlap ends the older overlap: at most two secrets are ever accepted."""
    tenant = await repository.get_tenant_for_update(session, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.")
    until = utcnow() + overlap
    tenant.previous_webhook_secret = tenant.webhook_secret
    tenant.previous_secret_expires_at = until
    tenant.webhook_secret = keys.new_webhook_secret()
    await session.flush()
    _secrets.pop(tenant_id, None)
    return WebhookSecretRotated(webhook_secret=tenant.webhook_secret, previous_valid_until=until)
