"""Bulk imports: CSV and NDJSON through a real worker, per-row errors with line numbers,
valid rows kept when others fail."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from tests.factories.store import event, order
from tests.helpers import auth, poll, run_burst
from tests.test_auth import assert_problem


async def _import(client, tenant, worker_factory, kind, body: bytes, content_type: str):
    h = {**auth(tenant.api_key), "content-type": content_type}
    r = await client.post(f"/v1/imports?kind={kind}", content=body, headers=h)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}"
    await run_burst(worker_factory)
    job = (await client.get(r.headers["location"], headers=auth(tenant.api_key))).json()
    assert job["status"] == "succeeded", job
    return job["result"]


async def test_csv_customers_keep_valid_rows_and_report_bad_ones(client, tenant, worker_factory):
    csv_text = (
        "external_id,email,country,interests,children,traits\n"
        "c-1,a@example.com,VN,yoga;cooking,2,\n"
        "c-2,b@example.com,XX,,1,\n"  # unknown country
        'c-3,"quoted, with comma",US,"[""run""]",,"{""tier"": ""gold""}"\n'
        "c-4,d@example.com,VN,,-3,\n"  # negative children
        "c-5,too,many,cells,here,x,y\n"
        'c-6,"multi\nline",DE,,,\n'
    )
    body = csv_text.encode() + b"c-7,\xff\xfe@example.com,VN,,,\n" + b"c-8,ok@example.com,FR,,,\n"
    result = await _import(client, tenant, worker_factory, "customers", body, "text/csv")
    assert result["imported"] == 4  # c-1, c-3, c-6, c-8
    assert result["rejected"] == 4
    by_line = {e["line"]: e["errors"] for e in result["errors"]}
    assert sorted(by_line) == [3, 5, 6, 9]
    assert by_line[3][0]["loc"] == ["country"]
    assert by_line[5][0]["loc"] == ["children"]
    assert "cells" in by_line[6][0]["msg"]
    assert by_line[9][0]["msg"] == "not valid UTF-8"
    h = auth(tenant.api_key)
    c3 = (await client.get("/v1/customers/ext:c-3", headers=h)).json()
    assert c3["psychographic"]["interests"] == ["run"]
    assert c3["traits"] == {"tier": "gold"}
    assert (await client.get("/v1/customers/ext:c-6", headers=h)).json()["contact"][
        "email"
    ] == "multi\nline"


async def test_ndjson_events_with_duplicates_and_bad_lines(client, tenant, worker_factory):
    lines = [json.dumps(event(customer_external_id="c-1", id=f"e-{n}")) for n in range(5)]
    lines.insert(2, "{not json")
    lines.append(json.dumps(event(customer_external_id="c-1", id="e-0")))  # duplicate id
    lines.append(json.dumps({"id": "e-x", "name": "x"}))  # no occurred_at, nobody
    nan = json.dumps(event(customer_external_id="c-1", id="e-nan", properties={"v": "@"}))
    lines.append(nan.replace('"@"', "NaN"))  # jsonb has no NaN
    body = "\n".join(lines).encode()
    result = await _import(client, tenant, worker_factory, "events", body, "application/x-ndjson")
    assert result["rows"] == 9
    assert result["imported"] == 5
    assert result["rejected"] == 3
    assert result["outcomes"]["duplicate"] == 1
    assert [e["line"] for e in result["errors"]] == [3, 8, 9]
    assert result["errors"][2]["errors"][0]["loc"] == ["properties"]
    # The profile's event facts are refreshed once the import is done.
    c1 = (await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key))).json()
    assert c1["behaviour"]["preferred_device"] == "mobile"


async def test_csv_orders_group_line_items(client, tenant, worker_factory, owner_engine):
    csv_text = (
        "external_id,customer_external_id,status,currency,total,placed_at,"
        "item_product_id,item_category,item_quantity,item_unit_price\n"
        "o-1,c-1,paid,USD,30.00,2026-03-01T10:00:00Z,p-1,skincare,1,10.00\n"
        "o-1,c-1,paid,USD,30.00,2026-03-01T10:00:00Z,p-2,makeup,2,10.00\n"
        "o-2,c-1,paid,EUR,5.5,2026-03-02T10:00:00Z,p-3,skincare,1,5.5\n"
        "o-3,c-1,paid,ZZZ,5,2026-03-02T10:00:00Z,p-3,skincare,1,5\n"
    )
    result = await _import(client, tenant, worker_factory, "orders", csv_text.encode(), "text/csv")
    assert (result["imported"], result["rejected"]) == (2, 1)
    assert result["errors"][0]["errors"][0]["loc"] == ["currency"]
    async with owner_engine.connect() as conn:
        items = await conn.scalar(text("SELECT count(*) FROM order_items"))
    assert items == 3
    b = (await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key))).json()
    assert b["behaviour"]["order_count"] == 2


async def test_importing_the_same_file_twice_changes_nothing(
    client, tenant, worker_factory, owner_engine
):
    body = "\n".join(json.dumps(order("c-1", external_id=f"o-{n}")) for n in range(3)).encode()
    first = await _import(client, tenant, worker_factory, "orders", body, "application/x-ndjson")
    second = await _import(client, tenant, worker_factory, "orders", body, "application/x-ndjson")
    assert first["outcomes"] == {"created": 3}
    assert second["outcomes"] == {"updated": 3}
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM orders")) == 3
        assert await conn.scalar(text("SELECT count(*) FROM order_items")) == 6
        assert await conn.scalar(text("SELECT count(*) FROM import_chunks")) == 0


async def test_import_needs_a_known_format_and_a_body(client, tenant):
    h = auth(tenant.api_key)
    r = await client.post(
        "/v1/imports?kind=customers", content=b"x", headers={**h, "content-type": "application/pdf"}
    )
    assert_problem(r, 415)
    empty = await client.post("/v1/imports?kind=customers&format=csv", content=b"", headers=h)
    assert_problem(empty, 422)
    bad_kind = await client.post("/v1/imports?kind=people&format=csv", content=b"a", headers=h)
    assert_problem(bad_kind, 422)


async def test_an_import_of_many_new_visitors_holds_few_locks(client, tenant, worker_factory):
    """Each new visitor is locked for the import's transaction; the locks are bucketed, so
    twelve thousand visitors cannot exhaust PostgreSQL's lock table."""
    lines = [json.dumps(event(anonymous_id=f"v-{n}", id=f"ev-{n}")) for n in range(12_000)]
    body = "\n".join(lines).encode()
    result = await _import(client, tenant, worker_factory, "events", body, "application/x-ndjson")
    assert result["imported"] == 12_000


async def test_rows_the_database_refuses_are_reported_and_the_rest_kept(
    client, tenant, worker_factory, owner_engine
):
    """Batches are written while the next ones are parsed; a batch the database refuses is
    retried row by row, and only its refused row is lost. A trigger stands in for what
    validation cannot foresee."""
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_some() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.external_id IN ('ev-2500', 'ev-4999') THEN RAISE EXCEPTION 'no'; "
                "END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_some BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_some()"
            )
        )
    try:
        lines = [
            json.dumps(event(customer_external_id=f"c-{n % 300}", id=f"ev-{n}"))
            for n in range(5000)
        ]
        body = "\n".join(lines).encode()
        result = await _import(
            client, tenant, worker_factory, "events", body, "application/x-ndjson"
        )
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_some ON events"))
            await conn.execute(text("DROP FUNCTION refuse_some()"))
    assert (result["imported"], result["rejected"]) == (4998, 2)
    assert [e["line"] for e in result["errors"]] == [2501, 5000]
    assert result["errors"][0]["errors"][0]["msg"] == "the database refused this row"
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 4998
    c7 = (await client.get("/v1/customers/ext:c-7", headers=auth(tenant.api_key))).json()
    assert c7["behaviour"]["preferred_device"] == "mobile"


async def test_a_visitor_identified_late_in_an_import_brings_their_earlier_events(
    client, tenant, worker_factory, owner_engine
):
    """The visitor's anonymous events come batches before the event that names them: all of
    them end up on the customer, and the customer's facts count them."""
    early = [event(anonymous_id="v-late", id=f"early-{n}", device="tablet") for n in range(3)]
    filler = [event(anonymous_id=f"v-{n}", id=f"fill-{n}") for n in range(9000)]
    named = event(customer_external_id="c-late", anonymous_id="v-late", id="named")
    lines = [json.dumps(e) for e in [*early, *filler, named]]
    body = "\n".join(lines).encode()
    result = await _import(client, tenant, worker_factory, "events", body, "application/x-ndjson")
    assert result["imported"] == 9004
    async with owner_engine.connect() as conn:
        owners = await conn.execute(
            text(
                "SELECT c.external_id, count(*) FROM events e "
                "LEFT JOIN customers c ON c.id = e.customer_id "
                "WHERE e.anonymous_id = 'v-late' GROUP BY 1"
            )
        )
        assert dict(owners.all()) == {"c-late": 4}
    profile = (await client.get("/v1/customers/ext:c-late", headers=auth(tenant.api_key))).json()
    assert profile["behaviour"]["preferred_device"] == "tablet"


async def test_a_connection_lost_mid_import_is_retried_and_imports_each_row_once(
    client, tenant, worker_factory, owner_engine, monkeypatch
):
    """A batch written while the next is parsed fails as a lone batch would: a lost
    connection sends the job back to the queue, and the next attempt imports everything."""
    from sqlalchemy.exc import OperationalError

    from shared.ingest import repository
    from shared.jobs import runner

    insert_events = repository.insert_events
    calls = 0

    async def lost_once(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:  # the second batch, written while the third is parsed
            lost = ConnectionResetError("connection lost")
            raise OperationalError("INSERT", {}, lost, connection_invalidated=True)
        return await insert_events(*args, **kwargs)

    monkeypatch.setattr(repository, "insert_events", lost_once)
    monkeypatch.setattr(runner, "backoff_s", lambda attempt: 0.05)
    lines = [json.dumps(event(customer_external_id=f"c-{n % 50}", id=f"e{n}")) for n in range(9000)]
    h = {**auth(tenant.api_key), "content-type": "application/x-ndjson"}
    r = await client.post("/v1/imports?kind=events", content="\n".join(lines).encode(), headers=h)
    assert r.status_code == 202, r.text
    worker = worker_factory()
    task = asyncio.create_task(worker.main())
    try:

        async def finished() -> bool:
            job = (await client.get(r.headers["location"], headers=auth(tenant.api_key))).json()
            return job["status"] in ("succeeded", "failed")

        await poll(finished, timeout=60)
    finally:
        task.cancel()
        await worker.close()
    job = (await client.get(r.headers["location"], headers=auth(tenant.api_key))).json()
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job
    assert job["result"]["imported"] == 9000
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 9000
