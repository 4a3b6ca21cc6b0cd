"""The built-in question library, from the classic customer-profile surveys, and the templates
that draw from it."""

from __future__ import annotations

from typing import Any

from shared.surveys.schemas import DECISION_ROLES, LibraryQuestion, Question

_Q = dict[str, Any]

# fmt: off
_LIBRARY: tuple[_Q, ...] = (
    # Demographic
    {"key": "marital_status", "text": "Are you married?", "type": "single_choice",
     "category": "demographic", "maps_to": "marital_status",
     "choices": ["single", "married", "partnered", "divorced", "widowed", "other"]},
    {"key": "age_band", "text": "Which age group are you in?", "type": "single_choice",
     "category": "demographic", "maps_to": "age_band",
     "choices": ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]},
    {"key": "city", "text": "Which city do you live in?", "type": "short_text",
     "category": "demographic", "maps_to": "city"},
    {"key": "children", "text": "How many children do you have?", "type": "number",
     "category": "demographic", "maps_to": "children"},
    {"key": "children_ages", "text": "How old are your children?", "type": "multiple_choice",
     "category": "demographic", "choices": ["0-2", "3-5", "6-12", "13-17", "18+"],
     "show_if": None},
    {"key": "grew_up", "text": "Where did you grow up?", "type": "short_text",
     "category": "demographic"},
    # Education
    {"key": "education_level", "text": "What is the highest level of education you completed?",
     "type": "single_choice", "category": "education", "maps_to": "education_level",
     "choices": ["high_school", "some_college", "vocational", "associate", "bachelor", "master",
                 "doctorate", "other"]},
    {"key": "field_of_study", "text": "What did you study?", "type": "short_text",
     "category": "education"},
    # Career
    {"key": "industry", "text": "Which industry do you work in?", "type": "short_text",
     "category": "career", "maps_to": "industry"},
    {"key": "job_level", "text": "Which best describes your job level?", "type": "single_choice",
     "category": "career", "maps_to": "job_level",
     "choices": ["student", "entry", "mid", "senior", "manager", "director", "executive",
                 "owner", "retired", "unemployed", "other"]},
    {"key": "career_path", "text": "How did your career path bring you to where you are?",
     "type": "long_text", "category": "career"},
    # Financial (self-reported)
    {"key": "income_band", "text": "What is your household's yearly income?",
     "type": "single_choice", "category": "financial", "maps_to": "income_band",
     "choices": ["<25k", "25k-50k", "50k-75k", "75k-100k", "100k-150k", "150k+"]},
    {"key": "high_value_purchases", "text": "How often do you buy high-value items?",
     "type": "single_choice", "category": "financial",
     "choices": ["monthly", "a few times a year", "once a year", "rarely"]},
    {"key": "decision_role", "text": "Who decides purchases in your household?",
     "type": "single_choice", "category": "financial", "maps_to": "decision_role",
     "choices": list(DECISION_ROLES)},
    # Psychographic
    {"key": "interests", "text": "What are you interested in?", "type": "multiple_choice",
     "category": "psychographic", "maps_to": "interests",
     "choices": ["cooking", "fitness", "travel", "fashion", "technology", "home decor",
                 "beauty", "gaming", "reading", "outdoors", "music", "art"]},
    {"key": "values", "text": "What matters most to you when you shop?",
     "type": "multiple_choice", "category": "psychographic", "maps_to": "values",
     "choices": ["quality", "price", "sustainability", "convenience", "health", "family",
                 "status", "novelty"]},
    {"key": "goals", "text": "What are you trying to achieve when you buy from us?",
     "type": "multiple_choice", "category": "psychographic",
     "choices": ["save money", "save time", "treat myself", "look good", "stay healthy",
                 "care for my family", "find gifts"]},
    {"key": "motivations", "text": "What makes you buy from us?", "type": "multiple_choice",
     "category": "psychographic", "maps_to": "motivations",
     "choices": ["low prices", "product quality", "fast delivery", "good service",
                 "recommendations", "brand", "discounts"]},
    {"key": "frustrations", "text": "What frustrates you when shopping online?",
     "type": "multiple_choice", "category": "psychographic",
     "choices": ["shipping costs", "slow delivery", "items out of stock", "returns",
                 "unclear sizing", "too many emails", "hidden fees"]},
    {"key": "preferred_channel", "text": "How do you prefer to hear from us?",
     "type": "single_choice", "category": "psychographic", "maps_to": "preferred_channel",
     "choices": ["email", "sms", "app", "social", "phone"]},
    # Satisfaction
    {"key": "nps", "text": "How likely are you to recommend us to a friend?", "type": "nps",
     "category": "satisfaction", "required": True},
    {"key": "csat", "text": "How satisfied are you with your last purchase?", "type": "rating",
     "category": "satisfaction", "scale_min": 1, "scale_max": 5},
)
# fmt: on

TEMPLATES: dict[str, tuple[str, ...]] = {
    "customer_profile": (
        "age_band",
        "marital_status",
        "children",
        "city",
        "education_level",
        "job_level",
        "income_band",
        "decision_role",
        "interests",
        "values",
        "goals",
        "motivations",
        "frustrations",
        "preferred_channel",
        "nps",
    ),
}


def _clean(q: _Q) -> _Q:
    return {k: v for k, v in q.items() if v is not None}


LIBRARY: dict[str, Question] = {q["key"]: Question.model_validate(_clean(q)) for q in _LIBRARY}


def library() -> list[LibraryQuestion]:
    return [
        LibraryQuestion(
            **q.model_dump(),
            templates=[name for name, keys in TEMPLATES.items() if q.key in keys],
        )
        for q in LIBRARY.values()
    ]


def questions(keys: list[str] | tuple[str, ...]) -> list[Question]:
    """Copies of library questions (unknown keys raise KeyError)."""
    return [LIBRARY[k].model_copy(deep=True) for k in keys]
