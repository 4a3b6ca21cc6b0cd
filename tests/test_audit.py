"""The audit log: every change through the API names its key, action and object, in the
change's own transaction; readable by admin keys only; never holds written values."""

from __future__ import annotations

from fastapi.routing import APIRoute
from sqlalchemy import text

from services.api.auditing import audited, describe
from tests.factories.store import customer
from tests.helpers import auth
from tests.test_auth import assert_problem

RULE = {"all": [{"fact": "country", "op": "eq", "value": "VN"}]}

# Routes that take a POST but change nothing, so they leave no entry.
READ_ONLY = {
    ("POST", "/v1/segments/preview"),
    ("POST", "/v1/segments/compare"),
    # Respondents answering a survey: no API key, so no key to name (the response itself
    # records when and through which invitation it came).
    ("POST", "/v1/public/responses/{token}"),
}


async def _entries(client, tenant, **params) -> list[dict]:
    r = await client.get("/v1/audit-log", headers=auth(tenant.api_key), params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_changes_are_logged_with_key_action_and_object(client, tenant):
    h = auth(tenant.api_key)
    made = await client.post("/v1/customers", json=customer("c-1", email="an@x.example"), headers=h)
    customer_id = made.json()["customer"]["id"]
    seg = (
        await client.post("/v1/segments", json={"name": "VN", "condition": RULE}, headers=h)
    ).json()
    await client.patch(f"/v1/segments/{seg['id']}", json={"name": "Vietnam"}, headers=h)
    await client.patch("/v1/customers/ext:c-1", json={"city": "Hue"}, headers=h)
    assert (await client.delete("/v1/customers/ext:c-1", headers=h)).status_code == 204
    me = (await client.get("/v1/api-keys", headers=h)).json()["items"][0]["id"]

    entries = await _entries(client, tenant)
    assert [(e["action"], e["object_id"]) for e in entries] == [
        ("customers.delete", customer_id),
        ("customers.update", customer_id),
        ("segments.update", seg["id"]),
        ("segments.create", seg["id"]),
        ("customers.create", customer_id),
    ]
    assert {e["key_id"] for e in entries} == {me}
    assert all(e["request_id"] for e in entries)
    assert entries[0]["route"] == "/v1/customers/{customer_id}"


async def test_no_personal_values_are_logged(client, tenant, owner_engine):
    h = auth(tenant.api_key)
    # An external id no hexadecimal id can contain (ids and request ids are in the dump too).
    await client.post(
        "/v1/customers", json=customer("zq-person-77", email="secret.person@x.example"), headers=h
    )
    await client.delete("/v1/customers/ext:zq-person-77", headers=h)
    async with owner_engine.connect() as conn:
        dump = await conn.scalar(text("SELECT string_agg(audit_log::text, ' ') FROM audit_log"))
    assert "secret.person" not in dump
    assert "zq-person-77" not in dump


async def test_a_failed_change_leaves_no_entry(client, tenant):
    h = auth(tenant.api_key)
    assert_problem(await client.delete("/v1/customers/ext:nobody", headers=h), 404)
    assert_problem(await client.post("/v1/segments", json={"name": "x"}, headers=h), 422)
    assert await _entries(client, tenant) == []


async def test_the_log_is_paged_filtered_and_per_tenant(client, tenant, make_tenant):
    h = auth(tenant.api_key)
    for i in range(3):
        await client.post("/v1/customers", json=customer(f"c-{i}"), headers=h)
    await client.post("/v1/analyses/customer-value", json={}, headers=h)
    first = (await client.get("/v1/audit-log?limit=2", headers=h)).json()
    second = (
        await client.get(f"/v1/audit-log?limit=2&cursor={first['next_cursor']}", headers=h)
    ).json()
    assert len(first["items"]) == 2
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None
    jobs = await _entries(client, tenant, object_type="analyses")
    assert [e["action"] for e in jobs] == ["analyses.customer-value"]
    other = await make_tenant()
    assert await _entries(client, other) == []


def test_describe_names_actions_after_routes():
    assert describe("POST", "/v1/segments") == ("segments", "segments.create")
    assert describe("DELETE", "/v1/customers/{customer_id}") == ("customers", "customers.delete")
    assert describe("POST", "/v1/segments/{segment_id}/refresh") == ("segments", "segments.refresh")
    assert describe("POST", "/v1/jobs/{job_id}/cancel") == ("jobs", "jobs.cancel")


def _routes(app):
    """Every API route, as FastAPI resolves them (included routers flattened)."""
    from services.api.app import API_ROUTERS

    for router in API_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield route


async def test_every_keyed_route_that_changes_something_is_audited(app):
    missing = []
    for route in _routes(app):
        for method in route.methods - {"GET", "HEAD", "OPTIONS"}:
            if (method, route.path) in READ_ONLY:
                continue
            if not any(d.call is audited for d in route.dependant.dependencies):
                missing.append((method, route.path))
    assert missing == []
