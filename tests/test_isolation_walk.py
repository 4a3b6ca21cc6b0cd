"""Tenant isolation over the whole HTTP surface: every operation in the OpenAPI document that
takes an id in its path is called with tenant A's admin key and tenant B's ids. Each must be
a 404 and leave tenant B's rows exactly as they were. The list of operations comes from
/openapi.json, so a new endpoint is walked without touching this file; a new kind of path
parameter fails loudly until an object of that kind is made below."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import text

from shared.models import Base
from tests.factories.store import customer, order
from tests.factories.surveys import active_survey, distribute
from tests.helpers import auth, run_burst
from tests.openapi_bodies import minimal, request_body
from tests.test_webhooks import send_generic

# Paths whose credential is not an API key: the webhook path names its tenant and is
# authenticated by the signature; another tenant's id with our signature is the same 401 as
# any bad signature (API.md, "Inbound webhooks").
SIGNED_PATHS = {"/v1/webhooks/{source}/{tenant_id}"}
# The survey token is the respondent's credential (no API key): a token opens its own survey
# only, which tests/test_survey_responses.py checks across tenants.
TOKEN_PATHS = {"/v1/public/responses/{token}"}
# Bodies with rules across fields, which a body made from the JSON Schema alone cannot meet
# (a valid body must reach the id lookup, or the 422 would hide a missing 404).
BODIES = {
    ("post", "/v1/surveys/{survey_id}/distributions"): {"group": "prospects"},
}


async def _tenant_objects(client, tenant, worker_factory) -> dict[str, list[str]]:
    """One object of each kind in `tenant`, and every way a path can name it."""
    h = auth(tenant.api_key)
    c = customer("b-secret-customer")
    r = await client.post("/v1/customers", json=c, headers=h)
    assert r.status_code == 201, r.text
    customer_id = r.json()["customer"]["id"]
    r = await client.post("/v1/orders", json=order("b-secret-customer"), headers=h)
    assert r.status_code in (200, 201), r.text
    order_id = r.json()["order"]["id"]
    r = await client.post(
        "/v1/segments",
        json={"name": "B's segment", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    segment_id = r.json()["id"]
    r = await client.post("/v1/segmentations", json={"method": "kmeans", "k": 2}, headers=h)
    assert r.status_code == 202, r.text
    segmentation_id, job_id = r.json()["id"], r.json()["job_id"]
    survey = await active_survey(client, tenant)
    distribution = await distribute(client, tenant, survey["id"], group="prospects")
    r = await client.post(
        "/v1/interviews",
        json={"customer_id": customer_id, "interviewed_at": "2026-11-02T10:00:00Z",
              "notes": "B's notes", "tags": ["goal"]},
        headers=h,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    interview_id = r.json()["id"]
    r = await client.post(
        "/v1/funnels",
        json={"name": "B's funnel", "steps": [{"event": "page_view"}, {"event": "purchase"}],
              "window_seconds": 86400, "date_range": {"last_days": 30}},
        headers=h,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    funnel_id = r.json()["id"]
    r = await client.post(f"/v1/funnels/{funnel_id}/runs", json={}, headers=h)
    assert r.status_code == 202, r.text
    funnel_run_id = r.json()["run_id"]
    r = await client.post("/v1/personas/generate", json={"segment_ids": [segment_id]}, headers=h)
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    r = await client.get("/v1/personas", headers=h)
    persona_id = r.json()["items"][0]["id"]
    r = await client.post(
        "/v1/api-keys", json={"name": "B's other key", "scopes": ["read"]}, headers=h
    )
    assert r.status_code == 201, r.text
    key_id = r.json()["id"]
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example/b", "events": ["job.finished"]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    return {
        "customer_id": [customer_id, "ext:b-secret-customer"],
        "order_id": [order_id],
        "segment_id": [segment_id],
        "segmentation_id": [segmentation_id],
        "job_id": [job_id],
        "run_id": [job_id, funnel_run_id],
        "survey_id": [survey["id"]],
        "distribution_id": [distribution["id"]],
        "interview_id": [interview_id],
        "funnel_id": [funnel_id],
        "persona_id": [persona_id],
        "key_id": [key_id],
        "endpoint_id": [endpoint_id],
    }


async def _snapshot(owner_engine, tenant_id: str) -> dict[str, str]:
    """A digest of every row tenant B owns, table by table."""
    digests = {}
    async with owner_engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            column = (
                "tenant_id" if "tenant_id" in table.c else "id" if table.name == "tenants" else None
            )
            if column is None:
                continue
            rows = await conn.scalar(
                text(
                    f"SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM {table.name} t "
                    f"WHERE {column} = :tenant"
                ),
                {"tenant": tenant_id},
            )
            digests[table.name] = hashlib.sha256((rows or "").encode()).hexdigest()
    return digests


def _operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            if params:
                yield path, method, operation, [p["name"] for p in params]


def _fill(path: str, names: list[str], ids: dict[str, list[str]]) -> list[str]:
    urls = [path]
    for name in names:
        assert name in ids, (
            f"{path}: no object of kind {name!r} is made in tenant B; add one to _tenant_objects"
        )
        urls = [u.replace("{" + name + "}", value) for u in urls for value in ids[name]]
    return urls


async def test_another_tenants_ids_are_404_everywhere_and_change_nothing(
    client, make_tenant, owner_engine, worker_factory
):
    a, b = await make_tenant(), await make_tenant()
    ids = await _tenant_objects(client, b, worker_factory)
    document = (await client.get("/openapi.json")).json()
    before = await _snapshot(owner_engine, b.tenant_id)

    walked = []
    for path, method, operation, names in _operations(document):
        if path in SIGNED_PATHS or path in TOKEN_PATHS:
            continue
        body = request_body(document, operation)
        if (method, path) in BODIES:
            body = ("application/json", BODIES[(method, path)])
        for url in _fill(path, names, ids):
            kwargs: dict[str, Any] = {"headers": auth(a.api_key)}
            # Required query parameters get a minimal valid value (`step=1`), so the request
            # reaches the id lookup.
            kwargs["params"] = {
                p["name"]: minimal(document, p.get("schema", {}))
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            if body is not None:
                media_type, payload = body
                kwargs["headers"]["Content-Type"] = media_type
                kwargs["content"] = payload if isinstance(payload, str) else json.dumps(payload)
            r = await client.request(method.upper(), url, **kwargs)
            assert r.status_code == 404, f"{method.upper()} {url}: {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json")
            walked.append(f"{method.upper()} {path}")

    assert await _snapshot(owner_engine, b.tenant_id) == before
    # The walk really covered the id-taking surface (a guard against an empty document).
    assert {"GET /v1/customers/{customer_id}", "DELETE /v1/segments/{segment_id}"} <= set(walked)
    # And tenant B still sees its own objects.
    for kind, path in [("customer_id", "/v1/customers/"), ("segment_id", "/v1/segments/")]:
        r = await client.get(path + ids[kind][0], headers=auth(b.api_key))
        assert r.status_code == 200


async def test_ids_of_another_tenant_in_a_body_are_404(
    client, make_tenant, owner_engine, worker_factory
):
    a, b = await make_tenant(), await make_tenant()
    ids = await _tenant_objects(client, b, worker_factory)
    before = await _snapshot(owner_engine, b.tenant_id)
    r = await client.post(
        "/v1/segments/compare",
        json={"segment_ids": ids["segment_id"]},
        headers=auth(a.api_key),
    )
    assert r.status_code == 404, r.text
    assert await _snapshot(owner_engine, b.tenant_id) == before


async def test_a_delivery_signed_by_another_tenant_is_401_and_changes_nothing(
    client, make_tenant, owner_engine, worker_factory
):
    a, b = await make_tenant(), await make_tenant()
    await _tenant_objects(client, b, worker_factory)
    before = await _snapshot(owner_engine, b.tenant_id)
    forged = {"type": "customer.updated", "data": customer("b-secret-customer", city="Forged")}
    # A's secret, B's tenant id in the path.
    r = await send_generic(client, b, forged, secret=a.webhook_secret)
    assert r.status_code == 401
    assert await _snapshot(owner_engine, b.tenant_id) == before
