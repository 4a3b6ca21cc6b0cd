"""Data-driven segmentation through the API and a real worker: k-means recovers the demo
store's planted kinds of buyer; RFM makes one segment per named group."""

from __future__ import annotations

import pytest
from sklearn.metrics import adjusted_rand_score

from shared.ingest.demo import DemoConfig, generate
from shared.ingest.demo_loader import load
from tests.factories.segments import member_ids
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem


@pytest.fixture(scope="module")
def store():
    return generate(DemoConfig(n_customers=800, seed=11))


async def _run(client, tenant, worker_factory, body):
    h = auth(tenant.api_key)
    r = await client.post("/v1/segmentations", json=body, headers=h)
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    run = (await client.get(r.headers["location"], headers=h)).json()
    assert run["status"] == "succeeded", run
    return run


async def test_kmeans_recovers_the_planted_kinds_and_rfm_makes_named_groups(
    app, client, tenant, worker_factory, store
):
    await load(app.state.sessionmaker, tenant.tenant_id, store)
    run = await _run(client, tenant, worker_factory, {"method": "kmeans", "seed": 1})
    result = run["result"]
    kinds = dict(
        zip(
            store.customers["external_id"].astype(str),
            store.customers["kind"].astype(str),
            strict=True,
        )
    )
    found: dict[str, int] = {}
    for n, segment in enumerate(run["segments"]):
        for ext in await member_ids(client, tenant, segment["id"]):
            found[ext] = n
    planted = [kinds[ext] for ext in found]
    ari = adjusted_rand_score(planted, list(found.values()))
    print(
        f"k-means on the demo store: k={result['k']} (chosen: {result['k_chosen']}), "
        f"silhouette {result['silhouette']:.3f}, ARI {ari:.3f}"
    )
    for s in run["segments"]:
        print(f"  {s['name']}: {s['size']} - {s['description']}")
    assert ari >= 0.8
    assert len({s["name"] for s in run["segments"]}) == len(run["segments"])
    assert all(s["kind"] == "segmentation" for s in run["segments"])
    first = run["segments"][0]["details"]
    assert "monetary" in first["centroid"]
    assert first["statistic"]["monetary"] in ("median", "mean")
    # One store load serves the next checks too (loading is the slow part).
    await _reproducible(client, tenant, worker_factory)
    await _rfm(client, tenant, worker_factory)


async def _reproducible(client, tenant, worker_factory):
    a = await _run(client, tenant, worker_factory, {"method": "kmeans", "k": 4, "seed": 3})
    b = await _run(client, tenant, worker_factory, {"method": "kmeans", "k": 4, "seed": 3})
    assert [(s["name"], s["size"]) for s in a["segments"]] == [
        (s["name"], s["size"]) for s in b["segments"]
    ]


async def _rfm(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    assert_problem(await client.post("/v1/segmentations", json={"method": "rfm"}, headers=h), 409)
    await client.post("/v1/analyses/customer-value", json={}, headers=h)
    await run_burst(worker_factory)
    run = await _run(client, tenant, worker_factory, {"method": "rfm"})
    sizes = {s["name"]: s["size"] for s in run["segments"]}
    assert len(sizes) == 11
    summary = (await client.get("/v1/analyses/customer-value/summary", headers=h)).json()
    assert {k: v for k, v in sizes.items() if v} == summary["rfm_segments"]


async def test_bad_segmentation_requests_are_4xx(client, tenant):
    h = auth(tenant.api_key)
    assert_problem(
        await client.post("/v1/segmentations", json={"method": "dbscan"}, headers=h), 422
    )
    assert_problem(
        await client.post(
            "/v1/segmentations", json={"method": "kmeans", "k_min": 6, "k_max": 3}, headers=h
        ),
        422,
    )
    assert_problem(await client.get("/v1/segmentations/nope", headers=h), 404)
