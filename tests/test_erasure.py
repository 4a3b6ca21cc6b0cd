"""Erasure: after `DELETE /v1/customers/{id}` the customer's email and name are nowhere, not
in any text or JSON column of any table (searched through information_schema, so a new table
is searched too) and not in any key or value of the queue's Redis database."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import text

from shared.jobs.queue import make_redis
from tests.factories.store import customer, event, order
from tests.helpers import auth, run_burst
from tests.test_webhooks import send_generic

SEARCHED_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")


async def _database_hits(owner_engine, needles: list[str]) -> list[str]:
    hits = []
    async with owner_engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                    "AND data_type = ANY(:types) "
                    "AND table_name IN (SELECT table_name FROM information_schema.tables "
                    "                   WHERE table_type = 'BASE TABLE')"
                ),
                {"types": list(SEARCHED_TYPES)},
            )
        ).all()
        assert len(columns) > 20  # the search really covers the schema
        for schema, table, column in columns:
            for needle in needles:
                found = await conn.scalar(
                    text(
                        f'SELECT count(*) FROM "{schema}"."{table}" '
                        f'WHERE "{column}"::text ILIKE :pattern'
                    ),
                    {"pattern": f"%{needle}%"},
                )
                if found:
                    hits.append(f"{table}.{column} holds {needle!r} ({found} rows)")
    return hits


async def _redis_hits(redis, needles: list[str]) -> list[str]:
    hits = []
    wanted = [n.lower().encode() for n in needles]
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            values = [await redis.get(key) or b""]
        elif kind == "hash":
            values = [k + b"=" + v for k, v in (await redis.hgetall(key)).items()]
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            values = await redis.zrange(key, 0, -1)
        elif kind == "stream":
            values = [json.dumps(str(e)).encode() for e in await redis.xrange(key)]
        else:
            values = []
        for blob in [key, *values]:
            blob = blob if isinstance(blob, bytes) else str(blob).encode()
            for needle in wanted:
                if needle in blob.lower():
                    hits.append(f"redis {key!r} ({kind}) holds {needle!r}")
    return hits


async def test_an_erased_customer_is_nowhere(
    client, tenant, worker_factory, owner_engine, settings
):
    token = secrets.token_hex(6)
    email = f"erase.me.{token}@example.com"
    first, last = f"Zephyrine{token}", f"Quaglia{token}"
    ext = f"c-erase-{token}"
    person = customer(ext, email=email, first_name=first, last_name=last, traits={"n": first})
    h = auth(tenant.api_key)

    # Everything that can hold them: the API, a webhook, the webhook inbox, an import, events.
    r = await client.post("/v1/customers", json=person, headers=h)
    assert r.status_code == 201, r.text
    customer_id = r.json()["customer"]["id"]
    updated = {**person, "city": "Hanoi", "updated_at": "2026-03-02T10:00:00Z"}
    r = await send_generic(client, tenant, {"type": "customer.updated", "data": updated})
    assert r.status_code == 200, r.text
    r = await send_generic(
        client, tenant, {"type": "event.tracked", "data": event(customer_external_id=ext)}
    )
    assert r.status_code == 200, r.text
    await client.post("/v1/orders", json=order(ext), headers=h)
    r = await client.post("/v1/events", json=event("signed_up", ext), headers=h)
    assert r.status_code < 300, r.text
    ndjson = json.dumps({**person, "updated_at": "2026-03-03T10:00:00Z"}).encode()
    r = await client.post(
        "/v1/imports?kind=customers",
        content=ndjson,
        headers={**h, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)

    needles = [email, first, last]
    # The search finds them while they exist (it can fail).
    assert await _database_hits(owner_engine, needles)

    r = await client.delete(f"/v1/customers/{customer_id}", headers=h)
    assert r.status_code == 204, r.text
    await run_burst(worker_factory)

    assert await _database_hits(owner_engine, needles) == []
    redis = make_redis(settings)
    try:
        assert await _redis_hits(redis, needles) == []
    finally:
        await redis.aclose()
    assert (await client.get(f"/v1/customers/{customer_id}", headers=h)).status_code == 404
