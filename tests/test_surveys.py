"""Surveys: question types and their checks, the library and templates, warnings, the
self-reported flag, the lifecycle, and changes to an active survey that would invalidate
answers (409) versus ones that make a new version."""

from __future__ import annotations

from tests.factories.store import customer
from tests.factories.surveys import active_survey, create_survey, distribute, questions
from tests.helpers import auth
from tests.test_auth import assert_problem


async def test_a_survey_keeps_its_ordered_questions_and_warns_when_short(client, tenant):
    survey = await create_survey(client, tenant, questions=questions()[:3])
    assert survey["status"] == "draft"
    assert survey["version"] == 1
    assert [q["key"] for q in survey["questions"]] == ["role", "marital", "parent"]
    assert any("fewer than 7" in w for w in survey["warnings"])
    got = await client.get(f"/v1/surveys/{survey['id']}", headers=auth(tenant.api_key))
    assert got.json()["questions"] == survey["questions"]
    full = await create_survey(client, tenant)
    assert full["warnings"] == []


async def test_more_than_20_questions_is_allowed_with_a_warning(client, tenant):
    many = [{"key": f"q{i}", "text": f"Question {i}", "type": "short_text"} for i in range(21)]
    survey = await create_survey(client, tenant, questions=many)
    assert any("more than 20" in w for w in survey["warnings"])


async def test_financial_questions_are_marked_self_reported(client, tenant):
    survey = await create_survey(client, tenant)
    flags = {q["key"]: q["self_reported"] for q in survey["questions"]}
    assert flags["role"] is True
    assert flags["marital"] is False


async def test_library_and_template(client, tenant):
    h = auth(tenant.api_key)
    lib = (await client.get("/v1/surveys/library", headers=h)).json()
    keys = {q["key"] for q in lib}
    for wanted in (
        "marital_status",
        "age_band",
        "children",
        "education_level",
        "job_level",
        "income_band",
        "decision_role",
        "interests",
        "motivations",
        "nps",
    ):
        assert wanted in keys
    income = next(q for q in lib if q["key"] == "income_band")
    assert income["self_reported"] is True
    assert income["category"] == "financial"
    r = await client.post(
        "/v1/surveys",
        json={"title": "Customer profile", "template": "customer_profile"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    survey = r.json()
    assert survey["template"] == "customer_profile"
    assert 7 <= len(survey["questions"]) <= 20
    assert survey["warnings"] == []
    maps = {q["key"]: q.get("maps_to") for q in survey["questions"]}
    assert maps["decision_role"] == "decision_role"
    assert maps["marital_status"] == "marital_status"
    picked = await client.post(
        "/v1/surveys", json={"title": "Short", "library": ["nps", "csat"]}, headers=h
    )
    assert [q["key"] for q in picked.json()["questions"]] == ["nps", "csat"]
    unknown = await client.post(
        "/v1/surveys", json={"title": "x", "library": ["nps", "nope"]}, headers=h
    )
    assert assert_problem(unknown, 422)["errors"][0]["loc"] == ["body", "library", 1]


async def test_bad_questions_are_422_pointing_at_the_question(client, tenant):
    h = auth(tenant.api_key)
    cases = [
        ({"key": "a", "text": "Pick", "type": "single_choice"}, "choices"),
        ({"key": "a", "text": "Rate", "type": "rating", "scale_min": 5, "scale_max": 2}, "scale"),
        (
            {
                "key": "a",
                "text": "Age?",
                "type": "single_choice",
                "choices": ["young"],
                "maps_to": "age_band",
            },
            "age_band",
        ),
        ({"key": "a", "text": "Age?", "type": "short_text", "maps_to": "password"}, "maps_to"),
        ({"key": "a", "text": "x\u0000", "type": "short_text"}, None),
        ({"key": "Bad Key", "text": "x", "type": "short_text"}, None),
        ({"key": "a", "text": "x", "type": "emoji"}, None),
        (
            {
                "key": "a",
                "text": "x",
                "type": "yes_no",
                "show_if": {"question": "a", "answer": "\u0000"},
            },
            "NUL",
        ),
    ]
    for question, hint in cases:
        r = await client.post(
            "/v1/surveys", json={"title": "t", "questions": [question]}, headers=h
        )
        body = assert_problem(r, 422)
        assert body["errors"][0]["loc"][:3] == ["body", "questions", 0], body
        if hint:
            assert hint in r.text
    later = [
        {"key": "b", "text": "b", "type": "yes_no", "show_if": {"question": "a", "answer": True}},
        {"key": "a", "text": "a", "type": "yes_no"},
    ]
    r = await client.post("/v1/surveys", json={"title": "t", "questions": later}, headers=h)
    assert "earlier question" in assert_problem(r, 422)["detail"] + r.text
    assert (await client.get("/v1/surveys", headers=h)).json()["items"] == []


async def test_lifecycle_goes_draft_active_closed_only(client, tenant):
    h = auth(tenant.api_key)
    survey = await create_survey(client, tenant)
    url = f"/v1/surveys/{survey['id']}"
    assert_problem(await client.patch(url, json={"status": "closed"}, headers=h), 409)
    assert (await client.patch(url, json={"status": "active"}, headers=h)).json()["status"] == (
        "active"
    )
    assert_problem(await client.delete(url, headers=h), 409)
    assert (await client.patch(url, json={"status": "closed"}, headers=h)).json()["status"] == (
        "closed"
    )
    assert_problem(await client.patch(url, json={"status": "active"}, headers=h), 409)
    assert_problem(await client.patch(url, json={"questions": questions()}, headers=h), 409)
    assert (await client.delete(url, headers=h)).status_code == 204
    assert_problem(await client.get(url, headers=h), 404)


async def test_an_answered_active_survey_refuses_changes_that_invalidate_answers(client, tenant):
    h = auth(tenant.api_key)
    await client.post("/v1/customers", json=customer("c1"), headers=h)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    token = sent["invitations"][0]["token"]
    r = await client.post(
        f"/v1/public/responses/{token}",
        json={"answers": {"role": "shares", "nps": 9, "csat": 4}},
    )
    assert r.status_code == 200, r.text
    url = f"/v1/surveys/{survey['id']}"
    qs = questions()

    def without(key):
        return [q for q in qs if q["key"] != key]

    dropped_choice = [
        {**q, "choices": ["decides", "influences", "other"]} if q["key"] == "role" else q
        for q in qs
    ]
    narrower = [{**q, "scale_max": 3} if q["key"] == "csat" else q for q in qs]
    retyped = [{**q, "type": "number"} if q["key"] == "nps" else q for q in qs]
    for bad in (without("role"), dropped_choice, narrower, retyped):
        r = await client.patch(url, json={"questions": bad}, headers=h)
        body = assert_problem(r, 409)
        assert body["errors"], body
    unchanged = (await client.get(url, headers=h)).json()
    assert unchanged["version"] == 1
    assert unchanged["questions"] == survey["questions"]
    # Adding a question, a choice, or dropping an unanswered one makes a new version.
    grown = [
        {**q, "choices": [*q["choices"], "18+"]} if q["key"] == "kids_ages" else q
        for q in without("birthday")
    ] + [{"key": "extra", "text": "Anything else?", "type": "short_text"}]
    r = await client.patch(url, json={"questions": grown}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2


async def test_another_tenants_survey_is_404(client, tenant, make_tenant):
    other = await make_tenant()
    survey = await create_survey(client, tenant)
    for method in ("get", "delete"):
        r = await getattr(client, method)(
            f"/v1/surveys/{survey['id']}", headers=auth(other.api_key)
        )
        assert_problem(r, 404)
    assert_problem(await client.get("/v1/surveys/not-an-id", headers=auth(tenant.api_key)), 404)


async def test_list_is_paged(client, tenant):
    h = auth(tenant.api_key)
    for i in range(3):
        await create_survey(client, tenant, title=f"S{i}")
    first = (await client.get("/v1/surveys?limit=2", headers=h)).json()
    assert [s["title"] for s in first["items"]] == ["S2", "S1"]
    rest = await client.get(f"/v1/surveys?limit=2&cursor={first['next_cursor']}", headers=h)
    assert [s["title"] for s in rest.json()["items"]] == ["S0"]
    assert rest.json()["next_cursor"] is None
