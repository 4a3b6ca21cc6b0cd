"""The worker's columnar copy of the events (shared.funnels.columns): a funnel read from it
answers exactly as one read from PostgreSQL, after new events, an identified visitor, an
erasure, a late commit of a smaller id, and in a fresh worker with no copy yet."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.funnels import columns
from shared.funnels import service as funnels
from shared.settings import get_settings
from tests.factories.store import customer, event
from tests.helpers import auth, run_burst

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
FUNNEL = {
    "name": "Buy",
    "steps": [{"event": "view"}, {"event": "cart"}, {"event": "buy"}],
    "window_seconds": 7 * 86400,
    "date_range": {
        "from": (T0 - timedelta(days=1)).isoformat(),
        "to": (T0 + timedelta(days=3)).isoformat(),
    },
}


def _ev(name, hours, who=None, anon=None, device="mobile"):
    at = (T0 + timedelta(hours=hours)).isoformat()
    return event(name, customer_external_id=who, anonymous_id=anon, occurred_at=at, device=device)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    worker = get_settings().worker
    monkeypatch.setattr(worker, "cache_dir", tmp_path / "first")
    monkeypatch.setattr(worker, "funnel_cache", True)
    # Copies are built by the runs here (what they read is asserted), not at worker start.
    monkeypatch.setattr(worker, "warm_funnel_copies", False)
    return worker


async def test_a_warmed_copy_makes_the_first_run_read_nothing(
    app, client, tenant, worker_factory, cache, monkeypatch
):
    """What the worker does at start: every store with a funnel gets its copy built, so the
    first run after a (re)start only syncs what is new."""
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("ana"), headers=h)
    await _post(client, h, [_ev("view", 0, "ana"), _ev("cart", 1, "ana")])
    assert await funnels.warm_copies(app.state.sessionmaker) == 0  # no funnel yet
    funnel_id = (await client.post("/v1/funnels", json=FUNNEL, headers=h)).json()["id"]
    monkeypatch.setattr(cache, "warm_funnel_copies", True)
    assert await funnels.warm_copies(app.state.sessionmaker) == 1
    monkeypatch.setattr(cache, "warm_funnel_copies", False)
    result, job = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [1, 1, 0]
    assert job["synced"]["read"] in (0, 2)  # 2 only if a transaction elsewhere overlapped


async def _run(client, h, worker_factory, funnel_id, body=None):
    r = await client.post(f"/v1/funnels/{funnel_id}/runs", json=body or {}, headers=h)
    assert r.status_code == 202, r.text
    job_url = r.headers["Location"]
    await run_burst(worker_factory)
    run = (await client.get(f"/v1/funnels/{funnel_id}/runs/{r.json()['run_id']}", headers=h)).json()
    job = (await client.get(job_url, headers=h)).json()
    assert run["status"] == "succeeded", (run, job)
    return run["result"], job["result"]


async def _both(client, h, worker_factory, funnel_id, cache, body=None):
    """The run from the copy, checked against the same run read from PostgreSQL."""
    result, job = await _run(client, h, worker_factory, funnel_id, body)
    assert job["source"] == "columns"
    cache.funnel_cache = False
    try:
        expected, other = await _run(client, h, worker_factory, funnel_id, body)
    finally:
        cache.funnel_cache = True
    assert other["source"] == "postgresql"
    assert result == expected
    return result, job


async def _post(client, h, events):
    r = await client.post("/v1/events", json={"events": events}, headers=h)
    assert r.status_code in (200, 201, 202), r.text


@pytest.mark.parametrize("merge", ["at once", "never"])
async def test_new_events_identities_and_erasure_reach_the_copy(
    client, tenant, worker_factory, cache, tmp_path, monkeypatch, merge
):
    """Changed rows are either merged away at once or skipped through the parts' dead lists."""
    monkeypatch.setattr(columns, "DEAD_SHARE", 0.0 if merge == "at once" else 1e9)
    h = auth(tenant.api_key)
    ids = {}
    for ext in ("ana", "bao"):
        r = await client.post("/v1/customers", json=customer(ext), headers=h)
        ids[ext] = r.json()["customer"]["id"]
    await _post(client, h, [_ev("view", 0, "ana"), _ev("cart", 1, "ana"),
                            _ev("view", 0, anon="v-1", device="desktop"),
                            _ev("cart", 2, anon="v-1", device="desktop")])  # fmt: skip
    funnel_id = (await client.post("/v1/funnels", json=FUNNEL, headers=h)).json()["id"]
    by_device = {"breakdown": {"by": "device"}}

    result, job = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [2, 2, 0]
    assert job["synced"]["read"] == 4  # the first run copies the store

    # New events: only they are read; ana buys, bao shows up.
    await _post(client, h, [_ev("buy", 3, "ana"), _ev("view", 5, "bao"), _ev("cart", 6, "bao")])
    result, job = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [3, 3, 1]
    # Only the new ones, unless a transaction elsewhere on the server was running at the
    # first sync: then everything above the floor is read once more (de-duplicated).
    assert job["synced"]["read"] in (3, 7)
    await _both(client, h, worker_factory, funnel_id, cache, by_device)

    # The anonymous visitor turns out to be bao: one person now, with the earlier attempt.
    r = await client.post(
        "/v1/identify", json={"anonymous_id": "v-1", "customer_external_id": "bao"}, headers=h
    )
    assert r.status_code == 204, r.text
    result, job = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [2, 2, 1]
    assert job["synced"]["changes"] == 2
    result, _ = await _both(client, h, worker_factory, funnel_id, cache, by_device)

    # Erasure: ana's events leave the copy.
    assert (await client.delete(f"/v1/customers/{ids['ana']}", headers=h)).status_code == 204
    result, _ = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [1, 1, 0]
    before, _ = await _both(client, h, worker_factory, funnel_id, cache, by_device)

    # A fresh worker with no copy builds it and answers the same.
    cache.cache_dir = tmp_path / "fresh"
    again, job = await _run(client, h, worker_factory, funnel_id, by_device)
    assert job["source"] == "columns"
    assert job["synced"]["read"] == 4  # the events left after the erasure
    assert again == before


async def test_a_smaller_id_committed_after_a_run_is_not_missed(
    client, tenant, worker_factory, cache, owner_engine
):
    """Ids are taken at insert and seen at commit: an event whose transaction was still open
    during a sync, with an id below the ones that sync read, appears in the next run."""
    h = auth(tenant.api_key)
    r = await client.post("/v1/customers", json=customer("ana"), headers=h)
    ana = r.json()["customer"]["id"]
    funnel_id = (await client.post("/v1/funnels", json=FUNNEL, headers=h)).json()["id"]
    insert = text(
        "INSERT INTO events (tenant_id, external_id, name, customer_id, occurred_at, "
        "properties) VALUES (:t, :e, :n, :c, :at, '{}') RETURNING id"
    )
    scope = text("SELECT set_config('app.tenant_id', :t, true)")
    t = str(tenant.tenant_id)
    async with owner_engine.connect() as slow:
        await slow.execute(scope, {"t": t})
        at = T0 + timedelta(hours=1)
        early = await slow.scalar(
            insert, {"t": t, "e": "late", "n": "cart", "c": uuid.UUID(ana), "at": at}
        )
        async with owner_engine.begin() as fast:
            await fast.execute(scope, {"t": t})
            later = await fast.scalar(
                insert, {"t": t, "e": "first", "n": "view", "c": uuid.UUID(ana), "at": T0}
            )
        assert later > early
        result, _ = await _both(client, h, worker_factory, funnel_id, cache)
        assert [s["entered"] for s in result["steps"]] == [1, 0, 0]
        await slow.commit()
    result, _ = await _both(client, h, worker_factory, funnel_id, cache)
    assert [s["entered"] for s in result["steps"]] == [1, 1, 0]
