"""Bad input is a clear 4xx problem, never a 500, and never loses or half-writes what was
already stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.factories.store import customer, event, order
from tests.helpers import auth
from tests.test_auth import assert_problem


async def _snapshot(owner_engine):
    async with owner_engine.connect() as conn:
        return {
            t: (await conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2"))).all()
            for t in ("customers", "orders", "order_items", "events")
        }


@pytest.fixture
async def stored(client, tenant, owner_engine):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    await client.post("/v1/orders", json=order("c-1", external_id="o-1"), headers=h)
    await client.post("/v1/events", json=event(customer_external_id="c-1", id="e-1"), headers=h)
    return await _snapshot(owner_engine)


FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()

CASES = [
    ("wrong type", "/v1/customers", customer("c-1", children="many"), ["body", "children"]),
    ("unknown field", "/v1/customers", customer("c-1", shoe_size=42), ["body", "shoe_size"]),
    ("bad enum", "/v1/customers", customer("c-1", gender="robot"), ["body", "gender"]),
    ("NUL in text", "/v1/customers", customer("c-1", city="Ha\u0000noi"), ["body", "city"]),
    ("NUL in traits", "/v1/customers", customer("c-1", traits={"a": "\u0000"}), ["body", "traits"]),
    (
        "naive timestamp",
        "/v1/customers",
        customer("c-1", created_at="2026-01-01T00:00:00"),
        ["body", "created_at"],
    ),
    (
        "negative quantity",
        "/v1/orders",
        order("c-1", external_id="o-1", items=[{"quantity": -1, "unit_price": "1"}]),
        ["body", "items", 0, "quantity"],
    ),
    (
        "unknown currency",
        "/v1/orders",
        order("c-1", external_id="o-1", currency="ABC"),
        ["body", "currency"],
    ),
    (
        "float-ish money",
        "/v1/orders",
        order("c-1", external_id="o-1", total="1.234567"),
        ["body", "total"],
    ),
    (
        "future date",
        "/v1/orders",
        order("c-1", external_id="o-1", placed_at=FUTURE),
        ["body", "placed_at"],
    ),
    ("event nobody", "/v1/events", event(id="e-1", customer_external_id=None), None),
    (
        "oversized batch",
        "/v1/events",
        {"events": [event(customer_external_id="c-1") for _ in range(1001)]},
        None,
    ),
    (
        "batch with one bad event",
        "/v1/events",
        {"events": [event(customer_external_id="c-1"), event(occurred_at="yesterday")]},
        None,
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "loc"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_bodies_are_422_and_change_nothing(
    client, tenant, owner_engine, stored, case, path, body, loc
):
    r = await client.post(path, json=body, headers=auth(tenant.api_key))
    problem = assert_problem(r, 422)
    if loc is not None:
        assert loc in [e["loc"] for e in problem["errors"]], problem["errors"]
    assert "\u0000" not in r.text
    assert await _snapshot(owner_engine) == stored


async def test_invalid_utf8_and_broken_json_are_4xx(client, tenant, owner_engine, stored):
    h = {**auth(tenant.api_key), "content-type": "application/json"}
    assert_problem(
        await client.post("/v1/customers", content=b'{"external_id": "\xff"}', headers=h), 400
    )
    assert_problem(await client.post("/v1/customers", content=b'{"external_id": ', headers=h), 422)
    assert_problem(await client.post("/v1/customers", content=b"[]", headers=h), 422)
    assert await _snapshot(owner_engine) == stored


async def test_a_50_mb_body_is_413(client, tenant, owner_engine, stored):
    big = b'{"events": [' + b" " * (50 * 1024 * 1024) + b"]}"
    r = await client.post(
        "/v1/events",
        content=big,
        headers={**auth(tenant.api_key), "content-type": "application/json"},
    )
    assert_problem(r, 413)
    assert await _snapshot(owner_engine) == stored


async def test_a_streamed_body_without_length_is_cut_at_the_limit(client, tenant):
    async def chunks():
        for _ in range(6):
            yield b" " * (1024 * 1024)

    r = await client.post(
        "/v1/events",
        content=chunks(),
        headers={**auth(tenant.api_key), "content-type": "application/json"},
    )
    assert_problem(r, 413)


async def test_an_id_from_nowhere_is_404_not_500(client, tenant):
    h = auth(tenant.api_key)
    for path in (
        "/v1/customers/not-a-uuid",
        "/v1/customers/ext:nobody",
        "/v1/orders/zzz",
        "/v1/customers/00000000-0000-0000-0000-000000000000/export",
    ):
        assert_problem(await client.get(path, headers=h), 404)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/events", event(customer_external_id="c-1", id="e-2", properties={"v": "@"})),
        ("/v1/customers", customer("c-1", traits={"v": "@"})),
    ],
    ids=["event properties", "customer traits"],
)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_json_objects_refuse_numbers_json_has_not(
    client, tenant, owner_engine, stored, path, body, number
):
    """Python's JSON reader takes NaN and Infinity; PostgreSQL's jsonb does not."""
    raw = json.dumps(body).replace('"@"', number).encode()
    h = {**auth(tenant.api_key), "content-type": "application/json"}
    problem = assert_problem(await client.post(path, content=raw, headers=h), 422)
    field = "properties" if "events" in path else "traits"
    assert any(e["loc"][-1] == field and "NaN" in e["msg"] for e in problem["errors"])
    assert await _snapshot(owner_engine) == stored
