"""Graceful worker shutdown, retries with a maximum, and what the queue holds: a running job
either finishes or is handed back and finished by the next worker; a job that exhausts its
tries is kept as failed with its error; arq's Redis data holds ids only."""

from __future__ import annotations

import asyncio
import signal
import uuid

from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from sqlalchemy import text

from shared.jobs.queue import make_redis
from tests.factories.jobs import create_job
from tests.helpers import auth, poll, run_burst


async def _job(client, key, job_id):
    r = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()


async def _running(client, key, job_id):
    job = await _job(client, key, job_id)
    return job["status"] == "running" and job["progress"] > 0


async def test_a_job_running_at_shutdown_is_handed_back_and_finished_by_the_next_worker(
    app, client, tenant, worker_factory
):
    job_id = await create_job(app.state.queue, tenant.tenant_id, steps=60, step_s=0.05)
    # A grace period shorter than the job: SIGTERM stops picking jobs, waits 1 s, then
    # cancels the running one.
    worker = worker_factory(job_completion_wait=1, cron_jobs=[])
    task = asyncio.create_task(worker.async_run())
    try:
        await poll(lambda: _running(client, tenant.api_key, job_id), timeout=30, every=0.02)
        worker.handle_sig_wait_for_completion(signal.SIGTERM)  # what SIGTERM calls
        done, _ = await asyncio.wait({task}, timeout=30)
        assert done, "the worker did not stop"
    finally:
        await worker.close()
    handed_back = await _job(client, tenant.api_key, job_id)
    assert handed_back["status"] == "queued", handed_back
    assert handed_back["attempts"] == 0  # an interrupted attempt is not a failed one

    await run_burst(worker_factory, cron_jobs=[])
    done = await _job(client, tenant.api_key, job_id)
    assert done["status"] == "succeeded"
    assert done["result"] == {"steps": 60, "attempt": 1}


async def test_a_stopping_worker_lets_a_running_job_finish_within_its_grace(
    app, client, tenant, worker_factory
):
    job_id = await create_job(app.state.queue, tenant.tenant_id, steps=20, step_s=0.05)
    later = await create_job(app.state.queue, tenant.tenant_id, steps=1)
    worker = worker_factory(max_jobs=1, job_completion_wait=30, cron_jobs=[])
    task = asyncio.create_task(worker.async_run())
    try:
        await poll(lambda: _running(client, tenant.api_key, job_id), timeout=30, every=0.02)
        worker.handle_sig_wait_for_completion(signal.SIGTERM)  # what SIGTERM calls
        done, _ = await asyncio.wait({task}, timeout=30)
        assert done, "the worker did not stop"
    finally:
        await worker.close()
    assert (await _job(client, tenant.api_key, job_id))["status"] == "succeeded"
    # The job not yet started stays queued for the next worker.
    assert (await _job(client, tenant.api_key, later))["status"] == "queued"


async def test_a_job_that_exhausts_its_tries_is_failed_with_its_error_and_listed(
    app, client, tenant, worker_factory
):
    from shared.jobs import runner

    job_id = await create_job(app.state.queue, tenant.tenant_id, transient_failures=10)
    worker = worker_factory(cron_jobs=[])
    task = asyncio.create_task(worker.main())
    backoff = runner.backoff_s
    runner.backoff_s = lambda attempt: 0.05  # type: ignore[assignment]
    try:

        async def failed():
            job = await _job(client, tenant.api_key, job_id)
            return job["status"] == "failed" and job

        job = await poll(failed, timeout=30)
    finally:
        runner.backoff_s = backoff  # type: ignore[assignment]
        task.cancel()
        await worker.close()
    assert job["attempts"] == 5  # system.selftest allows 5 tries
    assert job["error"] == {"type": "retryable", "detail": "planned transient failure 5 of 10"}
    listed = await client.get("/v1/jobs?status=failed", headers=auth(tenant.api_key))
    assert [j["job_id"] for j in listed.json()["items"]] == [str(job_id)]


async def test_a_job_lost_with_its_worker_every_time_is_failed_not_run_forever(
    app, client, tenant, worker_factory, owner_engine
):
    job_id = await create_job(app.state.queue, tenant.tenant_id)
    # As if five workers had each been killed mid-run: running, every try spent.
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET status = 'running', attempts = 5 WHERE id = :i"), {"i": job_id}
        )
    await run_burst(worker_factory, cron_jobs=[])
    job = await _job(client, tenant.api_key, job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "attempts-exhausted"


async def test_queued_jobs_hold_ids_only_in_redis(app, client, tenant, settings):
    await client.post(
        "/v1/customers",
        json={"external_id": "c-1", "email": "an@example.com"},
        headers=auth(tenant.api_key),
    )
    r = await client.post(
        "/v1/imports?kind=customers",
        content=b"external_id,email,first_name\nc-2,someone@example.com,Binh\n",
        headers={**auth(tenant.api_key), "content-type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    redis = make_redis(settings)
    try:
        raw = await redis.get(job_key_prefix + r.json()["job_id"])
        keys = [k.decode() async for k in redis.scan_iter(match="arq:*")]
    finally:
        await redis.aclose()
    job = deserialize_job(raw)
    assert job.args == (r.json()["job_id"], str(tenant.tenant_id))
    assert not job.kwargs
    for value in job.args:
        uuid.UUID(value)
    for key in keys:
        assert "@" not in key
        assert "Binh" not in key
    assert b"someone@example.com" not in raw
