"""Bearer keys, scopes and tenant scoping, through the HTTP API."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_sessionmaker, unit_of_work
from shared.tenants import keys
from shared.tenants import repository as tenant_repo
from tests.helpers import auth

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    return body


async def test_request_without_key_is_401_problem(client):
    assert_problem(await client.get("/v1/jobs"), 401)


async def test_malformed_and_unknown_keys_are_the_same_401(client, tenant):
    forged = f"ptk_{tenant.tenant_id.hex}_notthesecret"
    other_tenant = f"ptk_{uuid.uuid4().hex}_whatever"
    bodies = []
    for key in ("nonsense", forged, other_tenant, tenant.api_key + "x"):
        bodies.append(assert_problem(await client.get("/v1/jobs", headers=auth(key)), 401))
    assert len({b["detail"] for b in bodies}) == 1


async def test_valid_key_lists_jobs(client, tenant):
    response = await client.get("/v1/jobs", headers=auth(tenant.api_key))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_read_only_key_cannot_cancel(client, tenant, owner_engine: AsyncEngine):
    key, prefix = keys.new_key(tenant.tenant_id)
    async with unit_of_work(make_sessionmaker(owner_engine), tenant.tenant_id) as session:
        await tenant_repo.insert_key(
            session, tenant.tenant_id, "reader", prefix, keys.digest(key), ["read"]
        )
    assert (await client.get("/v1/jobs", headers=auth(key))).status_code == 200
    body = assert_problem(
        await client.post(f"/v1/jobs/{uuid.uuid4()}/cancel", headers=auth(key)), 403
    )
    assert "write" in body["detail"]


async def test_revoked_key_stops_working(client, tenant, owner_engine: AsyncEngine):
    from sqlalchemy import text

    async with owner_engine.begin() as conn:
        await conn.execute(text("UPDATE api_keys SET revoked_at = now()"))
    assert_problem(await client.get("/v1/jobs", headers=auth(tenant.api_key)), 401)


async def test_key_is_stored_hashed(tenant, owner_engine: AsyncEngine):
    from sqlalchemy import text

    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT prefix, key_hash FROM api_keys"))).all()
    assert len(rows) == 1
    prefix, digest = rows[0]
    assert tenant.api_key not in prefix
    assert prefix.startswith("ptk_")
    assert bytes(digest) == keys.digest(tenant.api_key)
