"""Interviews (notes, quotes, tags) tied to customers; erasure takes them with survey
responses and invitations; export and timeline show them; evidence for personas."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import select, text

from shared.db.engine import make_sessionmaker, unit_of_work
from shared.models import Customer
from shared.surveys import evidence
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


def _interview(customer_id: str, **overrides):
    return {
        "customer_id": customer_id,
        "interviewed_at": "2026-11-02T10:00:00+07:00",
        "interviewer": "Linh",
        "notes": "Buys for the whole family; hates surprise shipping fees.",
        "quotes": [
            {"text": "I plan the week's shopping on Sunday.", "tags": ["goal"]},
            {"text": "Shipping fees at checkout make me leave.", "tags": ["pain_point"]},
        ],
        "tags": ["goal", "pain_point", "channel"],
        **overrides,
    }


async def test_interview_crud(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("ana"), headers=h)
    r = await client.post("/v1/interviews", json=_interview("ext:ana"), headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["interviewed_at"] == "2026-11-02T03:00:00Z"
    assert made["quotes"][1]["tags"] == ["pain_point"]
    assert made["tags"] == ["channel", "goal", "pain_point"]
    url = f"/v1/interviews/{made['id']}"
    patched = await client.patch(url, json={"notes": "Updated", "tags": ["objection"]}, headers=h)
    assert patched.json()["notes"] == "Updated"
    assert patched.json()["tags"] == ["objection"]
    assert patched.json()["quotes"] == made["quotes"]
    listed = (await client.get("/v1/interviews?tag=objection", headers=h)).json()
    assert [i["id"] for i in listed["items"]] == [made["id"]]
    none = (await client.get("/v1/interviews?tag=goal", headers=h)).json()
    assert none["items"] == []
    mine = (await client.get("/v1/interviews?customer_id=ext:ana", headers=h)).json()
    assert len(mine["items"]) == 1
    assert (await client.delete(url, headers=h)).status_code == 204
    assert_problem(await client.get(url, headers=h), 404)


async def test_bad_interviews_are_422_and_foreign_ones_404(client, tenant, make_tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("ana"), headers=h)
    bad = [
        (_interview("ext:nobody"), ["body", "customer_id"]),
        (_interview("ext:ana", tags=["gossip"]), ["body", "tags", 0]),
        (_interview("ext:ana", notes="a\u0000b"), ["body", "notes"]),
        (_interview("ext:ana", interviewed_at="2026-11-02T10:00:00"), ["body", "interviewed_at"]),
        (_interview("ext:ana", quotes=[{"text": "x" * 2001}]), ["body", "quotes", 0, "text"]),
    ]
    for body, loc in bad:
        r = await client.post("/v1/interviews", json=body, headers=h)
        assert assert_problem(r, 422)["errors"][0]["loc"][: len(loc)] == loc, r.text
    assert (await client.get("/v1/interviews", headers=h)).json()["items"] == []
    nul = await client.get("/v1/interviews?customer_id=ext:%00", headers=h)
    assert assert_problem(nul, 422)["errors"][0]["loc"] == ["query", "customer_id"]
    made = (await client.post("/v1/interviews", json=_interview("ext:ana"), headers=h)).json()
    other = await make_tenant()
    r = await client.get(f"/v1/interviews/{made['id']}", headers=auth(other.api_key))
    assert_problem(r, 404)


async def test_export_and_timeline_include_answers_and_interviews_and_erasure_removes_them(
    client, tenant, public, owner_engine
):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("ana"), headers=h)
    await client.post("/v1/customers", json=customer("bao"), headers=h)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    tokens = {i["external_id"]: i["token"] for i in sent["invitations"]}
    for ext in ("ana", "bao"):
        r = await public.post(
            f"/v1/public/responses/{tokens[ext]}",
            json={"answers": {"role": "decides", "nps": 9}, "complete": True},
        )
        assert r.status_code == 200
    await client.post("/v1/interviews", json=_interview("ext:ana"), headers=h)
    await client.post("/v1/interviews", json=_interview("ext:bao"), headers=h)

    export = (await client.get("/v1/customers/ext:ana/export", headers=h)).json()
    assert export["survey_responses"][0]["answers"] == {"role": "decides", "nps": 9}
    assert export["survey_responses"][0]["status"] == "completed"
    assert len(export["survey_invitations"]) == 1
    assert export["interviews"][0]["quotes"][0]["text"].startswith("I plan")
    timeline = (await client.get("/v1/customers/ext:ana/timeline", headers=h)).json()
    kinds = [e["kind"] for e in timeline["items"]]
    assert "survey_response" in kinds
    assert "interview" in kinds

    assert (await client.delete("/v1/customers/ext:ana", headers=h)).status_code == 204
    async with owner_engine.connect() as conn:
        left = {
            table: await conn.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("survey_responses", "survey_answers", "survey_invitations", "interviews")
        }
    # Only bao's remain.
    assert left == {
        "survey_responses": 1,
        "survey_answers": 2,
        "survey_invitations": 1,
        "interviews": 1,
    }
    res = (await client.get(f"/v1/surveys/{survey['id']}/results", headers=h)).json()
    assert res["responses"] == 1


async def test_evidence_for_personas(client, tenant, public, owner_engine):
    h = auth(tenant.api_key)
    for ext in ("ana", "bao", "cam"):
        await client.post("/v1/customers", json=customer(ext), headers=h)
    survey = await active_survey(client, tenant)
    tokens = {
        i["external_id"]: i["token"]
        for i in (await distribute(client, tenant, survey["id"], group="prospects"))["invitations"]
    }
    answers = {
        "ana": {"role": "decides", "nps": 10, "why": "Quality", "spend": 10},
        "bao": {"role": "influences", "nps": 6, "spend": 20},
    }
    for ext, a in answers.items():
        await public.post(
            f"/v1/public/responses/{tokens[ext]}", json={"answers": a, "complete": True}
        )
    # cam's partial answer is no evidence.
    await public.post(f"/v1/public/responses/{tokens['cam']}", json={"answers": {"nps": 0}})
    await client.post("/v1/interviews", json=_interview("ext:ana"), headers=h)
    # A select of customer ids (a segment id works too: see test_survey_segments.py).
    ana = select(Customer.id).where(
        Customer.tenant_id == tenant.tenant_id, Customer.external_id == "ana"
    )

    sessionmaker = make_sessionmaker(owner_engine)
    async with unit_of_work(sessionmaker, tenant.tenant_id) as session:
        everyone = await evidence.answers_for(session, tenant.tenant_id)
        just_ana = await evidence.answers_for(session, tenant.tenant_id, ana)
        talks = await evidence.interview_evidence(session, tenant.tenant_id)
    by_key = {e.key: e for e in everyone}
    assert by_key["role"].counts == {"decides": 1, "influences": 1}
    assert by_key["role"].self_reported is True
    assert by_key["role"].category == "financial"
    assert by_key["role"].text.startswith("Who decides")
    assert by_key["nps"].counts == {"10": 1, "6": 1}
    assert by_key["nps"].respondents == 2
    assert by_key["spend"].mean == 15.0
    assert by_key["why"].texts == ["Quality"]
    assert {e.key: e.counts for e in just_ana}["role"] == {"decides": 1}
    assert talks.interviews == 1
    assert talks.tag_counts["goal"] == 2  # the interview's tag and a quote's
    assert [q.tags for q in talks.quotes] == [["goal"], ["pain_point"]]
