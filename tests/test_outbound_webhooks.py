"""Outbound webhooks end to end: endpoints through the API, events emitted in the changing
transaction, delivered by a real worker to a real HTTP receiver that checks the signature,
retried with backoff, given up after the last attempt, visible as deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from shared.db.engine import unit_of_work
from shared.outbound.emit import emit
from tests.factories.jobs import create_job
from tests.factories.store import customer
from tests.helpers import auth, poll
from tests.receiver import Receiver, serve
from tests.test_auth import assert_problem


async def _endpoint(client, tenant, url, events=("job.finished",)) -> dict:
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "events": list(events)},
        headers=auth(tenant.api_key),
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _deliveries(client, tenant, endpoint_id) -> list[dict]:
    r = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=auth(tenant.api_key)
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _delivered(client, tenant, endpoint_id):
    """The receiver's answer is recorded too (it lands just after the receiver got it)."""
    items = await _deliveries(client, tenant, endpoint_id)
    return bool(items) and all(d["status"] == "succeeded" for d in items)


def _fast(settings, **worker):
    opts = {"outbound_interval_s": 0.05, "outbound_backoff_base_s": 0.1, **worker}
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=opts)})


@asynccontextmanager
async def _running_worker(worker_factory, settings) -> AsyncIterator[None]:
    worker = worker_factory(settings=settings, cron_jobs=[])
    task = asyncio.create_task(worker.main())
    try:
        yield
    finally:
        task.cancel()
        await worker.close()


async def test_job_finished_reaches_a_subscribed_endpoint_signed(
    app, client, tenant, worker_factory, settings
):
    async with serve(Receiver()) as receiver:
        endpoint = await _endpoint(client, tenant, receiver.url)
        receiver.secret = endpoint["secret"]
        job_id = await create_job(app.state.queue, tenant.tenant_id)
        async with _running_worker(worker_factory, _fast(settings)):
            await poll(lambda: _delivered(client, tenant, endpoint["id"]))
        assert receiver.bad_signatures == 0
        (message,) = receiver.received
        assert message["type"] == "job.finished"
        assert message["data"] == {
            "job_id": str(job_id),
            "kind": "system.selftest",
            "status": "succeeded",
        }
        (delivery,) = await _deliveries(client, tenant, endpoint["id"])
        assert delivery["id"] == message["id"]
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"] == 1
        assert delivery["last_status_code"] == 204
        assert delivery["delivered_at"] is not None


async def test_a_failing_receiver_gets_retries_until_it_answers(
    app, client, tenant, worker_factory, settings
):
    async with serve(Receiver(fail_first=2)) as receiver:
        endpoint = await _endpoint(client, tenant, receiver.url)
        receiver.secret = endpoint["secret"]
        await create_job(app.state.queue, tenant.tenant_id)
        async with _running_worker(worker_factory, _fast(settings)):
            await poll(lambda: _delivered(client, tenant, endpoint["id"]))
        assert receiver.requests == 3
        (delivery,) = await _deliveries(client, tenant, endpoint["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
        assert delivery["last_error"] is None


async def test_a_delivery_is_failed_after_its_last_attempt(
    app, client, tenant, worker_factory, settings
):
    async with serve(Receiver(always_fail=True)) as receiver:
        endpoint = await _endpoint(client, tenant, receiver.url)
        receiver.secret = endpoint["secret"]
        await create_job(app.state.queue, tenant.tenant_id)

        async def failed():
            items = await _deliveries(client, tenant, endpoint["id"])
            return items and items[0]["status"] == "failed" and items[0]

        async with _running_worker(worker_factory, _fast(settings, outbound_max_attempts=3)):
            delivery = await poll(failed)
        assert delivery["attempts"] == 3
        assert delivery["last_status_code"] == 500
        assert delivery["last_error"] == "HTTP 500"
        assert delivery["next_attempt_at"] is None
        assert receiver.requests == 3
        listed = await client.get(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=failed",
            headers=auth(tenant.api_key),
        )
        assert [d["id"] for d in listed.json()["items"]] == [delivery["id"]]


async def test_segment_refresh_announces_membership_changes(
    app, client, tenant, worker_factory, settings
):
    h = auth(tenant.api_key)
    for i in range(3):
        await client.post("/v1/customers", json=customer(f"c-{i}", country="VN"), headers=h)
    async with serve(Receiver()) as receiver:
        endpoint = await _endpoint(
            client, tenant, receiver.url, events=["segment.membership_changed"]
        )
        receiver.secret = endpoint["secret"]
        seg = await client.post(
            "/v1/segments",
            json={
                "name": "VN",
                "condition": {"all": [{"fact": "country", "op": "eq", "value": "VN"}]},
            },
            headers=h,
        )
        async with _running_worker(worker_factory, _fast(settings)):
            await poll(lambda: _delivered(client, tenant, endpoint["id"]))
        (message,) = receiver.received
        assert message["type"] == "segment.membership_changed"
        assert message["data"]["segment_id"] == seg.json()["id"]
        assert (message["data"]["entered"], message["data"]["size"]) == (3, 3)


async def test_emit_writes_only_for_enabled_subscribed_endpoints(app, client, tenant, owner_engine):
    a = await _endpoint(client, tenant, "https://a.example/hook", events=["persona.updated"])
    await _endpoint(client, tenant, "https://b.example/hook", events=["job.finished"])
    paused = await _endpoint(client, tenant, "https://c.example/hook", events=["persona.updated"])
    r = await client.patch(
        f"/v1/webhook-endpoints/{paused['id']}",
        json={"enabled": False},
        headers=auth(tenant.api_key),
    )
    assert r.json()["enabled"] is False
    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        ids = await emit(session, tenant.tenant_id, "persona.updated", {"persona_id": "p-1"})
    assert len(ids) == 1
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT endpoint_id::text FROM outbound_deliveries"))).all()
    assert [r[0] for r in rows] == [a["id"]]


async def test_emit_in_a_rolled_back_transaction_sends_nothing(app, client, tenant, owner_engine):
    await _endpoint(client, tenant, "https://a.example/hook", events=["survey.response_received"])
    try:
        async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
            await emit(session, tenant.tenant_id, "survey.response_received", {"response_id": "r"})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    async with owner_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbound_deliveries")) == 0


async def test_endpoint_crud_secret_shown_once_and_tenant_scoped(client, tenant, make_tenant):
    h = auth(tenant.api_key)
    created = await _endpoint(client, tenant, "https://shop.example/hooks")
    assert created["secret"].startswith("whsec_")
    got = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=h)
    assert "secret" not in got.json()
    listed = (await client.get("/v1/webhook-endpoints", headers=h)).json()["items"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert all("secret" not in e for e in listed)
    other = await make_tenant()
    assert_problem(
        await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=auth(other.api_key)),
        404,
    )
    assert_problem(
        await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=auth(other.api_key)),
        404,
    )
    for bad in (
        {"url": "ftp://x.example", "events": ["job.finished"]},
        {"url": "https://x.example", "events": []},
        {"url": "https://x.example", "events": ["order.created"]},
        {"url": "https://x.example/" + "a" * 2100, "events": ["job.finished"]},
        {"url": "https://x.example", "events": ["job.finished"], "description": "a\u0000"},
    ):
        assert_problem(await client.post("/v1/webhook-endpoints", json=bad, headers=h), 422)
    assert (
        await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=h)
    ).status_code == 204
    assert_problem(await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=h), 404)


async def test_a_completed_survey_response_and_a_persona_update_are_emitted(
    client, tenant, worker_factory
):
    """Surveys and personas emit their events in the changing transaction (ids only); a
    partial answer emits nothing."""
    from tests.factories.surveys import active_survey, distribute
    from tests.helpers import run_burst

    h = auth(tenant.api_key)
    hooks = await _endpoint(
        client,
        tenant,
        "https://hooks.example/portrait",
        events=("survey.response_received", "persona.updated"),
    )
    await client.post("/v1/customers", json=customer("ana"), headers=h)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    token = sent["invitations"][0]["token"]
    url = f"/v1/public/responses/{token}"
    r = await client.post(url, json={"answers": {"role": "decides"}})
    assert r.status_code == 200, r.text
    assert await _deliveries(client, tenant, hooks["id"]) == []
    r = await client.post(url, json={"answers": {"nps": 9}, "complete": True})
    assert r.status_code == 200, r.text
    [received] = await _deliveries(client, tenant, hooks["id"])
    assert received["event_type"] == "survey.response_received"
    r = await client.post(
        "/v1/segments",
        json={"name": "Everyone", "kind": "static", "customer_ids": ["ext:ana"]},
        headers=h,
    )
    segment_id = r.json()["id"]
    r = await client.post("/v1/personas/generate", json={"segment_ids": [segment_id]}, headers=h)
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    types = [d["event_type"] for d in await _deliveries(client, tenant, hooks["id"])]
    assert sorted(types) == ["persona.updated", "survey.response_received"]
