"""Customer value end to end: the job on a real worker over a generated store, the summary,
value facts on profiles and in filters, `as_of`, and tiny or odd tenants."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from shared.ingest.demo import DemoConfig, generate
from shared.ingest.demo_loader import load
from tests.factories.store import customer, order
from tests.helpers import auth, run_burst


async def _analyse(client, tenant, worker_factory, **body):
    h = auth(tenant.api_key)
    r = await client.post("/v1/analyses/customer-value", json=body, headers=h)
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    job = (await client.get(r.headers["location"], headers=h)).json()
    assert job["status"] == "succeeded", job
    return job["result"]


@pytest.fixture(scope="module")
def store():
    return generate(DemoConfig(n_customers=400, seed=7, events=False))


async def test_value_job_scores_every_customer_of_a_demo_store(
    app, client, tenant, worker_factory, store
):
    await load(app.state.sessionmaker, tenant.tenant_id, store)
    result = await _analyse(client, tenant, worker_factory)
    n = store.sizes["customers"]
    assert result["customers"] == n
    bg = result["models"]["bgnbd"]
    assert bg["usable"] is True
    assert all(math.isfinite(bg[k]) and bg[k] > 0 for k in ("r", "alpha", "a", "b"))

    h = auth(tenant.api_key)
    summary = (await client.get("/v1/analyses/customer-value/summary", headers=h)).json()
    assert summary["customers"] == n
    assert sum(summary["lifecycle_stages"].values()) == n
    never_bought = (await client.get("/v1/customers?max_orders=0&limit=500", headers=h)).json()
    no_purchase = [c for c in never_bought["items"] if c["behaviour"]["refund_count"] == 0]
    assert summary["lifecycle_stages"]["prospect"] == len(no_purchase)
    assert len(no_purchase) >= int((store.customers["kind"].astype(str) == "prospect").sum())
    assert "Champions" in summary["rfm_segments"]
    assert float(summary["total_predicted_clv"]) > 0
    assert summary["models"]["gamma_gamma"]["p"] > 0

    champions = (
        await client.get("/v1/customers?rfm_segment=Champions&limit=500", headers=h)
    ).json()["items"]
    assert champions
    assert {c["value"]["rfm_segment"] for c in champions} == {"Champions"}
    assert all(c["value"]["r_score"] >= 4 for c in champions)
    prospects = (
        await client.get("/v1/customers?lifecycle_stage=prospect&limit=500", headers=h)
    ).json()["items"]
    assert all(c["behaviour"]["order_count"] == 0 for c in prospects)
    top = (await client.get("/v1/customers?sort=-predicted_clv&limit=5", headers=h)).json()
    values = [float(c["value"]["predicted_clv"]) for c in top["items"]]
    assert values == sorted(values, reverse=True)
    spenders = (
        await client.get("/v1/customers?above_average_spender=true&limit=500", headers=h)
    ).json()["items"]
    assert spenders
    assert all(c["value"]["above_average_spender"] for c in spenders)


async def test_loyal_buyers_are_worth_more_than_one_time_gifters(
    app, client, tenant, worker_factory, store
):
    await load(app.state.sessionmaker, tenant.tenant_id, store)
    await _analyse(client, tenant, worker_factory)
    kinds = dict(
        zip(
            store.customers["external_id"].astype(str),
            store.customers["kind"].astype(str),
            strict=True,
        )
    )
    h = auth(tenant.api_key)
    worth: dict[str, list[float]] = {}
    cursor = None
    while True:
        url = "/v1/customers?limit=500" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=h)).json()
        for c in page["items"]:
            v = c["value"]
            if v and v["predicted_clv"] is not None:
                worth.setdefault(kinds[c["external_id"]], []).append(float(v["predicted_clv"]))
        cursor = page["next_cursor"]
        if not cursor:
            break

    def mean(kind):
        return sum(worth[kind]) / len(worth[kind])

    assert mean("loyal_parent") > 3 * mean("one_time_gifter")


async def test_as_of_ignores_later_orders(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    for day in ("2026-01-10", "2026-02-10", "2026-06-10"):
        await client.post("/v1/orders", json=order("c-1", placed_at=f"{day}T10:00:00Z"), headers=h)
    await _analyse(client, tenant, worker_factory, as_of="2026-03-01T00:00:00Z")
    v = (await client.get("/v1/customers/ext:c-1", headers=h)).json()["value"]
    assert v["frequency"] == 2
    assert v["recency_days"] == 19  # from 10 February to 1 March


async def test_tiny_and_odd_tenants_get_sensible_answers(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("one-order"), headers=h)
    await client.post("/v1/orders", json=order("one-order"), headers=h)
    await client.post("/v1/customers", json=customer("refunds-only"), headers=h)
    await client.post("/v1/orders", json=order("refunds-only", status="refunded"), headers=h)
    await client.post("/v1/customers", json=customer("same-day"), headers=h)
    day = (datetime.now(UTC) - timedelta(days=5)).replace(hour=8)
    for n in range(3):
        at = (day + timedelta(hours=n)).isoformat()
        await client.post(
            "/v1/orders", json=order("same-day", external_id=f"sd-{n}", placed_at=at), headers=h
        )
    result = await _analyse(client, tenant, worker_factory)
    assert result["customers"] == 3
    assert result["models"]["bgnbd"]["usable"] is False  # three customers cannot fit a model
    stage = {}
    for ext in ("one-order", "refunds-only", "same-day"):
        v = (await client.get(f"/v1/customers/ext:{ext}", headers=h)).json()["value"]
        stage[ext] = v["lifecycle_stage"]
        for key in ("prob_alive", "expected_orders_90d", "churn_risk"):
            assert v[key] is None or math.isfinite(v[key])
    assert stage["refunds-only"] == "churned"
    assert stage["same-day"] == "new"  # one purchase day, five days ago
    same_day = (await client.get("/v1/customers/ext:same-day", headers=h)).json()["value"]
    assert same_day["frequency"] == 1  # three orders on one day are one purchase day
    summary = (await client.get("/v1/analyses/customer-value/summary", headers=h)).json()
    assert summary["customers"] == 3


async def test_a_second_run_replaces_the_first(client, tenant, worker_factory, owner_engine):
    from sqlalchemy import text

    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c-1"), headers=h)
    await _analyse(client, tenant, worker_factory)
    await _analyse(client, tenant, worker_factory)
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM customer_values")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM value_runs")) == 2


async def test_the_nightly_run_queues_one_analysis_per_tenant(
    app, client, make_tenant, worker_factory
):
    from services.worker.main import nightly_customer_value

    a, b = await make_tenant(), await make_tenant()
    ctx = {"sessionmaker": app.state.sessionmaker, "queue": app.state.queue}
    assert await nightly_customer_value(ctx) == 2
    await run_burst(worker_factory)
    for t in (a, b):
        jobs = (
            await client.get("/v1/jobs?kind=analytics.customer_value", headers=auth(t.api_key))
        ).json()["items"]
        assert [j["status"] for j in jobs] == ["succeeded"]
