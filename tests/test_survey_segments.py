"""Segment condition "answered question Q of survey V with A": one EXISTS in the segment's
SQL, validated against the tenant's surveys (422 pointing at the node)."""

from __future__ import annotations

import secrets

import httpx
import pytest

from shared.db.engine import unit_of_work
from shared.surveys import evidence
from tests.factories.segments import create_segment, member_ids
from tests.factories.store import customer
from tests.factories.surveys import active_survey, distribute
from tests.helpers import auth
from tests.test_auth import assert_problem


@pytest.fixture
async def public(app):
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://portrait.test") as c:
        yield c


async def _answered(client, tenant, public) -> str:
    """ana and bao answered (differently); cam was invited and did not; dee is from VN."""
    h = auth(tenant.api_key)
    for ext, country in (("ana", "VN"), ("bao", "US"), ("cam", "VN"), ("dee", "DE")):
        await client.post("/v1/customers", json=customer(ext, country=country), headers=h)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    tokens = {i["external_id"]: i["token"] for i in sent["invitations"]}
    answers = {
        "ana": {
            "role": "decides",
            "nps": 10,
            "parent": True,
            "kids_ages": ["3-5", "6-12"],
            "why": "Great Quality",
        },
        "bao": {"role": "influences", "nps": 5, "parent": False, "spend": 12.5},
    }
    for ext, a in answers.items():
        r = await public.post(
            f"/v1/public/responses/{tokens[ext]}", json={"answers": a, "complete": True}
        )
        assert r.status_code == 200, r.text
    return survey["id"]


async def _preview(client, tenant, condition) -> set[str]:
    r = await client.post(
        "/v1/segments/preview",
        json={"condition": condition, "sample_size": 50},
        headers=auth(tenant.api_key),
    )
    assert r.status_code == 200, r.text
    return {c["external_id"] for c in r.json()["sample"]}


async def test_survey_answers_select_customers(client, tenant, public):
    sid = await _answered(client, tenant, public)

    def q(question, op, value=None):
        leaf = {"survey_id": sid, "question": question, "op": op}
        if value is not None:
            leaf["value"] = value
        return {"survey": leaf}

    cases = [
        (q("role", "eq", "decides"), {"ana"}),
        (q("role", "in", ["decides", "influences"]), {"ana", "bao"}),
        (q("nps", "gte", 9), {"ana"}),
        (q("nps", "lte", 6), {"bao"}),
        (q("nps", "between", [5, 10]), {"ana", "bao"}),
        (q("nps", "eq", 10), {"ana"}),
        (q("spend", "eq", 12.5), {"bao"}),
        (q("parent", "eq", True), {"ana"}),
        (q("kids_ages", "contains", "6-12"), {"ana"}),
        (q("kids_ages", "in", ["0-2", "3-5"]), {"ana"}),
        (q("why", "contains", "quality"), {"ana"}),
        (q("role", "exists"), {"ana", "bao"}),
        (q("role", "exists", False), {"cam", "dee"}),
        ({"not": q("role", "eq", "decides")}, {"bao", "cam", "dee"}),
        ({"all": [q("nps", "exists"), {"fact": "country", "op": "eq", "value": "VN"}]}, {"ana"}),
    ]
    for condition, expected in cases:
        assert await _preview(client, tenant, condition) == expected, condition


async def test_a_saved_segment_on_survey_answers_is_refreshed_by_the_worker(
    app, client, tenant, public, worker_factory
):
    sid = await _answered(client, tenant, public)
    condition = {"survey": {"survey_id": sid, "question": "nps", "op": "gte", "value": 9}}
    segment = await create_segment(
        client, tenant, worker_factory, {"name": "Promoters", "condition": condition}
    )
    assert segment["size"] == 1
    assert await member_ids(client, tenant, segment["id"]) == {"ana"}
    # Personas read the segment's answers by its id.
    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        found = await evidence.answers_for(session, tenant.tenant_id, segment["id"])
    assert {e.key: e.counts for e in found}["role"] == {"decides": 1}


async def test_bad_survey_conditions_are_422_at_the_node(client, tenant, public, make_tenant):
    sid = await _answered(client, tenant, public)
    h = auth(tenant.api_key)
    other = await make_tenant()
    foreign = await active_survey(client, other)

    def leaf(**kw):
        return {
            "survey": {"survey_id": sid, "question": "role", "op": "eq", "value": "decides", **kw}
        }

    base = ["body", "condition", "all", 1, "survey"]
    cases = [
        (leaf(survey_id=foreign["id"]), [*base, "survey_id"]),
        (leaf(survey_id="not-a-uuid"), [*base, "survey_id"]),
        (leaf(question="shoe_size"), [*base, "question"]),
        (leaf(op="gte", value=3), [*base, "op"]),
        (leaf(value="boss"), [*base, "value"]),
    ]
    for bad, loc in cases:
        condition = {"all": [{"fact": "country", "op": "eq", "value": "VN"}, bad]}
        r = await client.post("/v1/segments/preview", json={"condition": condition}, headers=h)
        assert assert_problem(r, 422)["errors"][0]["loc"] == loc, r.text
        r = await client.post("/v1/segments", json={"name": "x", "condition": condition}, headers=h)
        assert_problem(r, 422)
    # Shape errors come from the grammar itself.
    for bad in (
        leaf(op="near"),
        leaf(op="between", value=[1]),
        leaf(value=None),
        leaf(op="in", value=[]),
        leaf(value="a\u0000b"),
    ):
        r = await client.post("/v1/segments/preview", json={"condition": bad}, headers=h)
        assert_problem(r, 422)
    assert (await client.get("/v1/segments?kind=rule", headers=h)).json()["items"] == []


async def test_the_grammar_in_openapi_has_the_survey_leaf(client):
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "SurveyCondition" in schemas
    assert set(schemas["SurveyFilter"]["properties"]["op"]["enum"]) == {
        "eq",
        "in",
        "gte",
        "lte",
        "between",
        "exists",
        "contains",
    }
