"""Platforms retry for hours and keep no order: a random history of customer and order
updates, delivered with duplicates and out of order, must end in the same stored state as
the same history delivered once, in order. Generic envelopes and Shopify topics alike."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.factories.store import customer, order
from tests.test_webhooks import fixture, send_generic, send_shopify

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CITIES = ["Hanoi", "Hue", "Da Nang", "Can Tho"]
NAMES = ["An", "Binh", "Chi", "Dung"]
STATUSES = ["placed", "paid", "fulfilled", "refunded", "cancelled"]
FINANCIAL = ["pending", "paid", "refunded", "partially_refunded", "voided"]
# A delivery: (source kind, topic or envelope type, payload, delivery id).
Delivery = tuple[str, str, dict[str, Any], str]


def _at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


def _clocks(draw, n: int) -> list[int]:
    """Non-decreasing source clocks: ties are allowed (broken by delivery id)."""
    return sorted(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)))


@st.composite
def generic_histories(draw) -> list[Delivery]:
    history: list[Delivery] = []
    for minute in _clocks(draw, draw(st.integers(1, 4))):
        data = customer(
            "c-1",
            city=draw(st.sampled_from(CITIES)),
            first_name=draw(st.sampled_from(NAMES)),
            updated_at=_at(minute),
        )
        kind = "customer.created" if not history else "customer.updated"
        history.append(("generic", kind, {"type": kind, "data": data}, ""))
    for o in range(draw(st.integers(1, 2))):
        for v, minute in enumerate(_clocks(draw, draw(st.integers(1, 3)))):
            data = order(
                "c-1",
                external_id=f"o-{o}",
                status=draw(st.sampled_from(STATUSES)),
                total=str(draw(st.sampled_from(["10.00", "59.45", "120.50"]))),
                placed_at=_at(o),
                updated_at=_at(minute),
            )
            kind = "order.created" if v == 0 else "order.updated"
            history.append(("generic", kind, {"type": kind, "data": data}, ""))
    return [(s, k, p, f"msg_{i:03d}") for i, (s, k, p, _) in enumerate(history)]


@st.composite
def shopify_histories(draw) -> list[Delivery]:
    history: list[Delivery] = []
    base_customer = fixture("customers/create")
    for minute in _clocks(draw, draw(st.integers(1, 4))):
        data = copy.deepcopy(base_customer)
        data["first_name"] = draw(st.sampled_from(NAMES))
        data["updated_at"] = _at(minute)
        topic = "customers/create" if not history else "customers/update"
        history.append(("shopify", topic, data, ""))
    base_order = fixture("orders/create")
    base_order["customer"]["id"] = base_customer["id"]
    base_order["customer"]["updated_at"] = _at(-60)
    for v, minute in enumerate(_clocks(draw, draw(st.integers(1, 3)))):
        data = copy.deepcopy(base_order)
        data["financial_status"] = draw(st.sampled_from(FINANCIAL))
        data["updated_at"] = _at(minute)
        topic = "orders/create" if v == 0 else "orders/updated"
        history.append(("shopify", topic, data, ""))
    return [(s, k, p, f"evt-{i:03d}") for i, (s, k, p, _) in enumerate(history)]


@st.composite
def disorders(draw, history: list[Delivery]) -> list[Delivery]:
    """The same deliveries shuffled, some of them sent again at random places."""
    shuffled = list(draw(st.permutations(history)))
    for repeat in draw(st.lists(st.sampled_from(history), max_size=len(history))):
        shuffled.insert(draw(st.integers(0, len(shuffled))), repeat)
    return shuffled


async def _deliver(client, tenant, deliveries: list[Delivery]) -> None:
    for source, topic, payload, delivery_id in deliveries:
        if source == "generic":
            r = await send_generic(client, tenant, payload, msg_id=delivery_id)
        else:
            r = await send_shopify(client, tenant, topic, payload, event_id=delivery_id)
        assert r.status_code == 200, r.text


_CUSTOMERS = """
SELECT to_jsonb(c) - ARRAY['tenant_id', 'id', 'updated_at', 'stats_updated_at']
FROM customers c WHERE tenant_id = :t ORDER BY external_id
"""
_ORDERS = """
SELECT to_jsonb(o) - ARRAY['tenant_id', 'id', 'customer_id', 'created_at', 'updated_at']
    || jsonb_build_object(
        'customer', c.external_id,
        'items', (
            SELECT jsonb_agg(to_jsonb(i) - ARRAY['tenant_id', 'order_id'] ORDER BY line)
            FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id
        )
    )
FROM orders o LEFT JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
WHERE o.tenant_id = :t ORDER BY o.external_id
"""


async def _state(owner_engine, tenant_id) -> dict[str, Any]:
    """What a store would see: customers, orders and items, without Portrait's own ids and
    clocks (row timestamps, when each fact was learnt)."""
    async with owner_engine.connect() as conn:
        customers = (await conn.execute(text(_CUSTOMERS), {"t": tenant_id})).scalars().all()
        orders = (await conn.execute(text(_ORDERS), {"t": tenant_id})).scalars().all()
    for c in customers:
        # When Portrait learnt a fact is its own clock; where the fact came from is state.
        c["fact_sources"] = {k: v["source"] for k, v in (c["fact_sources"] or {}).items()}
    return {"customers": customers, "orders": orders}


async def _check(client, make_tenant, owner_engine, history, delivered) -> None:
    ordered, disordered = await make_tenant(), await make_tenant()
    await _deliver(client, ordered, history)
    await _deliver(client, disordered, delivered)
    expected = await _state(owner_engine, ordered.tenant_id)
    assert expected["customers"]
    assert expected["orders"]
    assert await _state(owner_engine, disordered.tenant_id) == expected


PROPERTY = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(data=st.data())
async def test_generic_deliveries_in_any_order_and_repeated_end_the_same(
    client, make_tenant, owner_engine, data
):
    history = data.draw(generic_histories())
    await _check(client, make_tenant, owner_engine, history, data.draw(disorders(history)))


@PROPERTY
@given(data=st.data())
async def test_shopify_deliveries_in_any_order_and_repeated_end_the_same(
    client, make_tenant, owner_engine, data
):
    history = data.draw(shopify_histories())
    await _check(client, make_tenant, owner_engine, history, data.draw(disorders(history)))
