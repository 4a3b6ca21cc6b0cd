"""Signed webhooks: the generic envelope and Shopify's real payloads, delivered twice, out of
order, late after an erasure, or with a bad signature."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from shared.ingest.signing import sign_shopify, sign_standard
from tests.factories.store import customer, event, order
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem

FIXTURES = Path(__file__).parent / "unit" / "fixtures" / "shopify"


async def send_generic(
    client, tenant, payload, *, msg_id=None, timestamp=None, secret=None, nan=False
):
    body = json.dumps(payload).encode()
    if nan:  # every number 1 becomes NaN
        body = body.replace(b": 1}", b": NaN}")
        assert b"NaN" in body
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(timestamp if timestamp is not None else time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret or tenant.webhook_secret, msg_id, ts, body),
        "content-type": "application/json",
    }
    return await client.post(
        f"/v1/webhooks/generic/{tenant.tenant_id}", content=body, headers=headers
    )


async def send_shopify(client, tenant, topic, payload, *, event_id=None):
    body = json.dumps(payload).encode()
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_shopify(tenant.webhook_secret, body),
        "X-Shopify-Shop-Domain": "example-store.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "content-type": "application/json",
    }
    return await client.post(
        f"/v1/webhooks/shopify/{tenant.tenant_id}", content=body, headers=headers
    )


def fixture(topic: str) -> dict:
    return json.loads((FIXTURES / f"{topic.replace('/', '_')}.json").read_text())


async def test_signed_generic_customer_is_applied(client, tenant):
    r = await send_generic(client, tenant, {"type": "customer.created", "data": customer("c-1")})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"
    got = await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key))
    assert got.json()["contact"]["first_name"] == "An"


async def test_replayed_webhook_is_applied_once(client, tenant, owner_engine):
    payload = {"type": "order.created", "data": order("c-1", external_id="o-1")}
    first = await send_generic(client, tenant, payload, msg_id="msg_same")
    again = await send_generic(client, tenant, payload, msg_id="msg_same")
    assert first.json()["outcome"] == "applied"
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM orders")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM order_items")) == 2


async def test_out_of_order_updates_keep_the_newest(client, tenant):
    newer = customer("c-1", city="Hanoi", updated_at="2026-03-02T10:00:00Z")
    older = customer("c-1", city="Hue", updated_at="2026-03-01T10:00:00Z")
    await send_generic(client, tenant, {"type": "customer.updated", "data": newer})
    late = await send_generic(client, tenant, {"type": "customer.updated", "data": older})
    assert late.json()["outcome"] == "ignored_stale"
    got = await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key))
    assert got.json()["geographic"]["city"] == "Hanoi"


async def test_equal_timestamps_are_broken_by_delivery_id(client, tenant):
    at = "2026-03-02T10:00:00Z"
    a = customer("c-1", city="A-city", updated_at=at)
    b = customer("c-1", city="B-city", updated_at=at)
    await send_generic(client, tenant, {"type": "customer.updated", "data": b}, msg_id="msg_b")
    r = await send_generic(client, tenant, {"type": "customer.updated", "data": a}, msg_id="msg_a")
    assert r.json()["outcome"] == "ignored_stale"
    got = await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key))
    assert got.json()["geographic"]["city"] == "B-city"


async def test_bad_signature_stale_timestamp_and_unknown_tenant_are_the_same_401(
    client, tenant, owner_engine
):
    payload = {"type": "customer.created", "data": customer("c-1")}
    wrong = await send_generic(
        client, tenant, payload, secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    )
    stale = await send_generic(client, tenant, payload, timestamp=time.time() - 301)
    future = await send_generic(client, tenant, payload, timestamp=time.time() + 301)
    tampered_body = json.dumps(payload).encode()
    ts = int(time.time())
    sig = sign_standard(tenant.webhook_secret, "msg_x", ts, tampered_body)
    tampered = await client.post(
        f"/v1/webhooks/generic/{tenant.tenant_id}",
        content=tampered_body + b" ",
        headers={"webhook-id": "msg_x", "webhook-timestamp": str(ts), "webhook-signature": sig},
    )
    unknown = await client.post(
        f"/v1/webhooks/generic/{uuid.uuid4()}",
        content=tampered_body,
        headers={"webhook-id": "msg_x", "webhook-timestamp": str(ts), "webhook-signature": sig},
    )
    details = {assert_problem(r, 401)["detail"] for r in (wrong, stale, future, tampered, unknown)}
    assert len(details) == 1
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM customers")) == 0


async def test_a_late_update_after_deletion_does_not_revive(client, tenant):
    await send_generic(client, tenant, {"type": "customer.created", "data": customer("c-1")})
    await send_generic(client, tenant, {"type": "customer.deleted", "data": {"external_id": "c-1"}})
    late = await send_generic(
        client, tenant, {"type": "customer.updated", "data": customer("c-1", city="Hue")}
    )
    assert late.json()["outcome"] == "ignored_erased"
    assert_problem(await client.get("/v1/customers/ext:c-1", headers=auth(tenant.api_key)), 404)


async def test_generic_events_are_accepted_then_applied_by_the_worker(
    client, tenant, worker_factory, owner_engine
):
    anon = event("product_view", anonymous_id="anon-1")
    first = await send_generic(
        client, tenant, {"type": "event.tracked", "data": anon}, msg_id="msg_ev"
    )
    assert first.json()["outcome"] == "accepted"
    again = await send_generic(
        client, tenant, {"type": "event.tracked", "data": anon}, msg_id="msg_ev"
    )
    assert again.json()["outcome"] == "duplicate"
    bad = await send_generic(
        client, tenant, {"type": "event.tracked", "data": {**anon, "occurred_at": "soon"}}
    )
    assert_problem(bad, 422)
    await send_generic(client, tenant, {"type": "customer.created", "data": customer("c-1")})
    r = await send_generic(
        client,
        tenant,
        {"type": "identify", "data": {"anonymous_id": "anon-1", "customer_external_id": "c-1"}},
    )
    assert r.json()["outcome"] == "applied"
    await run_burst(worker_factory)  # its start-up drains the inbox
    items = (
        await client.get("/v1/customers/ext:c-1/timeline", headers=auth(tenant.api_key))
    ).json()["items"]
    assert [i["summary"] for i in items] == ["product_view"]
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM webhook_inbox")) == 0
        outcome = await conn.scalar(
            text("SELECT outcome FROM webhook_deliveries WHERE delivery_id = 'msg_ev'")
        )
    assert outcome == "applied"


async def test_malformed_generic_delivery_is_422_and_stores_nothing(client, tenant, owner_engine):
    bad = await send_generic(
        client, tenant, {"type": "order.created", "data": order("c-1", total="-5")}
    )
    body = assert_problem(bad, 422)
    assert body["errors"][0]["loc"][-1] == "total"
    unknown_type = await send_generic(client, tenant, {"type": "nope", "data": {}})
    assert_problem(unknown_type, 422)
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM orders")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM customers")) == 0


async def test_a_delivery_with_nan_is_not_json_and_stores_nothing(client, tenant, owner_engine):
    """Python's JSON reader takes NaN; JSON (and PostgreSQL's jsonb) does not."""
    for payload in (
        {"type": "event.tracked", "data": event(customer_external_id="c-1", properties={"v": 1})},
        {"type": "customer.created", "data": customer("c-1", traits={"v": 1})},
    ):
        body = assert_problem(await send_generic(client, tenant, payload, nan=True), 422)
        assert "JSON" in body["detail"]
    async with owner_engine.connect() as conn:
        for table in ("customers", "events", "webhook_inbox", "webhook_deliveries"):
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table


async def test_shopify_customer_and_order_topics_map_to_profiles(client, tenant):
    h = auth(tenant.api_key)
    created = await send_shopify(client, tenant, "customers/create", fixture("customers/create"))
    assert created.status_code == 200, created.text
    assert created.json()["outcome"] == "applied"
    payload = fixture("orders/create")
    r = await send_shopify(client, tenant, "orders/create", payload)
    assert r.json()["outcome"] == "applied", r.text
    ext = str(payload["customer"]["id"])
    profile = (await client.get(f"/v1/customers/ext:{ext}", headers=h)).json()
    assert profile["behaviour"]["order_count"] == 1
    orders = (await client.get(f"/v1/orders?customer_id=ext:{ext}", headers=h)).json()["items"]
    assert orders[0]["external_id"] == str(payload["id"])
    assert orders[0]["total"] == payload["total_price"]
    cancelled = fixture("orders/cancelled")
    r = await send_shopify(client, tenant, "orders/cancelled", cancelled)
    assert r.status_code == 200, r.text


async def test_shopify_checkout_becomes_a_checkout_started_event(client, tenant, owner_engine):
    r = await send_shopify(client, tenant, "checkouts/create", fixture("checkouts/create"))
    assert r.status_code == 200, r.text
    async with owner_engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM events"))).scalars().all()
    assert names == ["checkout_started"]


async def test_shopify_replay_by_event_id_is_applied_once(client, tenant, owner_engine):
    payload = fixture("orders/create")
    await send_shopify(client, tenant, "orders/create", payload, event_id="evt-1")
    again = await send_shopify(client, tenant, "orders/create", payload, event_id="evt-1")
    assert again.json()["outcome"] == "duplicate"


async def test_shopify_bad_hmac_is_401(client, tenant):
    body = json.dumps(fixture("customers/create")).encode()
    r = await client.post(
        f"/v1/webhooks/shopify/{tenant.tenant_id}",
        content=body,
        headers={
            "X-Shopify-Topic": "customers/create",
            "X-Shopify-Hmac-Sha256": "bm9wZQ==",
            "X-Shopify-Webhook-Id": "w-1",
        },
    )
    assert_problem(r, 401)


async def test_shopify_privacy_topics(client, tenant, owner_engine):
    h = auth(tenant.api_key)
    customer_payload = fixture("customers/create")
    await send_shopify(client, tenant, "customers/create", customer_payload)
    ext = str(customer_payload["id"])
    redact = fixture("customers/redact")
    redact["customer"]["id"] = customer_payload["id"]
    request = fixture("customers/data_request")
    request["customer"]["id"] = customer_payload["id"]
    exported = await send_shopify(client, tenant, "customers/data_request", request)
    assert f"/v1/customers/ext:{ext}/export" in exported.json()["detail"]
    assert (await send_shopify(client, tenant, "customers/redact", redact)).status_code == 200
    assert_problem(await client.get(f"/v1/customers/ext:{ext}", headers=h), 404)

    await client.post("/v1/customers", json=customer("other"), headers=h)
    await client.post("/v1/orders", json=order("other"), headers=h)
    shop = await send_shopify(client, tenant, "shop/redact", fixture("shop/redact"))
    assert shop.status_code == 200
    async with owner_engine.connect() as conn:
        for table in ("customers", "orders", "events"):
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    assert (await client.get("/v1/jobs", headers=h)).status_code == 200  # the key still works


async def test_delivery_ids_are_kept_three_days_then_purged(client, tenant, owner_engine, app):
    from services.worker.main import purge_webhook_deliveries

    payload = {"type": "customer.created", "data": customer("c-1")}
    await send_generic(client, tenant, payload, msg_id="msg_old")
    await send_generic(client, tenant, payload, msg_id="msg_recent")
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET received_at = now() - interval '8 days' "
                "WHERE delivery_id = 'msg_old'"
            )
        )
    ctx = {"settings": app.state.settings, "sessionmaker": app.state.sessionmaker}
    assert await purge_webhook_deliveries(ctx) == 1
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_deliveries SET received_at = now() - interval '2 days 23 hours'")
        )
    assert await purge_webhook_deliveries(ctx) == 0  # younger than 3 days: always kept
    again = await send_generic(client, tenant, payload, msg_id="msg_recent")
    assert again.json()["outcome"] == "duplicate"
