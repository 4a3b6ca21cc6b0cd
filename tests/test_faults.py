"""Faults with real processes: a worker killed with SIGKILL in the middle of a job, Redis
stopped under incoming writes, PostgreSQL restarted under load. Each test starts the servers
and processes it disturbs itself (never the machine's own servers) and bounds every wait."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from services.api.app import create_app
from shared.embedded import EmbeddedRedis, start_postgres
from tests.factories.segments import member_ids
from tests.factories.store import customer
from tests.helpers import auth, poll, run_burst
from tests.processes import portrait_env, start_api, start_worker

pytestmark = pytest.mark.faults

# A killed worker's job goes to another worker after the longest job timeout + 10 s.
FAST_RECOVERY = {"PORTRAIT_WORKER__MAX_JOB_TIMEOUT_S": "3"}


async def _waiting_on(owner_engine, table: str) -> int:
    """Backends of this database waiting for a lock on `table`: the job is mid-way."""
    async with owner_engine.connect() as conn:
        return await conn.scalar(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = :table AND NOT l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"table": table},
        )


async def _job(client, tenant, job_id: str) -> dict:
    return (await client.get(f"/v1/jobs/{job_id}", headers=auth(tenant.api_key))).json()


async def _kill_mid_job(client, owner_engine, logs, tenant, table: str, start_job) -> dict:
    """Hold `table` locked so the job stops half-way, kill -9 its worker there, then let a
    fresh worker pick the job up again. Returns the finished job."""
    async with owner_engine.connect() as lock:
        await lock.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        job_id = await start_job()
        worker = start_worker(logs, FAST_RECOVERY)
        try:
            await poll(lambda: _waiting_on(owner_engine, table), timeout=30)
            assert (await _job(client, tenant, job_id))["status"] == "running"
        finally:
            worker.kill9()
        await lock.rollback()
    again = start_worker(logs, FAST_RECOVERY)
    try:
        done = await poll(lambda: _finished(client, tenant, job_id), timeout=45, every=0.2)
    finally:
        again.stop()
    assert done["status"] == "succeeded", done
    return done


async def _finished(client, tenant, job_id: str) -> dict | None:
    job = await _job(client, tenant, job_id)
    return job if job["status"] in ("succeeded", "failed", "cancelled") else None


def _store(n: int) -> list[dict]:
    return [
        customer(f"c-{i}", country="VN" if i % 3 else "US", email=f"c{i}@example.com")
        for i in range(n)
    ]


async def _segment_with_new_customers(client, tenant, worker_factory) -> str:
    """A rule segment made while the store is empty, then customers arrive: the next
    refresh has real work to do."""
    h = auth(tenant.api_key)
    r = await client.post(
        "/v1/segments",
        json={"name": "Vietnam", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    await run_burst(worker_factory)
    for body in _store(60):
        assert (await client.post("/v1/customers", json=body, headers=h)).status_code == 201
    return r.json()["id"]


async def test_a_worker_killed_mid_refresh_gives_the_undisturbed_result(
    client, make_tenant, owner_engine, worker_factory, tmp_path
):
    calm, hit = await make_tenant(), await make_tenant()
    calm_segment = await _segment_with_new_customers(client, calm, worker_factory)
    hit_segment = await _segment_with_new_customers(client, hit, worker_factory)

    r = await client.post(f"/v1/segments/{calm_segment}/refresh", headers=auth(calm.api_key))
    await run_burst(worker_factory)
    calm_job = await _job(client, calm, r.json()["job_id"])

    async def start() -> str:
        r = await client.post(f"/v1/segments/{hit_segment}/refresh", headers=auth(hit.api_key))
        assert r.status_code == 202, r.text
        return r.json()["job_id"]

    hit_job = await _kill_mid_job(client, owner_engine, tmp_path, hit, "segment_members", start)
    assert hit_job["result"] == {**calm_job["result"], "segment_id": hit_segment}
    expected = await member_ids(client, calm, calm_segment)
    assert len(expected) == 40
    assert await member_ids(client, hit, hit_segment) == expected
    async with owner_engine.connect() as conn:
        twice = await conn.scalar(
            text(
                "SELECT count(*) FROM (SELECT customer_id FROM segment_members "
                "WHERE segment_id = :s AND left_at IS NULL GROUP BY customer_id "
                "HAVING count(*) > 1) d"
            ),
            {"s": hit_segment},
        )
    assert twice == 0


async def _import(client, tenant, body: bytes) -> str:
    r = await client.post(
        "/v1/imports?kind=customers",
        content=body,
        headers={**auth(tenant.api_key), "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


async def _customers(owner_engine, tenant_id) -> list[tuple]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT external_id, email, country FROM customers "
                "WHERE tenant_id = :t AND external_id IS NOT NULL ORDER BY external_id"
            ),
            {"t": tenant_id},
        )
        return [tuple(r) for r in rows]


async def test_a_worker_killed_mid_import_gives_the_undisturbed_result(
    client, make_tenant, owner_engine, worker_factory, tmp_path
):
    lines = [json.dumps(c) for c in _store(300)]
    lines.insert(10, '{"external_id": "bad", "email": "not an email", "created_at": "soon"}')
    body = "\n".join(lines).encode()
    calm, hit = await make_tenant(), await make_tenant()
    calm_job_id = await _import(client, calm, body)
    await run_burst(worker_factory)
    calm_job = await _job(client, calm, calm_job_id)
    assert calm_job["status"] == "succeeded"

    async def start() -> str:
        return await _import(client, hit, body)

    hit_job = await _kill_mid_job(client, owner_engine, tmp_path, hit, "customers", start)
    assert hit_job["result"] == calm_job["result"]
    expected = await _customers(owner_engine, calm.tenant_id)
    assert len(expected) == 300
    got = await _customers(owner_engine, hit.tenant_id)
    assert got == expected  # no row twice, no row missing


async def _bounded(awaitable, seconds: float = 10.0):
    """Every request under a fault has a deadline: a hang fails the test, it does not stall."""
    return await asyncio.wait_for(awaitable, timeout=seconds)


async def test_writes_keep_succeeding_while_redis_is_away_and_jobs_run_after(
    settings, owner_engine, make_tenant, tmp_path
):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_url = redis_server.start()
    own = settings.model_copy(deep=True)
    own.redis.url = redis_url
    own.worker.queue_name = f"portrait:faults:{secrets.token_hex(4)}"
    env = {"REDIS_URL": redis_url, "PORTRAIT_WORKER__QUEUE_NAME": own.worker.queue_name}
    app = create_app(own)
    tenant = await make_tenant()
    h = auth(tenant.api_key)
    worker = start_worker(tmp_path, env)
    restarted = 0
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                r = await _bounded(
                    client.post(
                        "/v1/segments",
                        json={
                            "name": "VN",
                            "condition": {"fact": "country", "op": "eq", "value": "VN"},
                        },
                        headers=h,
                    )
                )
                assert r.status_code == 201, r.text
                segment_id = r.json()["id"]

                redis_server.stop()
                job_ids = []
                for n in range(10):
                    r = await _bounded(
                        client.post("/v1/customers", json=customer(f"c-{n}"), headers=h)
                    )
                    assert r.status_code == 201, r.text
                    r = await _bounded(client.post(f"/v1/segments/{segment_id}/refresh", headers=h))
                    assert r.status_code == 202, r.text
                    job_ids.append(r.json()["job_id"])
                line = json.dumps(customer(f"imported-{n}")).encode()
                r = await _bounded(
                    client.post(
                        "/v1/imports?kind=customers",
                        content=line,
                        headers={**h, "content-type": "application/x-ndjson"},
                    )
                )
                assert r.status_code == 202, r.text
                job_ids.append(r.json()["job_id"])

                redis_server.start()

                async def all_done() -> bool:
                    nonlocal worker, restarted
                    if worker.proc is not None and worker.proc.poll() is not None:
                        # What `portrait up` (or any supervisor) does with a worker that exited.
                        restarted += 1
                        worker = start_worker(tmp_path, env)
                    statuses = [
                        (await client.get(f"/v1/jobs/{j}", headers=h)).json()["status"]
                        for j in job_ids
                    ]
                    assert "failed" not in statuses, statuses
                    return all(s == "succeeded" for s in statuses)

                await poll(all_done, timeout=45, every=0.3)
                got = (await client.get(f"/v1/segments/{segment_id}", headers=h)).json()
                assert got["size"] == 11
    finally:
        worker.stop()
        redis_server.stop()
    print(f"worker restarts after the Redis outage: {restarted}")


async def test_the_api_answers_503_while_postgres_restarts_and_recovers_by_itself(
    settings, tmp_path
):
    # A PostgreSQL of this test's own (a short path: its unix socket lives there).
    pg_dir = Path(tempfile.mkdtemp(prefix="pgf-", dir="/tmp"))
    url, server = start_postgres(pg_dir)
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": settings.redis.url,
        "PORTRAIT_WORKER__QUEUE_NAME": f"portrait:faults:{secrets.token_hex(4)}",
    }
    api = None
    try:
        created = subprocess.run(
            [sys.executable, "-m", "services.cli", "tenants", "create", "faults"],
            env=portrait_env(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        key = json.loads(created.stdout.strip().splitlines()[-1])["api_key"]
        api, base_url = start_api(tmp_path, env, workers=1)
        answers: list[tuple[str, int, str, str | None]] = []
        phase = "before"

        async def hammer(client: httpx.AsyncClient) -> None:
            while phase != "done":
                started = time.monotonic()
                # Bounded: a hang is a failure (httpx raises), never a stalled test.
                r = await client.get("/v1/customers?limit=5")
                assert time.monotonic() - started < 8
                answers.append(
                    (phase, r.status_code, r.headers["content-type"], r.headers.get("retry-after"))
                )
                await asyncio.sleep(0.02)

        async with httpx.AsyncClient(
            base_url=base_url, headers=auth(key), timeout=httpx.Timeout(8.0)
        ) as client:
            load = [asyncio.create_task(hammer(client)) for _ in range(4)]
            await asyncio.sleep(1.0)
            phase = "away"
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(3.0)
            await asyncio.to_thread(server.start)
            phase = "back"

            async def recovered() -> bool:
                return bool(answers) and answers[-1][0] == "back" and answers[-1][1] == 200

            try:
                await poll(recovered, timeout=30, every=0.1)
            finally:
                phase = "done"
                await asyncio.gather(*load)

        assert api.proc is not None
        assert api.proc.poll() is None  # the same process all along: no restart needed
        statuses = Counter((p, s) for p, s, _, _ in answers)
        assert statuses[("before", 200)] > 0
        away = [a for a in answers if a[0] == "away"]
        assert {s for _, s, _, _ in away} <= {200, 503}, statuses  # 200: before the stop bit
        unavailable = [a for a in away if a[1] == 503]
        assert unavailable, statuses
        assert all(c.startswith("application/problem+json") and r for _, _, c, r in unavailable)
        assert {s for p, s, _, _ in answers if p == "back"} <= {200, 503}, statuses
    finally:
        if api is not None:
            api.stop()
        server.cleanup()
