"""The demo store's survey: a "Customer profile" survey whose completed responses are the
generator's answers, enriching profiles and readable as evidence for personas."""

from __future__ import annotations

from collections import Counter

from shared.db.engine import unit_of_work
from shared.ingest.demo import DemoConfig, generate, iter_survey_answers
from shared.ingest.demo_loader import load
from shared.surveys import evidence
from tests.helpers import auth


async def test_demo_answers_load_as_completed_responses_once(app, client, make_tenant):
    store = generate(DemoConfig(n_customers=120, seed=7))
    rows = list(iter_survey_answers(store))
    assert rows, "the generator answers for about 30% of buyers"
    tenant = await make_tenant()
    h = auth(tenant.api_key)
    counts = await load(app.state.sessionmaker, tenant.tenant_id, store, batch=50)
    assert counts["survey_responses"] == len(rows)
    await load(app.state.sessionmaker, tenant.tenant_id, store, batch=50)

    listed = (await client.get("/v1/surveys", headers=h)).json()["items"]
    assert [s["title"] for s in listed] == ["Customer profile"]
    survey = listed[0]
    keys = [q["key"] for q in survey["questions"]]
    assert keys == ["decision_role", "motivations", "frustrations", "goals", "nps"]
    maps = {q["key"]: q.get("maps_to") for q in survey["questions"]}
    assert maps["decision_role"] == "decision_role"
    assert maps["motivations"] == "motivations"
    res = (await client.get(f"/v1/surveys/{survey['id']}/results", headers=h)).json()
    assert res["completed"] == len(rows)  # loading twice added nothing
    q = {x["key"]: x for x in res["questions"]}
    roles = Counter(r["answers"]["decision_role"] for r in rows)
    assert {c["value"]: c["count"] for c in q["decision_role"]["counts"]} == dict(roles)
    nps = [r["answers"]["nps"] for r in rows]
    assert q["nps"]["mean"] == round(sum(nps) / len(nps), 4)

    one = rows[0]
    profile = await client.get(f"/v1/customers/ext:{one['customer_external_id']}", headers=h)
    body = profile.json()
    assert body["demographic"]["decision_role"] == one["answers"]["decision_role"]
    assert body["sources"]["decision_role"]["source"] == "survey"
    assert body["sources"]["decision_role"]["ref"] == survey["id"]

    async with unit_of_work(app.state.sessionmaker, tenant.tenant_id) as session:
        found = await evidence.answers_for(session, tenant.tenant_id)
    frustrations = next(e for e in found if e.key == "frustrations")
    expected = Counter(f for r in rows for f in r["answers"]["frustrations"])
    assert frustrations.counts == dict(expected)
    assert frustrations.respondents == len(rows)
