"""The demo store loaded through the ingest services, and `portrait demo`: what a user of the API
would see matches what the generator planted, stitching included, and a reload changes nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from shared.customers.stats import PURCHASE_STATUSES
from shared.ingest.demo import DemoConfig, DemoStore, Table, generate
from shared.ingest.demo_loader import TABLES, DemoDataError, load
from tests.helpers import auth

ROOT = Path(__file__).resolve().parents[1]
# A seed whose 300 customers include some who browsed anonymously before signing up (the
# generator makes few such journeys; the fixture checks this one has them).
SEED = 142
# Profile fields that move with the clock, not with the data.
CLOCK_FIELDS = ("days_since_last_order", "tenure_days")


@pytest.fixture(scope="module")
def store() -> DemoStore:
    return generate(DemoConfig(n_customers=300, seed=SEED))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _purchases(store: DemoStore) -> tuple[np.ndarray, np.ndarray]:
    """Per customer row: purchase-status orders and their total in cents, from the generator."""
    orders, n = store.orders, store.customers.n_rows
    bought = np.isin(orders["status"], [s.encode() for s in PURCHASE_STATUSES])
    rows = orders["customer_row"][bought]
    count = np.bincount(rows, minlength=n)
    cents = np.bincount(rows, weights=orders["total_cents"][bought], minlength=n)
    return count, cents.astype(np.int64)


def _anonymous_events(store: DemoStore) -> dict[int, dict[str, bool]]:
    """Events of each customer's device that were sent with only its anonymous id, mapped to
    whether they happened before the customer signed up."""
    c, e = store.customers, store.events
    device = {a: row for row, a in enumerate(c["anonymous_id"].tolist())}
    out: dict[int, dict[str, bool]] = {}
    rows, ids, anon, at = e["customer_row"], e["id"], e["anonymous_id"], e["occurred_at"]
    for i in np.flatnonzero(rows < 0):
        row = device.get(anon[i])
        if row is not None:
            out.setdefault(row, {})[ids[i].decode()] = bool(at[i] < c["created_at"][row])
    return out


async def _all_customers(client: Any, key: str, **params: Any) -> list[dict[str, Any]]:
    page = await client.get("/v1/customers", params={"limit": 500, **params}, headers=auth(key))
    assert page.status_code == 200, page.text
    assert page.json()["next_cursor"] is None
    return page.json()["items"]


async def _table_counts(owner_engine: Any, tenant_id: Any) -> dict[str, int]:
    """Rows per table for one tenant, read as the owner, and the events tied to a customer."""
    queries = {t: f"SELECT count(*) FROM {t} WHERE tenant_id = :t" for t in TABLES}
    queries["stitched_events"] = (
        "SELECT count(*) FROM events WHERE tenant_id = :t AND customer_id IS NOT NULL"
    )
    async with owner_engine.connect() as conn:
        return {k: await conn.scalar(text(q), {"t": tenant_id}) for k, q in queries.items()}


async def test_loaded_demo_store_shows_the_generators_customers_orders_and_journeys(
    app, client, make_tenant, owner_engine, store
):
    tenant = await make_tenant()
    seen: list[tuple[str, int, int]] = []
    counts = await load(
        app.state.sessionmaker,
        tenant.tenant_id,
        store,
        progress=lambda *p: seen.append(p),
    )
    assert counts == {
        **{k: store.sizes[k] for k in ("customers", "orders", "order_items", "events")},
        "survey_responses": store.sizes["survey_answers"],
    }
    kinds = [kind for kind, *_ in seen]
    assert kinds == sorted(kinds, key=["customers", "orders", "events"].index)
    assert seen[-1] == ("events", store.sizes["events"], store.sizes["events"])

    key = tenant.api_key
    listed = {c["external_id"]: c for c in await _all_customers(client, key)}
    ext = store.customers["external_id"].astype("U").tolist()
    kind = store.customers["kind"].astype("U")
    assert sorted(listed) == sorted(ext)

    count, cents = _purchases(store)
    for row, external_id in enumerate(ext):
        behaviour = listed[external_id]["behaviour"]
        assert behaviour["order_count"] == count[row], external_id
        assert behaviour["total_spent"] == _money(int(cents[row])), external_id

    loyal = max(np.flatnonzero(kind == "loyal_parent"), key=lambda r: count[r])
    profile = await client.get(f"/v1/customers/ext:{ext[loyal]}", headers=auth(key))
    assert profile.status_code == 200, profile.text
    assert count[loyal] > 5
    assert profile.json()["behaviour"]["order_count"] == count[loyal]
    assert profile.json()["behaviour"]["total_spent"] == _money(int(cents[loyal]))

    gifters = np.flatnonzero(kind == "one_time_gifter")
    orders_each = np.bincount(store.orders["customer_row"], minlength=len(ext))
    assert (orders_each[gifters] == 1).all()
    # A gifter's one order counts unless it was cancelled or refunded, which a few were.
    assert [listed[ext[r]]["behaviour"]["order_count"] for r in gifters] == list(count[gifters])
    assert (count[gifters] == 1).mean() > 0.8
    for r in np.flatnonzero(kind == "prospect"):
        assert listed[ext[r]]["behaviour"]["order_count"] == 0
        assert listed[ext[r]]["behaviour"]["total_spent"] == "0.00"

    repeat = {c["external_id"] for c in await _all_customers(client, key, min_orders=2)}
    assert repeat == {ext[r] for r in np.flatnonzero(count >= 2)}
    assert not repeat & {ext[r] for r in gifters}

    # Events sent with only the device's anonymous id, before sign-up or while logged out,
    # join the customer once an identified event names both ids.
    anonymous = _anonymous_events(store)
    identified = set(store.events["customer_row"][store.events["customer_row"] >= 0].tolist())
    early = [r for r, evs in anonymous.items() if r in identified and any(evs.values())]
    assert early, "the generator planted no anonymous browsing before a sign-up"
    device_ids = store.events["anonymous_id"]
    for row in early:
        timeline = await client.get(
            f"/v1/customers/ext:{ext[row]}/timeline", params={"limit": 500}, headers=auth(key)
        )
        assert timeline.status_code == 200, timeline.text
        assert timeline.json()["next_cursor"] is None
        shown = {e["id"] for e in timeline.json()["items"] if e["kind"] == "event"}
        before_sign_up = {i for i, before in anonymous[row].items() if before}
        assert before_sign_up <= shown
        mine = store.events["id"][device_ids == store.customers["anonymous_id"][row]]
        assert shown == set(mine.astype("U").tolist())  # every event of their device, no other

    stitched = sum(len(evs) for r, evs in anonymous.items() if r in identified)
    counts_now = await _table_counts(owner_engine, tenant.tenant_id)
    assert (
        counts_now["stitched_events"] == int((store.events["customer_row"] >= 0).sum()) + stitched
    )


async def test_loading_the_same_demo_store_twice_changes_nothing(
    app, client, make_tenant, owner_engine
):
    store = generate(DemoConfig(n_customers=80, seed=SEED))
    tenant = await make_tenant()
    first = await load(app.state.sessionmaker, tenant.tenant_id, store, batch=150)
    tables = await _table_counts(owner_engine, tenant.tenant_id)
    assert tables["orders"] == store.sizes["orders"]
    assert tables["order_items"] == store.sizes["order_items"]
    assert tables["events"] == store.sizes["events"]

    def timeless(customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for c in customers:
            for field in CLOCK_FIELDS:
                c["behaviour"].pop(field)
        return sorted(customers, key=lambda c: c["external_id"])

    profiles = timeless(await _all_customers(client, tenant.api_key))
    again = await load(app.state.sessionmaker, tenant.tenant_id, store, batch=150)
    assert again == first
    assert await _table_counts(owner_engine, tenant.tenant_id) == tables
    assert timeless(await _all_customers(client, tenant.api_key)) == profiles


async def test_a_store_the_api_would_refuse_fails_loudly_before_writing(
    app, client, make_tenant, store
):
    tenant = await make_tenant()
    future = dataclasses.replace(
        store, config=dataclasses.replace(store.config, end=datetime.now(UTC) + timedelta(days=9))
    )
    with pytest.raises(DemoDataError, match="in the future"):
        await load(app.state.sessionmaker, tenant.tenant_id, future)

    n = store.customers.n_rows
    columns = {name: store.customers[name] for name in store.customers}
    broken = dataclasses.replace(
        store, customers=Table(n, {**columns, "country": np.full(n, b"XX", "S2")})
    )
    with pytest.raises(DemoDataError, match=r"customers row .*\(c-000001\)"):
        await load(app.state.sessionmaker, tenant.tenant_id, broken)
    assert await _all_customers(client, tenant.api_key) == []


async def test_portrait_demo_prints_json_last_and_the_key_reads_the_customers(
    settings, client, tmp_path
):
    env = {**os.environ, "DATABASE_URL": settings.database.url, "PORTRAIT_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "services.cli", "demo", "--customers", "50", "--slug", "cli"]
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=True, cwd=ROOT
    )
    lines = out.stdout.strip().splitlines()
    assert any(line.strip().startswith("events: ") for line in lines)  # progress was shown
    created = json.loads(lines[-1])
    assert set(created) == {"tenant_id", "api_key", "webhook_secret"}
    customers = await _all_customers(client, created["api_key"])
    assert len(customers) == 50
    assert sum(c["behaviour"]["order_count"] for c in customers) > 50

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode != 0
    assert "exists already" in again.stderr
