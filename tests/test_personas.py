"""Personas through the API and a real worker: generation with evidence, living personas
(versions with drift, locked edits), which persona a customer fits, edge cases, and the demo
store's planted kinds of buyer coming out as personas."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.ingest.demo import _PROFILES, KINDS, DemoConfig, generate
from shared.ingest.demo_loader import load
from shared.personas import build
from shared.personas.evidence import AnswerCount, QuestionEvidence
from tests.factories.segments import create_segment, member_ids
from tests.factories.store import customer, order
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem


async def _customers(client, tenant, bodies):
    for body in bodies:
        r = await client.post("/v1/customers", json=body, headers=auth(tenant.api_key))
        assert r.status_code in (200, 201), r.text


async def _orders(client, tenant, bodies):
    for body in bodies:
        r = await client.post("/v1/orders", json=body, headers=auth(tenant.api_key))
        assert r.status_code in (200, 201), r.text


async def generate_personas(client, tenant, worker_factory, body):
    h = auth(tenant.api_key)
    r = await client.post("/v1/personas/generate", json=body, headers=h)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}"
    await run_burst(worker_factory)
    job = (await client.get(r.headers["location"], headers=h)).json()
    assert job["status"] == "succeeded", job
    return job["result"]


async def _persona(client, tenant, persona_id):
    r = await client.get(f"/v1/personas/{persona_id}", headers=auth(tenant.api_key))
    assert r.status_code == 200, r.text
    return r.json()


async def _vn_store(client, tenant, worker_factory, n_email=10, n_sms=0, start=0):
    """n customers in Vietnam who buy skincare; a rule segment of them."""
    bodies = [
        customer(
            f"vn-{i}",
            country="VN",
            income_band="100k-150k",
            preferred_channel="email" if i < start + n_email else "sms",
        )
        for i in range(start, start + n_email + n_sms)
    ]
    others = [
        customer(f"gb-{i}", country="GB", city="London", income_band="25k-50k", gender="male")
        for i in range(start, start + n_email + n_sms)
    ]
    await _customers(client, tenant, bodies + others)
    await _orders(client, tenant, [order(b["external_id"]) for b in bodies])


async def test_generated_persona_carries_evidence_and_regeneration_is_a_version_with_drift(
    client, tenant, worker_factory
):
    h = auth(tenant.api_key)
    await _vn_store(client, tenant, worker_factory, n_email=10)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Vietnam", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    result = await generate_personas(
        client, tenant, worker_factory, {"segment_ids": [segment["id"]]}
    )
    [made] = result["personas"]
    p = await _persona(client, tenant, made["persona_id"])
    assert p["segment_id"] == segment["id"]
    assert p["status"] == "current"
    assert p["covered_customers"] == 10
    assert p["current_version"] == 1
    # The most distinctive fact (all earn 100k-150k, against half the store) names it.
    assert p["name"].split()[0] == "Premium"
    assert p["name"].split()[1][0] == "P"
    assert "earns 100k-150k" in p["tagline"].lower()
    assert p["narrative"].startswith(f"{p['name']} stands for 10 customers (50% of the store)")
    income = p["fields"]["income_band"]
    assert income["status"] == "ok"
    assert income["value"] == "100k-150k"
    ev = income["evidence"]
    assert ev["n"] == 10
    assert ev["share"] == 1.0
    assert ev["store_share"] == 0.5
    assert ev["lift"] == 2.0
    low, high = ev["ci95"]
    assert 0.65 < low < 0.75
    assert high == 1.0
    assert "profile fact" in ev["source"]
    assert p["fields"]["average_order_value"]["value"] == 59.45
    assert p["fields"]["orders_per_year"]["status"] == "ok"
    # No surveys on this branch's store: the voice of the customer says so, and what to ask.
    goals = p["fields"]["goals"]
    assert goals["status"] == "too_little_evidence"
    assert goals["fill_with"]["library_question"] == "goals"
    assert p["fields"]["quotes"]["status"] == "too_little_evidence"

    # More customers join the segment, preferring SMS: a new version says what moved.
    await _vn_store(client, tenant, worker_factory, n_email=0, n_sms=10, start=10)
    await client.post(f"/v1/segments/{segment['id']}/refresh", headers=h)
    await run_burst(worker_factory)
    again = await generate_personas(
        client, tenant, worker_factory, {"segment_ids": [segment["id"]]}
    )
    assert again["personas"][0]["persona_id"] == p["id"]  # updated in place
    p2 = await _persona(client, tenant, p["id"])
    assert p2["current_version"] == 2
    assert p2["covered_customers"] == 20
    versions = (await client.get(f"/v1/personas/{p['id']}/versions", headers=h)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    texts = [c["text"] for c in versions["items"][0]["changes"]]
    assert "covers 20 customers, up from 10" in texts
    assert "share of customers preferring sms rose from 0% to 50%" in texts
    assert "share of customers preferring email fell from 100% to 50%" in texts
    assert versions["items"][1]["changes"] == []
    page = (await client.get(f"/v1/personas/{p['id']}/versions?limit=1", headers=h)).json()
    assert [v["version"] for v in page["items"]] == [2]
    rest = await client.get(
        f"/v1/personas/{p['id']}/versions?limit=1&cursor={page['next_cursor']}", headers=h
    )
    assert [v["version"] for v in rest.json()["items"]] == [1]


async def test_edited_fields_are_locked_and_survive_regeneration_beside_current_data(
    client, tenant, worker_factory
):
    h = auth(tenant.api_key)
    await _vn_store(client, tenant, worker_factory, n_email=8)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    pid = made["personas"][0]["persona_id"]
    generated_name = (await _persona(client, tenant, pid))["name"]
    r = await client.patch(
        f"/v1/personas/{pid}",
        json={
            "name": "Skincare Sofia",
            "fields": {"goals": {"text": "Glowing skin", "items": ["fewer breakouts"]}},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Skincare Sofia"
    assert r.json()["locked"] == ["goals", "name"]
    await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    p = await _persona(client, tenant, pid)
    assert p["current_version"] == 2
    assert p["name"] == "Skincare Sofia"
    goals = p["fields"]["goals"]
    assert goals["locked"] is True
    assert goals["summary"] == "Glowing skin"
    assert goals["edited"]["items"] == ["fewer breakouts"]
    assert goals["current"]["status"] == "too_little_evidence"  # the data, beside the edit
    assert p["fields"]["income_band"]["locked"] is False
    # Unlocking brings the generated name back.
    r = await client.patch(f"/v1/personas/{pid}", json={"unlock": ["name"]}, headers=h)
    assert r.json()["name"] == generated_name
    assert r.json()["locked"] == ["goals"]


async def test_a_segment_of_three_has_too_little_evidence_but_a_persona(
    client, tenant, worker_factory
):
    await _customers(client, tenant, [customer(f"t-{i}", income_band="50k-75k") for i in range(3)])
    await _customers(client, tenant, [customer(f"o-{i}") for i in range(5)])
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "Three", "kind": "static", "customer_ids": ["ext:t-0", "ext:t-1", "ext:t-2"]},
    )
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    p = await _persona(client, tenant, made["personas"][0]["persona_id"])
    assert p["covered_customers"] == 3
    income = p["fields"]["income_band"]
    assert income["status"] == "too_little_evidence"
    assert "3 customers" in income["summary"]
    assert income["fill_with"]["question"]
    assert income["distribution"][0]["value"] == "50k-75k"  # the data is still shown
    assert p["fields"]["orders_per_year"]["status"] == "too_little_evidence"
    assert p["fields"]["predicted_clv"]["summary"].startswith("Not analysed yet")
    assert p["name"]
    assert p["tagline"]
    assert "3 customers" in p["narrative"]


async def test_a_persona_whose_segment_was_deleted_keeps_its_last_data(
    client, tenant, worker_factory
):
    h = auth(tenant.api_key)
    await _vn_store(client, tenant, worker_factory, n_email=6)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    pid = made["personas"][0]["persona_id"]
    assert (await client.delete(f"/v1/segments/{segment['id']}", headers=h)).status_code == 204
    p = await _persona(client, tenant, pid)
    assert p["status"] == "segment_deleted"
    assert p["covered_customers"] == 0
    assert p["fields"]["income_band"]["value"] == "100k-150k"
    card = await client.get(f"/v1/personas/{pid}/card", headers=h)
    assert card.status_code == 200
    assert "segment deleted" in card.text
    # Regenerating it is refused up front; a customer has no live persona to fit.
    assert_problem(
        await client.post(
            "/v1/personas/generate", json={"segment_ids": [segment["id"]]}, headers=h
        ),
        422,
    )
    assert_problem(await client.get("/v1/customers/ext:vn-0/persona", headers=h), 404)
    listed = (await client.get("/v1/personas", headers=h)).json()
    assert [x["status"] for x in listed["items"]] == ["segment_deleted"]
    assert (await client.delete(f"/v1/personas/{pid}", headers=h)).status_code == 204
    assert_problem(await client.get(f"/v1/personas/{pid}", headers=h), 404)


async def test_a_customer_fits_the_persona_of_their_segment_else_the_most_similar(
    client, tenant, worker_factory
):
    h = auth(tenant.api_key)
    await _vn_store(client, tenant, worker_factory, n_email=6)
    vn = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    gb = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "GB", "kind": "static", "customer_ids": [f"ext:gb-{i}" for i in range(5)]},
    )
    made = await generate_personas(
        client, tenant, worker_factory, {"segment_ids": [vn["id"], gb["id"]]}
    )
    by_segment = {m["segment_id"]: m["persona_id"] for m in made["personas"]}
    fit = (await client.get("/v1/customers/ext:vn-0/persona", headers=h)).json()
    assert fit["persona"]["id"] == by_segment[vn["id"]]
    assert fit["method"] == "membership"
    assert fit["score"] == 1.0
    # gb-5 is in no segment but is like the GB customers (male, London, 25k-50k).
    fit = (await client.get("/v1/customers/ext:gb-5/persona", headers=h)).json()
    assert fit["persona"]["id"] == by_segment[gb["id"]]
    assert fit["method"] == "similarity"
    assert 0.5 < fit["score"] < 1.0
    assert fit["alternatives"][0]["score"] < fit["score"]
    assert_problem(await client.get("/v1/customers/ext:nobody/persona", headers=h), 404)


async def test_default_generation_takes_the_top_segments_by_stp_score(
    client, tenant, worker_factory
):
    await _vn_store(client, tenant, worker_factory, n_email=6)
    for name, country in (("VN", "VN"), ("GB", "GB")):
        await create_segment(
            client,
            tenant,
            worker_factory,
            {"name": name, "condition": {"fact": "country", "op": "eq", "value": country}},
        )
    result = await generate_personas(client, tenant, worker_factory, {"top": 1})
    # VN buyers bring the revenue; GB customers never ordered.
    assert [p["covered_customers"] for p in result["personas"]] == [6]
    listed = (await client.get("/v1/personas", headers=auth(tenant.api_key))).json()
    assert len(listed["items"]) == 1
    assert listed["items"][0]["segment_name"] == "VN"


async def test_bad_persona_requests_are_4xx(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    for body in (
        {"segment_ids": ["nope"]},
        {"segment_ids": []},
        {"top": 0},
        {"colour": "red"},
    ):
        assert_problem(await client.post("/v1/personas/generate", json=body, headers=h), 422)
    await _vn_store(client, tenant, worker_factory, n_email=5)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    pid = made["personas"][0]["persona_id"]
    for body in (
        {"fields": {"favourite_colour": {"text": "red"}}},
        {"name": "a\u0000b"},
        {"name": "x" * 201},
        {"fields": {"goals": {"text": "x" * 2001}}},
        {"unlock": ["everything"]},
    ):
        r = await client.patch(f"/v1/personas/{pid}", json=body, headers=h)
        assert_problem(r, 422)
        assert r.json()["errors"][0]["loc"][0] == "body"
    assert_problem(await client.get("/v1/personas/nope", headers=h), 404)
    assert_problem(await client.get("/v1/personas/nope/versions", headers=h), 404)
    assert_problem(await client.get(f"/v1/personas/{pid}/versions?cursor=bm9wZQ", headers=h), 422)
    r = await client.get(f"/v1/personas/{pid}/card", headers={**h, "Accept": "image/png"})
    assert_problem(r, 406)
    r = await client.post(
        "/v1/personas/generate", json={"segment_ids": [segment["id"]]}, headers=auth("nope")
    )
    assert_problem(r, 401)


def test_wilson_interval():
    assert build.wilson(0, 0) is None
    low, high = build.wilson(50, 100)
    assert (low, high) == (0.4038, 0.5962)
    assert build.wilson(0, 10)[0] == 0.0
    assert build.wilson(10, 10)[1] == 1.0


def _facts_with_surveys(store, kind: str) -> build.Facts:
    """A segment of one planted kind with its survey answers, as the seam hands them over."""
    kinds = store.customers["kind"].astype(str)
    answers = store.survey_answers
    rows = answers["customer_row"]
    mine = kinds[rows] == kind
    questions = []
    for key in ("goals", "frustrations", "motivations", "decision_role"):
        col = answers[key]
        seg, every = Counter(), Counter()
        for value, is_mine in zip(col, mine, strict=True):
            values = [value] if isinstance(value, bytes) else list(value)
            for v in {v.decode() if isinstance(v, bytes) else str(v) for v in values}:
                every[v] += 1
                seg[v] += int(is_mine)
        questions.append(
            QuestionEvidence(
                survey_id="s1",
                survey_title="Profile survey",
                question_key=key,
                question_text=key,
                question_type="multiple_choice",
                topic=key,
                respondents=int(mine.sum()),
                store_respondents=len(rows),
                answers=[
                    AnswerCount(v, seg[v], every[v])
                    for v in sorted(every, key=lambda v: (-seg[v], v))
                ],
            )
        )
    return build.Facts(
        segment_id="seg-" + kind,
        segment_name=kind,
        members=int((kinds == kind).sum()),
        customers=len(kinds),
        dists={},
        known={},
        numbers={},
        surveys=questions,
    )


def test_survey_answers_fill_goals_pain_points_and_decision_role():
    """Through the seam's records, the demo's survey answers per kind become the persona's
    voice: the planted goals, frustrations and decision role, with evidence."""
    store = generate(DemoConfig(n_customers=600, seed=5, events=False))
    fields = build.build_fields(_facts_with_surveys(store, "loyal_parent"))
    goals = fields["goals"]
    assert goals["status"] == "ok"
    assert set(goals["value"][:3]) == {"an organised home", "happy kids", "one-stop shop"}
    assert goals["evidence"]["source"].startswith("survey 'Profile survey'")
    assert goals["items"][0]["lift"] > 1.5
    assert goals["items"][0]["ci95"]
    pains = fields["pain_points"]
    assert set(pains["value"][:3]) == {"items out of stock", "slow delivery", "too many emails"}
    assert fields["decision_role"]["value"] == "decides"
    assert fields["motivations"]["status"] == "ok"
    assert fields["objections"]["status"] == "too_little_evidence"
    assert fields["objections"]["fill_with"]["library_question"] is None
    assert fields["objections"]["fill_with"]["question"].startswith("What almost stopped")


# --- the demo store -------------------------------------------------------------------------

EXPECTED = {  # planted kind -> (field, accepted values of its top value)
    "loyal_parent": ("top_categories", {"kids", "home"}),
    "bargain_hunter": ("top_categories", {"deals", "household"}),
    "premium_professional": ("income_band", {"150k+", "100k-150k"}),
    "young_trendsetter": ("age_band", {"18-24"}),
    "one_time_gifter": ("top_categories", {"gifts"}),
}


@pytest.fixture(scope="module")
def demo():
    return generate(DemoConfig(n_customers=600, seed=11))


async def test_personas_of_the_demo_store_match_its_planted_kinds(
    app, client, tenant, worker_factory, demo
):
    h = auth(tenant.api_key)
    await load(app.state.sessionmaker, tenant.tenant_id, demo)
    await client.post("/v1/analyses/customer-value", json={}, headers=h)
    r = await client.post(
        "/v1/segmentations", json={"method": "kmeans", "k": 5, "seed": 1}, headers=h
    )
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    run = (await client.get(r.headers["location"], headers=h)).json()
    assert run["status"] == "succeeded", run
    segment_ids = [s["id"] for s in run["segments"]]
    result = await generate_personas(client, tenant, worker_factory, {"segment_ids": segment_ids})
    kinds = dict(
        zip(
            demo.customers["external_id"].astype(str),
            demo.customers["kind"].astype(str),
            strict=True,
        )  # fmt: skip
    )
    found = {}
    for made in result["personas"]:
        members = await member_ids(client, tenant, made["segment_id"])
        majority, count = Counter(kinds[m] for m in members).most_common(1)[0]
        p = await _persona(client, tenant, made["persona_id"])
        print(f"{majority} ({count}/{len(members)}): {p['name']} - {p['tagline']}")
        found[majority] = p
    assert set(found) == set(KINDS)
    for kind, (key, accepted) in EXPECTED.items():
        f = found[kind]["fields"][key]
        top = f["value"][0] if isinstance(f["value"], list) else f["value"]
        assert f["status"] == "ok", (kind, key, f["summary"])
        assert top in accepted, (kind, key, f["summary"])
        assert f["evidence"]["lift"] > 1.2
    assert found["young_trendsetter"]["fields"]["device"]["value"] == "mobile"
    assert found["one_time_gifter"]["fields"]["orders_per_year"]["value"] < 1.5
    assert found["premium_professional"]["fields"]["average_order_value"]["evidence"]["lift"] > 2
    assert len({p["name"] for p in found.values()}) == len(found)
    # The demo's survey answers reach the personas end to end: each planted kind's goals and
    # pain points are its own voice, and the decision role is filled.
    for kind, planted in zip(KINDS, _PROFILES, strict=False):
        fields = found[kind]["fields"]
        for key, voice in (("goals", planted.goals), ("pain_points", planted.frustrations)):
            f = fields[key]
            assert f["status"] == "ok", (kind, key, f["summary"])
            assert f["value"][0] in voice, (kind, key, f["value"])
            assert "survey" in f["evidence"]["source"], f["evidence"]
        assert fields["decision_role"]["status"] == "ok", (kind, fields["decision_role"])


# The surveys, interviews and funnels tables (only the columns the seam reads), made in a
# scratch schema inside a rolled-back transaction: the seam's SQL runs for real on rows
# written straight in, without going through those domains' APIs.
_SCRATCH_DDL = (
    "CREATE SCHEMA seam_scratch",
    "SET LOCAL search_path = seam_scratch, public",
    """CREATE TABLE surveys (tenant_id uuid, id uuid, title text, questions jsonb,
       PRIMARY KEY (tenant_id, id))""",
    """CREATE TABLE survey_responses (tenant_id uuid, id uuid, survey_id uuid,
       customer_id uuid, status text, PRIMARY KEY (tenant_id, id))""",
    """CREATE TABLE survey_answers (tenant_id uuid, response_id uuid, question_key text,
       survey_id uuid, customer_id uuid, value_text text, value_number numeric,
       choices text[], PRIMARY KEY (tenant_id, response_id, question_key))""",
    """CREATE TABLE interviews (tenant_id uuid, id uuid, customer_id uuid,
       interviewed_at timestamptz, notes text, quotes jsonb, tags text[])""",
    "CREATE TABLE funnels (tenant_id uuid, id uuid, name text, definition jsonb)",
)


async def test_the_evidence_seam_turns_answers_interviews_and_dropoffs_into_the_voice(
    client, tenant, worker_factory, owner_engine
):
    import json
    import uuid

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.models import Segment
    from shared.personas import evidence
    from shared.personas import service as personas
    from tests.factories.store import event

    h = auth(tenant.api_key)
    await _vn_store(client, tenant, worker_factory, n_email=8)
    for i in range(8):  # VN customers browse, add to cart, and stop; GB customers buy
        for name in ("product_view", "add_to_cart"):
            await client.post("/v1/events", json=event(name, f"vn-{i}"), headers=h)
        for name in ("product_view", "add_to_cart", "purchase"):
            await client.post("/v1/events", json=event(name, f"gb-{i}"), headers=h)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    t, sid = tenant.tenant_id, uuid.UUID(segment["id"])
    survey = uuid.uuid4()
    questions = [
        {"key": "goals", "text": "What are you trying to achieve?", "type": "multiple_choice",
         "category": "psychographic"},
        {"key": "decision_role", "text": "Who decides?", "type": "single_choice",
         "category": "financial", "maps_to": "decision_role"},
        {"key": "story", "text": "Tell us about your last order", "type": "long_text",
         "category": "other"},
    ]  # fmt: skip
    async with owner_engine.connect() as conn:
        await conn.begin()
        for statement in _SCRATCH_DDL:
            await conn.execute(text(statement))
        ids = {
            r.external_id: r.id
            for r in await conn.execute(
                text("SELECT external_id, id FROM customers WHERE tenant_id = :t"), {"t": t}
            )
        }
        await conn.execute(
            text("INSERT INTO surveys VALUES (:t, :s, 'Profile survey', CAST(:q AS jsonb))"),
            {"t": t, "s": survey, "q": json.dumps(questions)},
        )
        for ext, cid in ids.items():
            vn = ext.startswith("vn-")
            response = uuid.uuid4()
            status = "partial" if ext == "vn-7" else "completed"  # partial answers do not count
            await conn.execute(
                text("INSERT INTO survey_responses VALUES (:t, :r, :s, :c, :st)"),
                {"t": t, "r": response, "s": survey, "c": cid, "st": status},
            )
            answers = [
                ("goals", None, ["glowing skin", "save time"] if vn else ["save money"]),
                ("decision_role", "decides" if vn else "influences", None),
                ("story", f"I ordered the serum for my mother, customer {ext}, and loved it", None),
            ]
            for key, value, choices in answers:
                await conn.execute(
                    text(
                        "INSERT INTO survey_answers (tenant_id, response_id, question_key, "
                        "survey_id, customer_id, value_text, choices) "
                        "VALUES (:t, :r, :k, :s, :c, :v, :ch)"
                    ),
                    {
                        "t": t,
                        "r": response,
                        "k": key,
                        "s": survey,
                        "c": cid,
                        "v": value,
                        "ch": choices,
                    },  # fmt: skip
                )
        await conn.execute(
            text(
                "INSERT INTO interviews VALUES (:t, :i, :c, now(), 'notes', "
                "CAST(:q AS jsonb), ARRAY['objection'])"
            ),
            {
                "t": t,
                "i": uuid.uuid4(),
                "c": ids["vn-0"],
                "q": json.dumps(
                    [{"text": "Shipping to Vietnam costs too much", "tags": ["objection"]}]
                ),
            },  # fmt: skip
        )
        await conn.execute(
            text("INSERT INTO funnels VALUES (:t, :f, 'Checkout', CAST(:s AS jsonb))"),
            {
                "t": t,
                "f": uuid.uuid4(),
                "s": json.dumps({"steps": [{"event": "add_to_cart"}, {"event": "purchase"}]}),
            },  # fmt: skip
        )
        session = AsyncSession(bind=conn)
        questions_found = await evidence.survey_evidence(session, t, sid)
        by_key = {q.question_key: q for q in questions_found}
        assert by_key["goals"].respondents == 7  # vn-7's response is partial
        assert by_key["goals"].store_respondents == 15
        assert by_key["goals"].answers[0].value == "glowing skin"
        assert by_key["decision_role"].self_reported is True
        assert len(by_key["story"].texts) == 5
        [drop] = await evidence.funnel_dropoffs(session, t, sid)
        assert (drop.reached, drop.dropped, drop.store_reached, drop.store_dropped) == (8, 8, 16, 8)
        [quote] = await evidence.interview_evidence(session, t, sid)
        assert quote.tags == ("objection",)

        segment_row = await session.get(Segment, (t, sid))
        persona, _ = await personas.generate_one(session, t, segment_row, None)
        f = persona.fields
        assert f["goals"]["status"] == "ok"
        assert f["goals"]["value"][:2] == ["glowing skin", "save time"]
        assert f["goals"]["items"][0]["share"] == 1.0
        assert f["goals"]["items"][0]["lift"] == round(1 / (7 / 15), 3)
        assert "survey 'Profile survey'" in f["goals"]["evidence"]["source"]
        assert f["decision_role"]["value"] == "decides"
        assert f["decision_role"]["evidence"]["source"].endswith("(self-reported)")
        assert f["objections"]["status"] == "ok"
        assert f["objections"]["items"][0]["text"].startswith("stops after add_to_cart")
        assert f["objections"]["quotes"][0]["text"] == "Shipping to Vietnam costs too much"
        assert f["quotes"]["status"] == "ok"
        assert f["pain_points"]["status"] == "too_little_evidence"
        assert f["pain_points"]["fill_with"]["library_question"] == "frustrations"
        # Three members change their answer: the next version says what moved.
        await conn.execute(
            text(
                "UPDATE survey_answers SET value_text = 'influences' WHERE tenant_id = :t "
                "AND question_key = 'decision_role' AND customer_id = ANY(:c)"
            ),
            {"t": t, "c": [ids["vn-0"], ids["vn-1"], ids["vn-2"]]},
        )
        _, changes = await personas.generate_one(session, t, segment_row, None)
        texts = [c["text"] for c in changes]
        assert "share of “decides” answers fell from 100% to 57%" in texts
        assert "share of “influences” answers rose from 0% to 43%" in texts
        await session.close()
        await conn.rollback()


async def test_another_stores_personas_and_segments_are_not_found(
    client, tenant, make_tenant, worker_factory
):
    await _vn_store(client, tenant, worker_factory, n_email=5)
    segment = await create_segment(
        client,
        tenant,
        worker_factory,
        {"name": "VN", "condition": {"fact": "country", "op": "eq", "value": "VN"}},
    )
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [segment["id"]]})
    pid = made["personas"][0]["persona_id"]
    other = auth((await make_tenant()).api_key)
    for path in ("", "/versions", "/card"):
        assert_problem(await client.get(f"/v1/personas/{pid}{path}", headers=other), 404)
    assert_problem(
        await client.patch(f"/v1/personas/{pid}", json={"name": "Mine"}, headers=other), 404
    )
    assert_problem(await client.delete(f"/v1/personas/{pid}", headers=other), 404)
    assert (await client.get("/v1/personas", headers=other)).json()["items"] == []
    r = await client.post(
        "/v1/personas/generate", json={"segment_ids": [segment["id"]]}, headers=other
    )
    assert_problem(r, 422)
    assert r.json()["errors"][0]["loc"] == ["body", "segment_ids", 0]
    assert_problem(await client.get("/v1/customers/ext:vn-0/persona", headers=other), 404)


def test_names_are_alliterative_distinct_and_stable():
    facts = build.Facts(
        segment_id="s-1",
        segment_name="Deal seekers",
        members=10,
        customers=20,
        dists={"top_categories": [build.Dist("deals", 8, 8)]},
        known={"top_categories": (10, 20)},
        numbers={},
    )
    traits = build.distinctive(facts)
    name = build.make_name(facts, traits)
    assert name.split()[0] == "Frugal"
    assert name.split()[1][0] == "F"
    other = build.make_name(facts, traits, taken=[name])
    assert other.split()[0] == "Frugal"
    assert other.split()[1] != name.split()[1]  # no two personas share a first name
    # Regenerated, a persona keeps its name while its defining trait holds.
    assert build.make_name(facts, traits, taken=[other], current=name) == name
    assert build.make_tagline(traits) == "Buys deals."
