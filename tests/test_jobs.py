"""Job lifecycle end to end: API -> outbox -> arq -> a real worker -> the job row."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from shared.embedded import EmbeddedRedis
from shared.jobs.queue import JobQueue, make_redis
from tests.factories.jobs import create_job
from tests.helpers import auth, poll, run_burst
from tests.test_auth import assert_problem


async def _job(client, key, job_id):
    response = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_job_runs_to_success_through_the_worker(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id, steps=4)
    queued = await _job(client, tenant.api_key, job_id)
    assert queued["status"] == "queued"
    assert queued["progress"] == 0

    await run_burst(worker_factory)

    done = await _job(client, tenant.api_key, job_id)
    assert done["status"] == "succeeded"
    assert done["progress"] == 1
    assert done["result"] == {"steps": 4, "attempt": 1}
    assert done["error"] is None
    assert done["attempts"] == 1
    assert done["started_at"] <= done["finished_at"]


async def test_progress_is_visible_while_running(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id, steps=100, step_s=0.05)
    worker = worker_factory()
    task = asyncio.create_task(worker.main())
    try:
        seen = await poll(
            lambda: _progress_between(client, tenant.api_key, job_id), timeout=30, every=0.02
        )
        assert 0 < seen < 1
        await poll(lambda: _status_is(client, tenant.api_key, job_id, "succeeded"))
        # The job row says succeeded before arq has recorded the result in Redis: stopping
        # the worker in between cancels arq's bookkeeping, and close() re-raises that.
        await poll(_all_done(worker))
    finally:
        task.cancel()
        await worker.close()


def _all_done(worker):
    async def check() -> bool:
        return all(t.done() for t in worker.tasks.values())

    return check


async def _progress_between(client, key, job_id):
    job = await _job(client, key, job_id)
    return job["progress"] if job["status"] == "running" and 0 < job["progress"] < 1 else None


async def _status_is(client, key, job_id, status):
    return (await _job(client, key, job_id))["status"] == status


async def test_failed_job_keeps_its_error_and_is_listed_as_failed(
    app, client, tenant, worker_factory
):
    job_id = await create_job(app.state.queue, tenant.tenant_id, fail=True)
    await run_burst(worker_factory)
    job = await _job(client, tenant.api_key, job_id)
    assert job["status"] == "failed"
    assert job["error"] == {"type": "invalid-input", "detail": "planned failure"}
    listed = await client.get("/v1/jobs?status=failed", headers=auth(tenant.api_key))
    assert [j["job_id"] for j in listed.json()["items"]] == [str(job_id)]


async def test_transient_failures_are_retried_until_success(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id, transient_failures=2)
    # arq defers each retry by the backoff; a worker that keeps polling picks them up.
    worker = worker_factory()
    task = asyncio.create_task(worker.main())
    try:
        from shared.jobs import runner

        runner_backoff = runner.backoff_s
        runner.backoff_s = lambda attempt: 0.05  # type: ignore[assignment]
        try:
            await poll(lambda: _status_is(client, tenant.api_key, job_id, "succeeded"), timeout=30)
        finally:
            runner.backoff_s = runner_backoff  # type: ignore[assignment]
    finally:
        task.cancel()
        await worker.close()
    job = await _job(client, tenant.api_key, job_id)
    assert job["attempts"] == 3
    assert job["result"]["attempt"] == 3


async def test_cancel_a_queued_job_it_never_runs(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id)
    response = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(tenant.api_key))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    await run_burst(worker_factory)
    job = await _job(client, tenant.api_key, job_id)
    assert job["status"] == "cancelled"
    assert job["attempts"] == 0


async def test_cancel_a_running_job_stops_it(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id, steps=1000, step_s=0.05)
    worker = worker_factory()
    task = asyncio.create_task(worker.main())
    try:
        await poll(lambda: _status_is(client, tenant.api_key, job_id, "running"))
        response = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(tenant.api_key))
        assert response.json()["status"] == "cancelled"
        # The worker drops the task: no job is left in progress.
        await poll(lambda: _no_tasks(worker), timeout=10)
    finally:
        task.cancel()
        await worker.close()
    job = await _job(client, tenant.api_key, job_id)
    assert job["status"] == "cancelled"
    assert job["result"] is None


async def _no_tasks(worker):
    return all(t.done() for t in worker.tasks.values())


async def test_cancelling_a_finished_job_is_409(app, client, tenant, worker_factory):
    job_id = await create_job(app.state.queue, tenant.tenant_id)
    await run_burst(worker_factory)
    assert_problem(
        await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(tenant.api_key)), 409
    )


async def test_another_tenants_job_is_404(app, client, make_tenant):
    a = await make_tenant()
    b = await make_tenant()
    job_id = await create_job(app.state.queue, b.tenant_id)
    assert_problem(await client.get(f"/v1/jobs/{job_id}", headers=auth(a.api_key)), 404)
    assert_problem(await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(a.api_key)), 404)
    assert (await client.get("/v1/jobs", headers=auth(a.api_key))).json()["items"] == []
    # ...and the job of tenant B is untouched.
    assert (await _job(client, b.api_key, job_id))["status"] == "queued"


async def test_unknown_or_malformed_job_id_is_404(client, tenant):
    for job_id in ("nope", "00000000-0000-0000-0000-000000000000"):
        assert_problem(await client.get(f"/v1/jobs/{job_id}", headers=auth(tenant.api_key)), 404)


async def test_job_list_pages_with_a_stable_cursor(app, client, tenant):
    ids = [str(await create_job(app.state.queue, tenant.tenant_id)) for _ in range(5)]
    seen, cursor = [], None
    while True:
        url = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=auth(tenant.api_key))).json()
        assert len(page["items"]) <= 2
        seen += [j["job_id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    bad = await client.get("/v1/jobs?cursor=garbage!", headers=auth(tenant.api_key))
    assert_problem(bad, 422)


async def test_a_job_delivered_twice_runs_once(app, client, tenant, worker_factory, settings):
    job_id = await create_job(app.state.queue, tenant.tenant_id)
    await run_burst(worker_factory)
    # arq delivers at least once: push the same job again under a fresh arq id.
    redis = make_redis(settings)
    await redis.enqueue_job(
        "system.selftest",
        str(job_id),
        str(tenant.tenant_id),
        _queue_name=settings.worker.queue_name,
    )
    await redis.aclose()
    await run_burst(worker_factory)
    job = await _job(client, tenant.api_key, job_id)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1


async def test_outbox_survives_a_redis_outage(app, tenant, settings, owner_engine, worker_factory):
    """Stop Redis, create a job (its commit must succeed), start Redis: the job runs."""
    import tempfile
    from pathlib import Path

    redis_server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="portrait-outage-")), persist=False)
    redis_server.start()
    outage_settings = settings.model_copy(deep=True)
    outage_settings.redis.url = redis_server.url
    queue = JobQueue(
        make_redis(outage_settings), app.state.sessionmaker, settings.worker.queue_name
    )
    try:
        redis_server.stop()
        job_id = await create_job(queue, tenant.tenant_id, steps=2)
        async with owner_engine.connect() as conn:
            waiting = (await conn.execute(text("SELECT job_id FROM job_outbox"))).scalars().all()
        assert waiting == [job_id]

        redis_server.start()  # same port, empty: the queue never saw the job
        await run_burst(worker_factory, settings=outage_settings)
    finally:
        await queue.redis.aclose()
        redis_server.stop()
    async with owner_engine.connect() as conn:
        status = await conn.scalar(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id})
        left = await conn.scalar(text("SELECT count(*) FROM job_outbox"))
    assert status == "succeeded"
    assert left == 0
