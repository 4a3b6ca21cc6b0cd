"""Surveys through the API: a small survey with every question type, activation, sending."""

from __future__ import annotations

from typing import Any

from tests.helpers import auth


def questions() -> list[dict[str, Any]]:
    """One question of each type; `kids_ages` is shown only to parents."""
    return [
        {
            "key": "role",
            "text": "Who decides purchases in your household?",
            "type": "single_choice",
            "category": "financial",
            "choices": ["decides", "influences", "shares", "other"],
            "maps_to": "decision_role",
            "required": True,
        },
        {
            "key": "marital",
            "text": "Are you married?",
            "type": "single_choice",
            "category": "demographic",
            "choices": ["single", "married", "partnered", "divorced", "widowed", "other"],
            "maps_to": "marital_status",
        },
        {"key": "parent", "text": "Do you have children?", "type": "yes_no"},
        {
            "key": "kids_ages",
            "text": "How old are they?",
            "type": "multiple_choice",
            "choices": ["0-2", "3-5", "6-12", "13-17"],
            "show_if": {"question": "parent", "answer": True},
        },
        {
            "key": "nps",
            "text": "How likely are you to recommend us?",
            "type": "nps",
            "category": "satisfaction",
            "required": True,
        },
        {"key": "csat", "text": "How satisfied are you?", "type": "rating"},
        {"key": "spend", "text": "How much do you spend a month?", "type": "number", "min": 0},
        {"key": "why", "text": "Why do you shop with us?", "type": "long_text"},
        {"key": "birthday", "text": "When is your birthday?", "type": "date"},
    ]


async def create_survey(client, tenant, **overrides: Any) -> dict[str, Any]:
    body = {"title": "Who are you?", "questions": questions(), **overrides}
    r = await client.post("/v1/surveys", json=body, headers=auth(tenant.api_key))
    assert r.status_code == 201, r.text
    return r.json()


async def active_survey(client, tenant, **overrides: Any) -> dict[str, Any]:
    survey = await create_survey(client, tenant, **overrides)
    r = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"status": "active"}, headers=auth(tenant.api_key)
    )
    assert r.status_code == 200, r.text
    return r.json()


async def distribute(client, tenant, survey_id: str, **body: Any) -> dict[str, Any]:
    r = await client.post(
        f"/v1/surveys/{survey_id}/distributions", json=body, headers=auth(tenant.api_key)
    )
    assert r.status_code == 201, r.text
    return r.json()
