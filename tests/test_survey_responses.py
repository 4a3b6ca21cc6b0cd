"""Sending surveys and answering them: single-use invitation tokens (stored as digests),
anonymous links, partial answers and resume, validation per question that stores nothing
wrong, replayed tokens, rate limits, tenant isolation, profile enrichment, and results."""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.factories.segments import create_segment
from tests.factories.store import customer, event, order
from tests.factories.surveys import active_survey, distribute
from tests.helpers import auth
from tests.test_auth import assert_problem


@pytest.fixture
async def public(app):
    """A respondent's client, from an address of its own (the per-address limit is shared)."""
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://portrait.test") as c:
        yield c


async def _people(client, tenant):
    """ana: prospect; bao: one order; cam: three orders; dan: added to cart, never bought."""
    h = auth(tenant.api_key)
    for ext in ("ana", "bao", "cam", "dan"):
        r = await client.post("/v1/customers", json=customer(ext), headers=h)
        assert r.status_code == 201, r.text
    await client.post("/v1/orders", json=order("bao"), headers=h)
    for _ in range(3):
        await client.post("/v1/orders", json=order("cam"), headers=h)
    await client.post(
        "/v1/events", json=event("add_to_cart", customer_external_id="dan"), headers=h
    )


async def _count(owner_engine, table: str, tenant) -> int:
    async with owner_engine.connect() as conn:
        return int(
            await conn.scalar(
                text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"),
                {"t": tenant.tenant_id},
            )
        )


def _tokens(sent) -> dict[str, str]:
    return {i["external_id"]: i["token"] for i in sent["invitations"]}


async def test_a_group_gets_one_single_use_token_each_stored_only_as_a_digest(
    client, tenant, owner_engine
):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    assert sent["recipients"] == 2
    tokens = _tokens(sent)
    assert set(tokens) == {"ana", "dan"}
    for inv in sent["invitations"]:
        assert inv["link"].endswith("/v1/public/responses/" + inv["token"])
    async with owner_engine.connect() as conn:
        stored = {
            bytes(r.token_hash)
            for r in await conn.execute(text("SELECT token_hash FROM survey_invitations"))
        }
        dump = await conn.scalar(text("SELECT string_agg(t::text, '') FROM survey_invitations t"))
    assert stored == {hashlib.sha256(t.encode()).digest() for t in tokens.values()}
    assert all(t not in dump for t in tokens.values())
    # Recipients are paged; tokens are not shown again.
    h = auth(tenant.api_key)
    url = f"/v1/surveys/{survey['id']}/distributions/{sent['id']}/recipients?limit=1"
    first = (await client.get(url, headers=h)).json()
    second = (await client.get(f"{url}&cursor={first['next_cursor']}", headers=h)).json()
    seen = {r["external_id"] for r in first["items"] + second["items"]}
    assert seen == {"ana", "dan"}
    assert second["next_cursor"] is None
    assert "token" not in first["items"][0]
    assert first["items"][0]["status"] == "invited"


async def test_built_in_groups_and_saved_segments(client, tenant, worker_factory):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    expected = {
        "frequent_buyers": {"cam"},
        "one_time_buyers": {"bao"},
        "cart_abandoners": {"dan"},
        "prospects": {"ana", "dan"},
    }
    for group, who in expected.items():
        sent = await distribute(client, tenant, survey["id"], group=group)
        assert set(_tokens(sent)) == who, group
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "kind": "static", "customer_ids": ["ext:ana", "ext:cam"]},
    )
    sent = await distribute(client, tenant, survey["id"], segment_id=segment["id"])
    assert set(_tokens(sent)) == {"ana", "cam"}
    assert sent["audience"] == {"segment_id": segment["id"]}


async def test_invitations_export_as_csv(client, tenant):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    r = await client.post(
        f"/v1/surveys/{survey['id']}/distributions",
        json={"group": "prospects"},
        headers={**auth(tenant.api_key), "Accept": "text/csv"},
    )
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["external_id"] for row in rows} == {"ana", "dan"}
    assert all(row["token"].startswith("pts_") for row in rows)


async def test_only_an_active_survey_is_sent_and_audiences_must_exist(client, tenant):
    h = auth(tenant.api_key)
    draft = (
        await client.post(
            "/v1/surveys",
            json={"title": "d", "questions": [{"key": "a", "text": "a", "type": "yes_no"}]},
            headers=h,
        )
    ).json()
    r = await client.post(
        f"/v1/surveys/{draft['id']}/distributions", json={"group": "prospects"}, headers=h
    )
    assert_problem(r, 409)
    survey = await active_survey(client, tenant)
    url = f"/v1/surveys/{survey['id']}/distributions"
    bad = await client.post(url, json={"segment_id": str(uuid.uuid4())}, headers=h)
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["body", "segment_id"]
    assert_problem(await client.post(url, json={"group": "vips"}, headers=h), 422)
    assert_problem(await client.post(url, json={}, headers=h), 422)


async def test_partial_answers_resume_and_a_used_token_cannot_answer_again(
    client, tenant, public, owner_engine
):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    token = _tokens(await distribute(client, tenant, survey["id"], group="one_time_buyers"))["bao"]
    url = f"/v1/public/responses/{token}"
    fetched = (await public.get(url)).json()
    assert fetched["status"] == "new"
    assert [q["key"] for q in fetched["questions"]][0] == "role"
    r = await public.post(url, json={"answers": {"role": "influences", "parent": True}})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "partial"
    resumed = (await public.get(url)).json()
    assert resumed["status"] == "partial"
    assert resumed["answers"] == {"role": "influences", "parent": True}
    done = await public.post(
        url, json={"answers": {"kids_ages": ["3-5"], "nps": 10}, "complete": True}
    )
    assert done.status_code == 200, done.text
    assert done.json()["answers"] == {
        "role": "influences",
        "parent": True,
        "kids_ages": ["3-5"],
        "nps": 10,
    }
    replay = await public.post(url, json={"answers": {"nps": 0}, "complete": True})
    assert "once" in assert_problem(replay, 409)["detail"]
    async with owner_engine.connect() as conn:
        nps = await conn.scalar(
            text("SELECT value_number FROM survey_answers WHERE question_key='nps'")
        )
        statuses = (await conn.execute(text("SELECT status FROM survey_responses"))).scalars().all()
    assert nps == 10
    assert statuses == ["completed"]
    h = auth(tenant.api_key)
    dists = (await client.get(f"/v1/surveys/{survey['id']}/distributions", headers=h)).json()
    recipients = (
        await client.get(
            f"/v1/surveys/{survey['id']}/distributions/{dists['items'][0]['id']}/recipients",
            headers=h,
        )
    ).json()
    assert recipients["items"][0]["status"] == "completed"


BAD_ANSWERS = [
    ({"nps": "ten"}, "nps", "whole number"),
    ({"nps": 11}, "nps", "0 to 10"),
    ({"nps": 9.5}, "nps", "whole number"),
    ({"csat": 0}, "csat", "1 to 5"),
    ({"role": "boss"}, "role", "one of"),
    ({"kids_ages": ["0-2", "40+"]}, "kids_ages", "unknown choice"),
    ({"parent": "yes"}, "parent", "true or false"),
    ({"spend": -5}, "spend", "at least 0"),
    ({"spend": True}, "spend", "number"),
    ({"birthday": "31/12/1990"}, "birthday", "YYYY-MM-DD"),
    ({"why": "x" * 5001}, "why", "at most 5000"),
    ({"why": "nul \u0000 here"}, "why", "NUL"),
    ({"why": "   "}, "why", "non-empty"),
    ({"shoe_size": 42}, "shoe_size", "no such question"),
]


async def test_bad_answers_are_422_at_the_question_and_store_nothing(
    client, tenant, public, owner_engine
):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    token = _tokens(await distribute(client, tenant, survey["id"], group="one_time_buyers"))["bao"]
    url = f"/v1/public/responses/{token}"
    for answers, key, message in BAD_ANSWERS:
        # A good answer in the same request is not stored either: all or nothing.
        r = await public.post(url, json={"answers": {"role": "decides", **answers}})
        body = assert_problem(r, 422)
        assert body["errors"][0]["loc"] == ["body", "answers", key], body
        assert message in body["errors"][0]["msg"], body
        assert "x" * 100 not in r.text
        assert await _count(owner_engine, "survey_responses", tenant) == 0
        assert await _count(owner_engine, "survey_answers", tenant) == 0
    # A question hidden by skip logic, and required ones missing at completion.
    hidden = await public.post(url, json={"answers": {"parent": False, "kids_ages": ["0-2"]}})
    assert assert_problem(hidden, 422)["errors"][0]["loc"] == ["body", "answers", "kids_ages"]
    missing = await public.post(url, json={"answers": {"csat": 4}, "complete": True})
    locs = [e["loc"] for e in assert_problem(missing, 422)["errors"]]
    assert locs == [["body", "answers", "role"], ["body", "answers", "nps"]]
    assert await _count(owner_engine, "survey_answers", tenant) == 0
    # Not JSON objects, or too many keys.
    assert_problem(await public.post(url, json={"answers": ["nps", 3]}), 422)
    assert_problem(await public.post(url, json={"answers": {}, "extra": 1}), 422)
    assert await _count(owner_engine, "survey_responses", tenant) == 0
    # The invitation is still usable afterwards.
    ok = await public.post(url, json={"answers": {"role": "decides", "nps": 7}, "complete": True})
    assert ok.status_code == 200, ok.text


async def test_changing_an_answer_hides_the_follow_up_and_drops_it(client, tenant, public):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    token = _tokens(await distribute(client, tenant, survey["id"], group="one_time_buyers"))["bao"]
    url = f"/v1/public/responses/{token}"
    await public.post(url, json={"answers": {"parent": True, "kids_ages": ["6-12"]}})
    r = await public.post(url, json={"answers": {"parent": False}})
    assert r.json()["answers"] == {"parent": False}
    assert (await public.get(url)).json()["answers"] == {"parent": False}


async def test_unknown_foreign_and_closed_tokens(client, tenant, make_tenant, public):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    token = _tokens(await distribute(client, tenant, survey["id"], group="one_time_buyers"))["bao"]
    other = await make_tenant()
    # The same secret under another tenant's id, garbage, and a made-up token: all one 404.
    forged = f"pts_{other.tenant_id.hex}_{token.split('_', 2)[2]}"
    for bad in (
        forged,
        "nonsense",
        f"pts_{tenant.tenant_id.hex}_{secrets.token_urlsafe(32)}",
        "psl_" + "0" * 32 + "_x",
    ):
        r = await public.get(f"/v1/public/responses/{bad}")
        body = assert_problem(r, 404)
        assert body["detail"] == "No survey for this token."
        assert_problem(await public.post(f"/v1/public/responses/{bad}", json={"answers": {}}), 404)
    await client.patch(
        f"/v1/surveys/{survey['id']}", json={"status": "closed"}, headers=auth(tenant.api_key)
    )
    assert_problem(await public.get(f"/v1/public/responses/{token}"), 409)
    r = await public.post(f"/v1/public/responses/{token}", json={"answers": {"nps": 3}})
    assert_problem(r, 409)


async def test_an_anonymous_link_takes_many_respondents_each_with_a_resume_token(
    client, tenant, public, owner_engine
):
    survey = await active_survey(client, tenant)
    link = await distribute(client, tenant, survey["id"], kind="link")
    assert link["token"].startswith("psl_")
    assert link["invitations"] == []
    url = f"/v1/public/responses/{link['token']}"
    assert (await public.get(url)).json()["status"] == "new"
    first = (await public.post(url, json={"answers": {"role": "shares"}})).json()
    second = (
        await public.post(url, json={"answers": {"role": "other", "nps": 2}, "complete": True})
    ).json()
    assert second["status"] == "completed"
    assert first["resume_token"] != second["resume_token"]
    resume = f"/v1/public/responses/{first['resume_token']}"
    assert (await public.get(resume)).json()["answers"] == {"role": "shares"}
    done = await public.post(resume, json={"answers": {"nps": 9}, "complete": True})
    assert done.json()["answers"] == {"role": "shares", "nps": 9}
    assert_problem(await public.post(resume, json={"answers": {"nps": 1}}), 409)
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT status, customer_id FROM survey_responses"))).all()
    assert sorted(r.status for r in rows) == ["completed", "completed"]
    assert all(r.customer_id is None for r in rows)


async def test_public_answers_are_rate_limited_per_token_and_per_address(
    client, tenant, public, settings, app
):
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    token = _tokens(await distribute(client, tenant, survey["id"], group="one_time_buyers"))["bao"]
    limit = settings.api.survey_token_limit_per_minute
    url = f"/v1/public/responses/{token}"
    codes = [(await public.get(url)).status_code for _ in range(limit)]
    assert codes == [200] * limit
    over = await public.get(url)
    assert_problem(over, 429)
    assert int(over.headers["Retry-After"]) >= 1
    # Per address: many different tokens from one address.
    ip_limit = settings.api.survey_ip_limit_per_minute
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("192.0.2.77", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://portrait.test") as one:
        seen = [
            (await one.get(f"/v1/public/responses/x{secrets.token_hex(4)}")).status_code
            for _ in range(ip_limit + 1)
        ]
    assert 429 in seen
    assert seen[0] == 404


async def test_mapped_answers_enrich_the_profile_and_store_facts_win_by_default(
    client, tenant, public
):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("ana", marital_status="married"), headers=h)
    await client.post("/v1/customers", json=customer("bao", marital_status="married"), headers=h)
    survey = await active_survey(client, tenant)
    tokens = _tokens(await distribute(client, tenant, survey["id"], group="prospects"))
    answers = {"role": "decides", "marital": "single", "nps": 8}
    r = await public.post(
        f"/v1/public/responses/{tokens['ana']}", json={"answers": answers, "complete": True}
    )
    assert r.status_code == 200, r.text
    profile = (await client.get("/v1/customers/ext:ana", headers=h)).json()
    assert profile["demographic"]["decision_role"] == "decides"
    assert profile["sources"]["decision_role"]["source"] == "survey"
    assert profile["sources"]["decision_role"]["ref"] == survey["id"]
    # The store said married; the survey said single: both are shown, the store's stays.
    assert profile["demographic"]["marital_status"] == "married"
    assert profile["sources"]["marital_status"]["source"] == "store"
    assert profile["sources"]["marital_status"]["survey"]["value"] == "single"
    assert profile["sources"]["marital_status"]["survey"]["ref"] == survey["id"]
    # Partial answers change nothing in the profile.
    await public.post(f"/v1/public/responses/{tokens['bao']}", json={"answers": answers})
    bao = (await client.get("/v1/customers/ext:bao", headers=h)).json()
    assert bao["demographic"]["decision_role"] is None
    # A tenant whose policy lets surveys win.
    policy = await client.patch(
        "/v1/surveys/settings", json={"survey_answers_override_store": True}, headers=h
    )
    assert policy.json() == {"survey_answers_override_store": True}
    await public.post(f"/v1/public/responses/{tokens['bao']}", json={"complete": True})
    bao = (await client.get("/v1/customers/ext:bao", headers=h)).json()
    assert bao["demographic"]["marital_status"] == "single"
    assert bao["sources"]["marital_status"]["source"] == "survey"
    # A later store update takes the fact back.
    await client.post("/v1/customers", json=customer("bao", marital_status="divorced"), headers=h)
    bao = (await client.get("/v1/customers/ext:bao", headers=h)).json()
    assert bao["sources"]["marital_status"]["source"] == "store"


async def test_results_counts_means_nps_csat_texts_and_response_rates(client, tenant, public):
    h = auth(tenant.api_key)
    await _people(client, tenant)
    survey = await active_survey(client, tenant)
    sid = survey["id"]
    everyone = {}
    for group in ("prospects", "one_time_buyers", "frequent_buyers"):
        everyone.update(_tokens(await distribute(client, tenant, sid, group=group)))
    given = {
        "ana": {
            "role": "decides",
            "nps": 10,
            "csat": 5,
            "why": "Fast delivery",
            "parent": True,
            "kids_ages": ["0-2", "3-5"],
            "spend": 100,
        },
        "bao": {"role": "decides", "nps": 9, "csat": 4, "why": "=cmd|' /C calc'!A0", "spend": 50},
        "cam": {
            "role": "influences",
            "nps": 3,
            "csat": 2,
            "parent": True,
            "kids_ages": ["3-5"],
            "spend": 30,
        },
    }
    for ext, answers in given.items():
        r = await public.post(
            f"/v1/public/responses/{everyone[ext]}", json={"answers": answers, "complete": True}
        )
        assert r.status_code == 200, r.text
    res = (await client.get(f"/v1/surveys/{sid}/results", headers=h)).json()
    assert (res["responses"], res["completed"], res["partial"]) == (3, 3, 0)
    q = {x["key"]: x for x in res["questions"]}
    assert q["role"]["counts"] == [
        {"value": "decides", "count": 2, "share": 0.6667},
        {"value": "influences", "count": 1, "share": 0.3333},
    ]
    assert q["role"]["self_reported"] is True
    assert {c["value"]: c["count"] for c in q["kids_ages"]["counts"]} == {"3-5": 2, "0-2": 1}
    assert q["nps"]["nps"] == {"promoters": 2, "passives": 0, "detractors": 1, "score": 33.3}
    assert q["csat"]["csat"] == {"satisfied": 2, "share": 0.6667}
    assert q["spend"]["mean"] == 60.0
    assert q["spend"]["median"] == 50.0
    assert sorted(q["why"]["texts"]) == sorted(["Fast delivery", "=cmd|' /C calc'!A0"])
    assert q["birthday"]["answered"] == 0
    rates = {r["group"]: r for r in res["response_rates"]}
    assert (rates["all"]["invited"], rates["all"]["responded"]) == (4, 3)
    assert rates["prospects"]["invited"] == 2
    assert rates["prospects"]["responded"] == 1
    assert rates["prospects"]["rate"] == 0.5
    assert rates["prospects"]["share_of_invited"] == 0.5
    assert rates["prospects"]["share_of_respondents"] == 0.3333
    assert rates["cart_abandoners"]["responded"] == 0  # dan did not answer
    # One group's answers only.
    frequent = await client.get(f"/v1/surveys/{sid}/results?group=frequent_buyers", headers=h)
    fq = {x["key"]: x for x in frequent.json()["questions"]}
    assert frequent.json()["responses"] == 1
    assert fq["nps"]["nps"]["score"] == -100.0
    bad = await client.get(f"/v1/surveys/{sid}/results?segment_id={uuid.uuid4()}", headers=h)
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "segment_id"]
    # CSV export of the responses; a formula-like answer stays text.
    r = await client.get(f"/v1/surveys/{sid}/results", headers={**h, "Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = {row["external_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert rows["ana"]["kids_ages"] == "0-2; 3-5"
    assert rows["ana"]["parent"] == "yes"
    assert rows["bao"]["why"].startswith("'=")
    listed = (await client.get(f"/v1/surveys/{sid}/responses?limit=2", headers=h)).json()
    assert len(listed["items"]) == 2
    assert listed["next_cursor"]
    assert listed["items"][0]["answers"]["role"] in ("decides", "influences")


async def test_another_tenant_cannot_read_results_or_responses(client, tenant, make_tenant):
    survey = await active_survey(client, tenant)
    other = await make_tenant()
    for path in ("results", "responses", "distributions"):
        r = await client.get(f"/v1/surveys/{survey['id']}/{path}", headers=auth(other.api_key))
        assert_problem(r, 404)
