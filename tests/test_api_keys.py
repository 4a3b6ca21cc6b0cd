"""API keys through the API: create, list, revoke (admin only), last use, per-key rate limits."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.helpers import auth
from tests.test_auth import assert_problem


async def _make_key(client, tenant, **body) -> dict:
    payload = {"name": "reporting", "scopes": ["read"], **body}
    r = await client.post("/v1/api-keys", json=payload, headers=auth(tenant.api_key))
    assert r.status_code == 201, r.text
    return r.json()


async def test_created_key_works_with_its_scopes_and_is_shown_once(client, tenant, owner_engine):
    created = await _make_key(client, tenant, scopes=["read"])
    assert created["key"].startswith("ptk_")
    assert created["scopes"] == ["read"]
    assert (await client.get("/v1/jobs", headers=auth(created["key"]))).status_code == 200
    assert_problem(
        await client.post("/v1/segments/preview", json={}, headers=auth(created["key"])), 422
    )
    assert_problem(
        await client.post(f"/v1/jobs/{uuid.uuid4()}/cancel", headers=auth(created["key"])), 403
    )
    listed = (await client.get("/v1/api-keys", headers=auth(tenant.api_key))).json()["items"]
    assert {k["id"] for k in listed} >= {created["id"]}
    assert all("key" not in k for k in listed)
    async with owner_engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT count(*) FROM api_keys WHERE prefix = :p"), {"p": created["prefix"]}
        )
    assert stored == 1


async def test_only_admin_keys_manage_keys(client, tenant):
    writer = await _make_key(client, tenant, scopes=["write"])
    h = auth(writer["key"])
    assert_problem(await client.get("/v1/api-keys", headers=h), 403)
    assert_problem(
        await client.post("/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=h), 403
    )
    assert_problem(await client.delete(f"/v1/api-keys/{writer['id']}", headers=h), 403)
    assert_problem(await client.get("/v1/audit-log", headers=h), 403)


async def test_revoked_key_stops_working_on_its_next_request(client, tenant):
    other = await _make_key(client, tenant, scopes=["write"])
    assert (await client.get("/v1/jobs", headers=auth(other["key"]))).status_code == 200
    r = await client.delete(f"/v1/api-keys/{other['id']}", headers=auth(tenant.api_key))
    assert r.status_code == 204
    assert_problem(await client.get("/v1/jobs", headers=auth(other["key"])), 401)
    listed = (await client.get("/v1/api-keys", headers=auth(tenant.api_key))).json()["items"]
    assert next(k for k in listed if k["id"] == other["id"])["revoked_at"] is not None


async def test_the_last_admin_key_cannot_be_revoked(client, tenant):
    me = (await client.get("/v1/api-keys", headers=auth(tenant.api_key))).json()["items"][0]
    assert_problem(
        await client.delete(f"/v1/api-keys/{me['id']}", headers=auth(tenant.api_key)), 409
    )
    second = await _make_key(client, tenant, scopes=["admin"])
    r = await client.delete(f"/v1/api-keys/{me['id']}", headers=auth(second["key"]))
    assert r.status_code == 204
    assert_problem(await client.get("/v1/jobs", headers=auth(tenant.api_key)), 401)


async def test_another_tenants_key_id_is_404(client, tenant, make_tenant):
    other = await make_tenant()
    theirs = (await client.get("/v1/api-keys", headers=auth(other.api_key))).json()["items"][0]
    assert_problem(
        await client.delete(f"/v1/api-keys/{theirs['id']}", headers=auth(tenant.api_key)), 404
    )
    assert_problem(await client.delete("/v1/api-keys/not-an-id", headers=auth(tenant.api_key)), 404)
    assert (await client.get("/v1/jobs", headers=auth(other.api_key))).status_code == 200


async def test_bad_key_bodies_are_422(client, tenant):
    h = auth(tenant.api_key)
    for body in (
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "", "scopes": ["read"]},
        {"name": "a\u0000b", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "rate_limit_per_minute": 0},
    ):
        assert_problem(await client.post("/v1/api-keys", json=body, headers=h), 422)


async def test_last_used_at_is_kept_without_a_write_per_request(client, tenant, owner_engine):
    created = await _make_key(client, tenant)
    assert created["last_used_at"] is None
    for _ in range(3):
        assert (await client.get("/v1/jobs", headers=auth(created["key"]))).status_code == 200

    async def last_used():
        async with owner_engine.connect() as conn:
            return await conn.scalar(
                text("SELECT last_used_at FROM api_keys WHERE id = :i"), {"i": created["id"]}
            )

    first = await last_used()
    assert first is not None
    await client.get("/v1/jobs", headers=auth(created["key"]))
    assert await last_used() == first  # within the minute: not written again
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = :i"),
            {"i": created["id"]},
        )
    stale = await last_used()
    await client.get("/v1/jobs", headers=auth(created["key"]))
    assert await last_used() > stale


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(client, tenant):
    limited = await _make_key(client, tenant, rate_limit_per_minute=3)
    h = auth(limited["key"])
    answers = [await client.get("/v1/jobs", headers=h) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    body = assert_problem(answers[3], 429)
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    assert "API key" in body["detail"]
    # Writes count too, and other keys of the same store keep their own budget.
    assert_problem(await client.post("/v1/customers", json={}, headers=h), 429)
    assert (await client.get("/v1/jobs", headers=auth(tenant.api_key))).status_code == 200
