"""`Idempotency-Key` on creates: replay, mismatch, in-flight, failures, tenants, expiry."""

from __future__ import annotations

from sqlalchemy import text

from shared.db.engine import app_url, make_engine, make_sessionmaker, unit_of_work
from shared.idempotency import purge
from tests.factories.store import customer
from tests.helpers import auth
from tests.test_auth import assert_problem

RULE = {"all": [{"fact": "country", "op": "eq", "value": "VN"}]}


def _h(tenant, key: str) -> dict[str, str]:
    return {**auth(tenant.api_key), "Idempotency-Key": key}


async def _count(owner_engine, table: str) -> int:
    async with owner_engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")))


async def test_same_key_and_body_replays_the_first_answer_and_creates_once(
    client, tenant, owner_engine
):
    body = {"name": "Vietnam", "condition": RULE}
    first = await client.post("/v1/segments", json=body, headers=_h(tenant, "k-1"))
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await client.post("/v1/segments", json=body, headers=_h(tenant, "k-1"))
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"] == first.headers["content-type"]
    assert await _count(owner_engine, "segments") == 1
    # The refresh job the create queued was queued once too.
    assert await _count(owner_engine, "jobs") == 1


async def test_replay_keeps_the_location_header_of_a_job(client, tenant, owner_engine):
    h = _h(tenant, "value-run-1")
    first = await client.post("/v1/analyses/customer-value", json={}, headers=h)
    assert first.status_code == 202, first.text
    again = await client.post("/v1/analyses/customer-value", json={}, headers=h)
    assert again.status_code == 202
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["job_id"] == first.json()["job_id"]
    assert await _count(owner_engine, "jobs") == 1


async def test_same_key_with_another_body_is_a_422(client, tenant):
    h = _h(tenant, "k-2")
    assert (await client.post("/v1/customers", json=customer("c-1"), headers=h)).status_code == 201
    other = await client.post("/v1/customers", json=customer("c-2"), headers=h)
    body = assert_problem(other, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    # Another endpoint with the same key is "another request" too.
    assert_problem(await client.post("/v1/orders", json={}, headers=h), 422)


async def test_a_retry_while_the_first_is_running_is_409_with_retry_after(
    client, tenant, owner_engine
):
    # A request in flight holds the key's transaction lock; take it as that request would.
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:k))"),
            {"space": 0x1DE7, "k": f"{tenant.tenant_id}:busy"},
        )
        r = await client.post("/v1/customers", json=customer("c-1"), headers=_h(tenant, "busy"))
        body = assert_problem(r, 409)
        assert int(r.headers["Retry-After"]) >= 1
        assert "still being processed" in body["detail"]
    # Once the first finished, the key works.
    r = await client.post("/v1/customers", json=customer("c-1"), headers=_h(tenant, "busy"))
    assert r.status_code == 201


async def test_a_failed_first_attempt_does_not_poison_the_key(client, tenant, owner_engine):
    h = _h(tenant, "k-3")
    bad = await client.post("/v1/segments/00000000-0000-0000-0000-000000000000/refresh", headers=h)
    assert_problem(bad, 404)
    invalid = await client.post("/v1/segments", json={"name": "x"}, headers=h)
    assert_problem(invalid, 422)
    assert await _count(owner_engine, "idempotency_keys") == 0
    # The corrected request runs with the same key.
    good = await client.post("/v1/segments", json={"name": "x", "condition": RULE}, headers=h)
    assert good.status_code == 201, good.text
    assert "Idempotent-Replayed" not in good.headers


async def test_keys_are_per_tenant(client, tenant, make_tenant, owner_engine):
    other = await make_tenant()
    a = await client.post("/v1/customers", json=customer("c-1"), headers=_h(tenant, "shared"))
    b = await client.post("/v1/customers", json=customer("c-9"), headers=_h(other, "shared"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["customer"]["id"] != b.json()["customer"]["id"]


async def test_a_key_older_than_the_retention_is_new_again_and_purged(
    client, tenant, owner_engine, settings
):
    h = _h(tenant, "old")
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    await client.post("/v1/customers", json=customer("c-2"), headers=_h(tenant, "fresh"))
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
                "WHERE key = 'old'"
            )
        )
    # Past 24 h the key no longer replays: the other body is accepted.
    r = await client.post("/v1/customers", json=customer("c-3"), headers=h)
    assert r.status_code == 201
    assert "Idempotent-Replayed" not in r.headers
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        )
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() WHERE key = 'fresh'")
        )
    # The worker's purge (an app-role function across tenants) drops what is past 24 h only.
    engine = make_engine(app_url(settings), settings, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            assert await purge(session, 1) == 1  # asks for 1 h, gets the 24 h floor
    finally:
        await engine.dispose()
    async with owner_engine.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM idempotency_keys"))).scalars().all()
    assert keys == ["fresh"]


async def test_bad_keys_are_422_and_requests_without_a_key_are_not_recorded(
    client, tenant, owner_engine
):
    for key in ("x" * 256, "has space", ""):
        r = await client.post("/v1/customers", json=customer("c-1"), headers=_h(tenant, key))
        assert_problem(r, 422)
    r = await client.post("/v1/customers", json=customer("c-1"), headers=auth(tenant.api_key))
    assert r.status_code == 201
    assert await _count(owner_engine, "idempotency_keys") == 0


async def test_every_create_documents_the_header_and_the_409(app):
    schema = app.openapi()
    creates = {
        ("/v1/customers", "post"),
        ("/v1/orders", "post"),
        ("/v1/events", "post"),
        ("/v1/imports", "post"),
        ("/v1/analyses/customer-value", "post"),
        ("/v1/segments", "post"),
        ("/v1/segments/{segment_id}/refresh", "post"),
        ("/v1/segmentations", "post"),
        ("/v1/api-keys", "post"),
        ("/v1/webhook-secrets/rotate", "post"),
    }
    documented = set()
    for path, item in schema["paths"].items():
        for method, op in item.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
            if "Idempotency-Key" in names:
                documented.add((path, method))
                header = next(p for p in op["parameters"] if p["name"] == "Idempotency-Key")
                assert "24 hours" in header["description"]
                assert "409" in op["responses"]
            # Every POST answering 201 or 202 creates something: it must take the header.
            if method == "post" and ({"201", "202"} & set(op["responses"])):
                assert (path, method) in documented, path
    assert creates <= documented
