"""Profiles: upsert by external id, typed facts with sources, computed behaviour, filters,
edits, erasure, export and timeline."""

from __future__ import annotations

import pytest

from tests.factories.store import customer, event, order
from tests.helpers import auth
from tests.test_auth import assert_problem


async def test_upsert_creates_then_updates_by_external_id(client, tenant):
    h = auth(tenant.api_key)
    first = await client.post("/v1/customers", json=customer("c-1"), headers=h)
    assert first.status_code == 201, first.text
    assert first.json()["outcome"] == "created"
    profile = first.json()["customer"]
    assert profile["external_id"] == "c-1"
    assert profile["demographic"]["gender"] == "female"
    assert profile["geographic"]["country"] == "VN"
    assert profile["psychographic"]["interests"] == ["yoga", "cooking"]
    assert profile["sources"]["gender"]["source"] == "store"
    assert profile["created_at"].startswith("2026-01-05T02:00:00")  # stored in UTC

    second = await client.post(
        "/v1/customers", json={"external_id": "c-1", "city": "Hanoi"}, headers=h
    )
    assert second.status_code == 200
    assert second.json()["outcome"] == "updated"
    updated = second.json()["customer"]
    assert updated["id"] == profile["id"]
    assert updated["geographic"]["city"] == "Hanoi"
    assert updated["demographic"]["gender"] == "female"  # a field not sent is kept


async def test_behaviour_is_computed_from_orders_and_events(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    await client.post("/v1/customers", json=customer("c-2", referred_by="c-1"), headers=h)
    for total in ("10.00", "30.00"):
        r = await client.post("/v1/orders", json=order("c-1", total=total), headers=h)
        assert r.status_code == 201, r.text
    await client.post("/v1/orders", json=order("c-1", total="99.00", status="refunded"), headers=h)
    await client.post(
        "/v1/events",
        json={
            "events": [event(customer_external_id="c-1", device="desktop") for _ in range(3)]
            + [event(customer_external_id="c-1", device="mobile")]
        },
        headers=h,
    )
    b = (await client.get("/v1/customers/ext:c-1", headers=h)).json()["behaviour"]
    assert b["order_count"] == 2
    assert b["total_spent"] == "40.00"
    assert b["average_order_value"] == "20.00"
    assert b["refund_count"] == 1
    assert b["refunded_amount"] == "99.00"
    assert b["top_categories"] == ["accessories", "skincare"]
    assert b["preferred_device"] == "desktop"
    assert b["preferred_order_channel"] == "web"
    assert b["referral_count"] == 1
    assert b["days_since_last_order"] == 10


async def test_preferred_device_and_channel_follow_the_events_batch_by_batch(client, tenant):
    """Each batch moves the most frequent device and channel; a batch that only repeats the
    stored ones leaves them."""
    h = auth(tenant.api_key)

    async def send(*pairs: tuple[str | None, str | None]) -> dict:
        batch = [event(customer_external_id="c-1", device=d, channel=c) for d, c in pairs]
        r = await client.post("/v1/events", json={"events": batch}, headers=h)
        assert r.status_code == 202, r.text
        b = (await client.get("/v1/customers/ext:c-1", headers=h)).json()["behaviour"]
        return {"device": b["preferred_device"], "channel": b["preferred_event_channel"]}

    first = {"device": "mobile", "channel": "web"}
    assert await send(("mobile", "web"), ("mobile", "web")) == first
    assert await send(("mobile", None), (None, "web")) == first  # 3 mobile, 3 web
    assert await send(("tablet", "app"), ("tablet", "app")) == first  # 2 tablet, 2 app
    changed = await send(("tablet", "app"), ("tablet", "app"))
    assert changed == {"device": "tablet", "channel": "app"}


async def test_list_filters_on_typed_and_computed_facts(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("vn", country="VN"), headers=h)
    await client.post("/v1/customers", json=customer("us", country="US", gender="male"), headers=h)
    await client.post("/v1/orders", json=order("us", total="500.00"), headers=h)

    def ids(response):
        assert response.status_code == 200, response.text
        return [c["external_id"] for c in response.json()["items"]]

    assert ids(await client.get("/v1/customers?country=VN", headers=h)) == ["vn"]
    assert ids(await client.get("/v1/customers?gender=male", headers=h)) == ["us"]
    assert ids(await client.get("/v1/customers?min_total_spent=100", headers=h)) == ["us"]
    assert ids(await client.get("/v1/customers?interest=yoga&min_orders=1", headers=h)) == ["us"]
    assert ids(await client.get("/v1/customers?sort=-total_spent", headers=h)) == ["us", "vn"]
    assert_problem(await client.get("/v1/customers?countyr=VN", headers=h), 422)
    assert_problem(await client.get("/v1/customers?country=XX", headers=h), 422)


async def test_list_pages_by_cursor_in_sort_order(client, tenant):
    h = auth(tenant.api_key)
    for n in range(7):
        await client.post("/v1/customers", json=customer(f"p{n}"), headers=h)
        await client.post("/v1/orders", json=order(f"p{n}", total=f"{(n % 3) * 10}.00"), headers=h)
    seen, cursor = [], None
    while True:
        url = "/v1/customers?sort=-total_spent&limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(url, headers=h)).json()
        seen += [(c["behaviour"]["total_spent"], c["external_id"]) for c in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7
    assert len({e for _, e in seen}) == 7
    assert [float(s) for s, _ in seen] == sorted((float(s) for s, _ in seen), reverse=True)


async def test_patch_merges_and_marks_manual(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    r = await client.patch(
        "/v1/customers/ext:c-1",
        json={"occupation": "teacher", "traits": {"vip": True}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["demographic"]["occupation"] == "teacher"
    assert body["demographic"]["gender"] == "female"
    assert body["sources"]["occupation"]["source"] == "manual"
    assert body["sources"]["gender"]["source"] == "store"
    assert body["traits"] == {"vip": True}
    assert_problem(
        await client.patch("/v1/customers/ext:c-1", json={"shoe_size": 42}, headers=h), 422
    )


async def test_anonymous_events_join_the_profile_when_identified(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    anon = [event("product_view", anonymous_id="anon-9") for _ in range(2)]
    r = await client.post("/v1/events", json={"events": anon}, headers=h)
    assert r.json()["accepted"] == 2
    timeline = (await client.get("/v1/customers/ext:c-1/timeline", headers=h)).json()
    assert timeline["items"] == []
    ident = await client.post(
        "/v1/identify",
        json={"anonymous_id": "anon-9", "customer_external_id": "c-1"},
        headers=h,
    )
    assert ident.status_code == 204
    later = event("add_to_cart", anonymous_id="anon-9")  # after identify: joins at once
    await client.post("/v1/events", json=later, headers=h)
    items = (await client.get("/v1/customers/ext:c-1/timeline", headers=h)).json()["items"]
    assert sorted(i["summary"] for i in items) == ["add_to_cart", "product_view", "product_view"]


async def test_erasure_removes_everything_and_a_late_update_cannot_revive(
    client, tenant, owner_engine
):
    from sqlalchemy import text

    h = auth(tenant.api_key)
    await client.post(
        "/v1/customers", json=customer("c-1", email="erase.me@example.com"), headers=h
    )
    await client.post("/v1/orders", json=order("c-1"), headers=h)
    await client.post(
        "/v1/events", json=event(customer_external_id="c-1", anonymous_id="anon-1"), headers=h
    )
    await client.post("/v1/events", json=event(anonymous_id="anon-1"), headers=h)
    exported = (await client.get("/v1/customers/ext:c-1/export", headers=h)).json()
    assert exported["customer"]["contact"]["email"] == "erase.me@example.com"
    assert len(exported["orders"]) == 1
    assert len(exported["events"]) == 2
    assert exported["identities"] == ["anon-1"]

    assert (await client.delete("/v1/customers/ext:c-1", headers=h)).status_code == 204
    assert_problem(await client.get("/v1/customers/ext:c-1", headers=h), 404)
    async with owner_engine.connect() as conn:
        for table in ("customers", "orders", "order_items", "events", "identities"):
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
    late = await client.post(
        "/v1/customers", json=customer("c-1", email="erase.me@example.com"), headers=h
    )
    assert late.status_code == 200
    assert late.json() == {"outcome": "ignored_erased", "customer": None}
    late_order = await client.post("/v1/orders", json=order("c-1"), headers=h)
    assert late_order.json()["outcome"] == "ignored_erased"
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM customers")) == 0


async def test_stale_update_is_ignored_and_says_so(client, tenant):
    h = auth(tenant.api_key)
    new = customer("c-1", city="Hanoi", updated_at="2026-03-02T00:00:00Z")
    old = customer("c-1", city="Da Nang", updated_at="2026-03-01T00:00:00Z")
    assert (await client.post("/v1/customers", json=new, headers=h)).status_code == 201
    r = await client.post("/v1/customers", json=old, headers=h)
    assert r.json()["outcome"] == "ignored_stale"
    profile = (await client.get("/v1/customers/ext:c-1", headers=h)).json()
    assert profile["geographic"]["city"] == "Hanoi"


async def test_timeline_pages_lose_no_entry_that_shares_a_timestamp(client, tenant):
    h = auth(tenant.api_key)
    at = "2026-03-01T10:00:00+00:00"
    await client.post("/v1/orders", json=order("c-1", placed_at=at), headers=h)
    batch = [event("purchase", customer_external_id="c-1", occurred_at=at) for _ in range(4)]
    batch.append(event("page_view", customer_external_id="c-1"))
    await client.post("/v1/events", json={"events": batch}, headers=h)
    seen, cursor = [], None
    for _ in range(10):
        url = "/v1/customers/ext:c-1/timeline?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(url, headers=h)).json()
        seen += [(i["kind"], i["id"]) for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 6
    assert len(set(seen)) == 6


async def test_a_large_batch_of_customers_is_upserted_in_one_call(app, tenant):
    from shared.customers import service as customers
    from shared.customers.schemas import CustomerIn
    from shared.db.engine import unit_of_work

    many = [CustomerIn.model_validate(customer(f"bulk-{n}")) for n in range(1500)]
    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        results = await customers.upsert_many(session, tenant.tenant_id, many)
    assert [r.outcome.value for r in results].count("created") == 1500


async def test_more_concurrent_batches_than_connections_are_all_stored(client, tenant):
    """Each batch holds a connection of the request pool and runs a short transaction beside
    it: with more batches at once than the pool has connections, none may wait for another
    (a shared pool would leave every request holding one and waiting for a second)."""
    import asyncio

    h = auth(tenant.api_key)
    batches = [
        [
            event(customer_external_id=f"c-{n % 5}", anonymous_id=f"v-{n % 7}"),
            event(anonymous_id=f"v-{(n + 1) % 7}"),
        ]
        for n in range(24)  # the pool holds 10 connections, 15 at most
    ]
    answers = await asyncio.gather(
        *(client.post("/v1/events", json={"events": b}, headers=h) for b in batches)
    )
    assert [r.status_code for r in answers] == [202] * 24
    assert sum(r.json()["accepted"] for r in answers) == 48


@pytest.mark.parametrize("apart", [False, True], ids=["one-transaction", "identities-apart"])
@pytest.mark.parametrize("first", ["browsing", "linking"])
async def test_a_visitor_linked_while_their_anonymous_events_commit_is_stitched(
    app, tenant, owner_engine, first, apart
):
    """One batch stores a visitor's anonymous events, another links the visitor to a
    customer, and the first has not committed when the second runs (either way round): the
    second must wait for the first (else neither sees the other's rows), and every event
    ends up on the customer."""
    import asyncio

    from sqlalchemy import text

    from shared.db.engine import set_tenant, unit_of_work
    from shared.ingest import service as ingest
    from shared.ingest.schemas import EventIn
    from tests.helpers import poll

    side = app.state.side_sessionmaker if apart else None
    browsing = [EventIn.model_validate(event("page_view", anonymous_id="v-1")) for _ in range(3)]
    linking = [
        EventIn.model_validate(event("login", customer_external_id="c-1", anonymous_id="v-1"))
    ]

    batches = {"browsing": browsing, "linking": linking}
    held, second = batches.pop(first), next(iter(batches.values()))

    async def link() -> None:
        async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
            await ingest.ingest_events(session, tenant.tenant_id, second, identities_apart=side)

    async def waiting_on_a_lock() -> bool:  # or done without waiting
        async with owner_engine.connect() as conn:
            waiting = await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
        return bool(waiting) or linker.done()

    async with app.state.sessionmaker() as session:
        async with session.begin():
            await set_tenant(session, tenant.tenant_id)
            await ingest.ingest_events(session, tenant.tenant_id, held, identities_apart=side)
            linker = asyncio.create_task(link())
            await poll(waiting_on_a_lock, timeout=10)
        # The first commits here; the second may now go on.
    await asyncio.wait_for(linker, timeout=10)
    async with owner_engine.connect() as conn:
        unlinked = await conn.scalar(text("SELECT count(*) FROM events WHERE customer_id IS NULL"))
    assert unlinked == 0


async def test_filters_cover_every_kind_of_fact(client, tenant):
    h = auth(tenant.api_key)
    await client.post(
        "/v1/customers",
        json=customer("a", timezone="Asia/Ho_Chi_Minh", children=3, occupation="teacher"),
        headers=h,
    )
    await client.post(
        "/v1/customers",
        json=customer("b", timezone="Europe/Berlin", children=0, birth_date="1950-01-01"),
        headers=h,
    )
    await client.post("/v1/orders", json=order("a", placed_at="2026-02-01T00:00:00Z"), headers=h)

    async def ids(query):
        r = await client.get(f"/v1/customers?{query}", headers=h)
        assert r.status_code == 200, r.text
        return {c["external_id"] for c in r.json()["items"]}

    assert await ids("timezone=Europe/Berlin") == {"b"}
    assert await ids("min_children=1&max_children=5") == {"a"}
    assert await ids("occupation=teacher") == {"a"}
    assert await ids("min_age=70") == {"b"}
    assert await ids("first_order_after=2026-01-15T00:00:00Z") == {"a"}
    assert await ids("max_days_since_last_order=10000&min_tenure_days=1") == {"a"}
    assert await ids("value=health&accepts_marketing=true") == {"a", "b"}
