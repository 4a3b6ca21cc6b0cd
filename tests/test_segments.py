"""Rule-based, static and built-in segments: the condition grammar and its SQL, previews,
membership with history, the segment's portrait, STP comparison."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from shared.db.engine import unit_of_work
from shared.segments import service as segments
from tests.factories.segments import create_segment, member_ids
from tests.factories.store import customer, event, order
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem


async def _store(client, tenant):
    """Five customers whose facts and behaviour differ on purpose."""
    h = auth(tenant.api_key)
    recent = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    people = {
        "ana": dict(country="VN", gender="female", interests=["yoga"], accepts_marketing=True),
        "bao": dict(country="VN", gender="male", interests=["running"], accepts_marketing=False),
        "cam": dict(country="US", gender="female", interests=["yoga", "cooking"]),
        "dan": dict(country="US", gender="male", interests=[], birth_date="1960-01-01"),
        "eve": dict(country="DE", gender="female", interests=["cooking"]),
    }
    for ext, facts in people.items():
        await client.post("/v1/customers", json=customer(ext, **facts), headers=h)
    await client.post("/v1/orders", json=order("ana", total="120.00", placed_at=recent), headers=h)
    await client.post("/v1/orders", json=order("ana", total="80.00", placed_at=old), headers=h)
    await client.post("/v1/orders", json=order("cam", total="30.00", placed_at=recent), headers=h)
    await client.post(
        "/v1/orders",
        json=order(
            "dan",
            total="500.00",
            placed_at=old,
            items=[{"category": "garden", "quantity": 1, "unit_price": "500"}],
        ),
        headers=h,
    )
    carts = [event("add_to_cart", customer_external_id="ana") for _ in range(3)]
    carts += [
        event(
            "add_to_cart",
            customer_external_id="bao",
            properties={"path": "/checkout/cart", "cart_value": 99},
        )
    ]
    carts += [
        event(
            "add_to_cart",
            customer_external_id="eve",
            occurred_at=(datetime.now(UTC) - timedelta(days=60)).isoformat(),
        )
    ]
    await client.post("/v1/events", json={"events": carts}, headers=h)


async def _preview(client, tenant, condition) -> set[str]:
    r = await client.post(
        "/v1/segments/preview",
        json={"condition": condition, "sample_size": 50},
        headers=auth(tenant.api_key),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == len(body["sample"])
    assert body["total_customers"] == 5
    return {c["external_id"] for c in body["sample"]}


async def test_preview_answers_facts_behaviour_and_boolean_logic(client, tenant):
    await _store(client, tenant)
    assert await _preview(client, tenant, {"fact": "country", "op": "eq", "value": "VN"}) == {
        "ana",
        "bao",
    }
    assert await _preview(
        client, tenant, {"fact": "interests", "op": "contains", "value": "yoga"}
    ) == {"ana", "cam"}
    assert await _preview(client, tenant, {"fact": "total_spent", "op": "gte", "value": 150}) == {
        "ana",
        "dan",
    }
    assert await _preview(client, tenant, {"fact": "age", "op": "gt", "value": 60}) == {"dan"}
    three = {
        "all": [
            {"fact": "gender", "op": "eq", "value": "female"},
            {
                "any": [
                    {"fact": "country", "op": "in", "value": ["VN", "DE"]},
                    {"fact": "order_count", "op": "gte", "value": 1},
                ]
            },
            {"event": "add_to_cart", "min_count": 1, "within_last_days": 30},
        ]
    }
    assert await _preview(client, tenant, three) == {"ana"}
    assert await _preview(client, tenant, {"event": "add_to_cart", "min_count": 3}) == {"ana"}
    assert await _preview(client, tenant, {"event": "add_to_cart", "max_count": 0}) == {
        "cam",
        "dan",
    }
    assert await _preview(
        client,
        tenant,
        {
            "event": "add_to_cart",
            "where": [
                {"property": "path", "op": "starts_with", "value": "/checkout"},
                {"property": "cart_value", "op": "gt", "value": 50},
            ],
        },
    ) == {"bao"}
    assert await _preview(client, tenant, {"orders": {"min_total": 150}}) == {"ana", "dan"}
    assert await _preview(
        client, tenant, {"orders": {"min_total": 100, "within_last_days": 30}}
    ) == {"ana"}
    assert await _preview(client, tenant, {"bought_category": "garden"}) == {"dan"}
    assert await _preview(
        client, tenant, {"not": {"fact": "accepts_marketing", "op": "eq", "value": True}}
    ) == {"bao"}
    assert await _preview(
        client, tenant, {"fact": "traits.tier", "op": "exists", "value": False}
    ) == {"ana", "bao", "cam", "dan", "eve"}


async def test_invalid_conditions_are_422_pointing_at_the_node(client, tenant):
    h = auth(tenant.api_key)

    async def problem(condition):
        r = await client.post("/v1/segments/preview", json={"condition": condition}, headers=h)
        return assert_problem(r, 422)["errors"]

    wrong_op = await problem(
        {
            "all": [
                {"fact": "country", "op": "eq", "value": "VN"},
                {"fact": "country", "op": "gt", "value": 3},
            ]
        }
    )
    assert wrong_op[0]["loc"][:5] == ["body", "condition", "all", "all", 1]
    assert "does not apply" in wrong_op[0]["msg"]
    unknown = await problem({"fact": "shoe_size", "op": "eq", "value": 42})
    assert "unknown fact" in unknown[0]["msg"]
    not_a_node = await problem({"any": [{"colour": "blue"}]})
    assert not_a_node[0]["loc"][:4] == ["body", "condition", "any", "any"]
    bad_count = await problem({"event": "x", "min_count": 5, "max_count": 2})
    assert "max_count" in bad_count[0]["msg"]
    too_deep = {"fact": "country", "op": "eq", "value": "VN"}
    for _ in range(10):
        too_deep = {"not": too_deep}
    assert await problem(too_deep)
    missing = await client.post(
        "/v1/segments/preview", json={"condition": {"in_segment": "nope"}}, headers=h
    )
    assert_problem(missing, 422)


async def test_rule_segment_membership_keeps_history_and_growth(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, tenant)
    seg = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Vietnam", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    assert seg["size"] == 2
    assert await member_ids(client, tenant, seg["id"]) == {"ana", "bao"}
    await client.patch("/v1/customers/ext:bao", json={"country": "US"}, headers=h)
    await client.post("/v1/customers", json=customer("fay", country="VN"), headers=h)
    r = await client.post(f"/v1/segments/{seg['id']}/refresh", headers=h)
    assert r.status_code == 202
    await run_burst(worker_factory)
    job = (await client.get(r.headers["location"], headers=h)).json()
    assert job["result"]["entered"] == 1
    assert job["result"]["left"] == 1
    assert await member_ids(client, tenant, seg["id"]) == {"ana", "fay"}
    profile = (await client.get(f"/v1/segments/{seg['id']}/profile", headers=h)).json()
    assert profile["growth"]["entered"] == 2 + 1  # all joins happened within the period
    assert profile["growth"]["left"] == 1
    assert profile["size_history"][-1]["size"] == 2


async def test_static_segment_and_in_segment(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, tenant)
    cam = (await client.get("/v1/customers/ext:cam", headers=h)).json()
    static = await create_segment(
        client,
        tenant,
        worker_factory,
        {
            "name": "Hand-picked",
            "kind": "static",
            "customer_ids": [cam["id"], "ext:dan", "ext:nobody"],
        },
    )
    assert static["size"] == 2
    assert static["details"] == {"requested": 3, "matched": 2}
    both = await _preview(
        client,
        tenant,
        {"all": [{"in_segment": static["id"]}, {"fact": "gender", "op": "eq", "value": "female"}]},
    )
    assert both == {"cam"}
    r = await client.patch(
        f"/v1/segments/{static['id']}", headers=h, json={"condition": {"in_segment": static["id"]}}
    )
    assert_problem(r, 422)
    bad = await client.post(
        "/v1/segments",
        headers=h,
        json={"name": "x", "kind": "static", "customer_ids": ["not-an-id"]},
    )
    assert_problem(bad, 422)


async def test_segment_profile_shows_lift_against_the_store(client, tenant, worker_factory):
    await _store(client, tenant)
    seg = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Yoga", "condition": {"fact": "interests", "op": "contains", "value": "yoga"}},
    )
    p = (await client.get(f"/v1/segments/{seg['id']}/profile", headers=auth(tenant.api_key))).json()
    assert p["size"] == 2
    assert p["share_of_customers"] == 0.4
    assert p["revenue"] == "230.00"
    assert p["revenue_share"] == round(230 / 730, 4)
    yoga = next(b for b in p["distributions"]["interests"] if b["value"] == "yoga")
    assert yoga["share"] == 1.0
    assert yoga["store_share"] == 0.4
    assert yoga["lift"] == 2.5
    female = next(b for b in p["distributions"]["gender"] if b["value"] == "female")
    assert female["count"] == 2


async def test_compare_ranks_segments_by_weighted_score(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, tenant)
    big = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Everyone", "condition": {"fact": "external_id", "op": "exists"}},
    )
    rich = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Big spenders", "condition": {"fact": "total_spent", "op": "gte", "value": 150}},
    )
    by_size = await client.post(
        "/v1/segments/compare",
        headers=h,
        json={
            "segment_ids": [rich["id"], big["id"]],
            "weights": {
                "size": 1,
                "revenue": 0,
                "predicted_clv": 0,
                "average_order_value": 0,
                "growth": 0,
                "reachability": 0,
            },
        },
    )
    assert [s["name"] for s in by_size.json()["ranking"]] == ["Everyone", "Big spenders"]
    by_value = await client.post(
        "/v1/segments/compare",
        headers=h,
        json={
            "segment_ids": [big["id"], rich["id"]],
            "weights": {
                "size": 0,
                "revenue": 0,
                "predicted_clv": 0,
                "average_order_value": 1,
                "growth": 0,
                "reachability": 0,
            },
        },
    )
    ranking = by_value.json()["ranking"]
    assert [s["name"] for s in ranking] == ["Big spenders", "Everyone"]
    assert ranking[0]["average_order_value"] == "233.33"
    assert ranking[1]["reachability"] == 1.0  # every customer has a preferred channel
    assert_problem(
        await client.post("/v1/segments/compare", headers=h, json={"segment_ids": ["nope"]}), 404
    )


async def test_builtin_core_segments_fill_after_the_value_analysis(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, tenant)
    listed = (await client.get("/v1/segments?kind=builtin", headers=h)).json()["items"]
    assert {s["slug"] for s in listed} == {
        "builtin:longest-tenure",
        "builtin:referrers",
        "builtin:above-average-spenders",
    }
    await client.post("/v1/analyses/customer-value", json={}, headers=h)
    await run_burst(worker_factory)  # the analysis, then the refreshes it queues
    spenders = next(
        s
        for s in (await client.get("/v1/segments?kind=builtin", headers=h)).json()["items"]
        if s["slug"] == "builtin:above-average-spenders"
    )
    # Buyers spent 200, 30 and 500 (mean 243.33): only dan spends above the average.
    assert await member_ids(client, tenant, spenders["id"]) == {"dan"}


async def test_an_import_refreshes_rule_segments(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    seg = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Germany", "condition": {"fact": "country", "op": "eq", "value": "DE"}},
    )
    assert seg["size"] == 0
    csv_body = b"external_id,country\nx-1,DE\nx-2,DE\nx-3,FR\n"
    await client.post(
        "/v1/imports?kind=customers", content=csv_body, headers={**h, "content-type": "text/csv"}
    )
    await run_burst(worker_factory)  # the import, then the refresh it queues
    assert await member_ids(client, tenant, seg["id"]) == {"x-1", "x-2"}


async def test_the_grammar_is_published_in_openapi(client):
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name in (
        "FactCondition",
        "EventCondition",
        "AllOf",
        "AnyOf",
        "NotOf",
        "OrdersCondition",
        "BoughtCondition",
        "InSegmentCondition",
        "PropertyFilter",
    ):
        assert name in schemas, name
    assert "within_last_days" in schemas["FactCondition"]["properties"]["op"]["enum"]


async def test_two_refreshes_of_one_segment_at_once_both_succeed(
    client, tenant, worker_factory, app
):
    """A burst of writes can queue several refreshes of one segment; the worker runs them
    side by side. They take turns instead of colliding on the open memberships."""
    h = auth(tenant.api_key)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    for n in range(30):
        await client.post("/v1/customers", json=customer(f"c-{n}"), headers=h)

    async def refresh() -> dict:
        async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
            return await segments.refresh(session, tenant.tenant_id, uuid.UUID(segment["id"]))

    first, second = await asyncio.gather(refresh(), refresh())
    assert sorted([first["entered"], second["entered"]]) == [0, 30]
    assert len(await member_ids(client, tenant, segment["id"])) == 30
