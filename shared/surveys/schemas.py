"""Survey shapes: questions and their types, surveys (`SurveyCreate` / `SurveyUpdate` /
`SurveyRead`), distributions, the respondent's side, results and interviews."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.customers.schemas import (
    AgeBand,
    DecisionRole,
    EducationLevel,
    Gender,
    JobLevel,
    MaritalStatus,
)
from shared.validation import Id, Timestamp, text

QuestionType = Literal[
    "single_choice",
    "multiple_choice",
    "rating",
    "nps",
    "number",
    "short_text",
    "long_text",
    "date",
    "yes_no",
]
Category = Literal[
    "demographic", "education", "career", "financial", "psychographic", "satisfaction", "other"
]
Status = Literal["draft", "active", "closed"]
Group = Literal["frequent_buyers", "one_time_buyers", "cart_abandoners", "prospects"]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Scalar = str | int | float | bool
TEXT_LIMITS = {"short_text": 200, "long_text": 5000}
MIN_QUESTIONS, MAX_QUESTIONS = 7, 20

# Profile facts a question can fill: fact -> (answer types that fit, allowed values or None).
# The allowed values are the profile's own (shared.customers.schemas), so a fact that gains a
# value can be asked for at once.
_AGE = get_args(AgeBand)
_MARITAL = get_args(MaritalStatus)
_GENDER = get_args(Gender)
_EDUCATION = get_args(EducationLevel)
_JOB = get_args(JobLevel)
DECISION_ROLES: tuple[str, ...] = get_args(DecisionRole)
MAPPABLE: dict[str, tuple[frozenset[str], tuple[str, ...] | None]] = {
    "age_band": (frozenset({"single_choice"}), _AGE),
    "gender": (frozenset({"single_choice"}), _GENDER),
    "marital_status": (frozenset({"single_choice"}), _MARITAL),
    "education_level": (frozenset({"single_choice"}), _EDUCATION),
    "job_level": (frozenset({"single_choice"}), _JOB),
    "decision_role": (frozenset({"single_choice"}), DECISION_ROLES),
    "income_band": (frozenset({"single_choice", "short_text"}), None),
    "preferred_channel": (frozenset({"single_choice", "short_text"}), None),
    "occupation": (frozenset({"single_choice", "short_text"}), None),
    "industry": (frozenset({"single_choice", "short_text"}), None),
    "city": (frozenset({"single_choice", "short_text"}), None),
    "region": (frozenset({"single_choice", "short_text"}), None),
    "children": (frozenset({"number"}), None),
    "interests": (frozenset({"multiple_choice"}), None),
    "values": (frozenset({"multiple_choice"}), None),
    "lifestyle": (frozenset({"multiple_choice"}), None),
    "motivations": (frozenset({"multiple_choice"}), None),
}
# Column widths of the text facts: a longer answer could not be stored as the fact.
FACT_WIDTH = {
    "income_band": 32,
    "preferred_channel": 32,
    "occupation": 200,
    "industry": 200,
    "city": 200,
    "region": 100,
}


class ShowIf(BaseModel):
    """Skip logic: show this question only if `question` (an earlier one) was answered with
    `answer` (or, given a list, any of them)."""

    model_config = ConfigDict(extra="forbid")

    question: Key
    answer: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _plain(self) -> ShowIf:
        values = self.answer if isinstance(self.answer, list) else [self.answer]
        if not 0 < len(values) <= 100:
            raise ValueError("answer: give one value or a list of 1 to 100")
        for v in values:
            if isinstance(v, str) and ("\x00" in v or len(v) > 200):
                raise ValueError("answer: text of at most 200 characters, without NUL")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError("answer: a finite number")
        return self


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Key = Field(description="Stable id of the question within the survey.")
    text: text(500)  # type: ignore[valid-type]
    type: QuestionType
    required: bool = False
    category: Category = "other"
    choices: list[text(200)] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=100, description="For single and multiple choice."
    )
    scale_min: int | None = Field(default=None, ge=0, le=10, description="Rating (default 1).")
    scale_max: int | None = Field(default=None, ge=1, le=10, description="Rating (default 5).")
    min: float | None = Field(default=None, ge=-1e12, le=1e12, description="Number answers.")
    max: float | None = Field(default=None, ge=-1e12, le=1e12, description="Number answers.")
    max_length: int | None = Field(default=None, ge=1, le=5000, description="Text answers.")
    maps_to: str | None = Field(
        default=None, max_length=64, description="The profile fact a completed answer sets."
    )
    show_if: ShowIf | None = None
    self_reported: bool = Field(
        default=False,
        description="Financial questions are always self-reported: weigh them accordingly.",
    )

    @model_validator(mode="after")
    def _fits(self) -> Question:
        self._check_choices()
        self._check_ranges()
        if self.type in TEXT_LIMITS:
            limit = TEXT_LIMITS[self.type]
            self.max_length = min(self.max_length or limit, limit)
        elif self.max_length is not None:
            raise ValueError("only text questions take max_length")
        if self.category == "financial":
            self.self_reported = True
        if self.maps_to is not None:
            self._check_mapping(self.maps_to)
        return self

    def _check_choices(self) -> None:
        if self.type in ("single_choice", "multiple_choice"):
            if not self.choices:
                raise ValueError(f"a {self.type} question needs choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError("choices must be distinct")
        elif self.choices is not None:
            raise ValueError(f"a {self.type} question takes no choices")

    def _check_ranges(self) -> None:
        if self.type == "rating":
            self.scale_min = 1 if self.scale_min is None else self.scale_min
            self.scale_max = 5 if self.scale_max is None else self.scale_max
            if self.scale_min >= self.scale_max:
                raise ValueError("scale_min must be below scale_max")
        elif self.scale_min is not None or self.scale_max is not None:
            raise ValueError("only rating questions take a scale")
        if self.type != "number" and (self.min is not None or self.max is not None):
            raise ValueError("only number questions take min and max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")

    def _check_mapping(self, fact: str) -> None:
        if fact not in MAPPABLE:
            known = ", ".join(sorted(MAPPABLE))
            raise ValueError(
                f"maps_to: {fact!r} is not a fact a survey can set; use one of {known}"
            )
        types, allowed = MAPPABLE[fact]
        if self.type not in types:
            raise ValueError(f"maps_to: {fact!r} needs a {' or '.join(sorted(types))} question")
        if allowed is not None and self.choices is not None:
            wrong = [c for c in self.choices if c not in allowed]
            if wrong:
                raise ValueError(
                    f"maps_to: {fact!r} takes only {', '.join(allowed)}; not {', '.join(wrong)}"
                )
        width = FACT_WIDTH.get(fact)
        if width is not None:
            if self.max_length is not None:
                self.max_length = min(self.max_length, width)
            if self.choices is not None and any(len(c) > width for c in self.choices):
                raise ValueError(f"maps_to: {fact!r} holds at most {width} characters")
        if fact == "children":
            self.min = max(self.min if self.min is not None else 0, 0)
            self.max = min(self.max if self.max is not None else 30, 30)


def check_questions(questions: list[Question]) -> list[Question]:
    keys = [q.key for q in questions]
    if len(set(keys)) != len(keys):
        raise ValueError("question keys must be distinct")
    seen: dict[str, Question] = {}
    for q in questions:
        if q.show_if is not None:
            target = seen.get(q.show_if.question)
            if target is None:
                raise ValueError(
                    f"question {q.key!r}: show_if must name an earlier question, "
                    f"not {q.show_if.question!r}"
                )
        seen[q.key] = q
    return questions


Questions = Annotated[list[Question], Field(max_length=100)]


class SurveyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: text(200)  # type: ignore[valid-type]
    introduction: text(5000) | None = None  # type: ignore[valid-type]
    template: Literal["customer_profile"] | None = Field(
        default=None, description="Start from a built-in template (the questions come with it)."
    )
    library: list[Key] | None = Field(
        default=None,
        max_length=100,
        description="Keys of library questions to include (`GET /v1/surveys/library`).",
    )
    questions: Questions = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> SurveyCreate:
        check_questions(self.questions)
        return self


class SurveyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: text(200) | None = None  # type: ignore[valid-type]
    introduction: text(5000) | None = None  # type: ignore[valid-type]
    status: Status | None = None
    questions: Questions | None = None

    @model_validator(mode="after")
    def _distinct(self) -> SurveyUpdate:
        if self.questions is not None:
            check_questions(self.questions)
        return self


class SurveyRead(BaseModel):
    id: uuid.UUID
    title: str
    introduction: str | None
    status: Status
    version: int
    template: str | None
    questions: list[Question]
    created_at: datetime
    updated_at: datetime
    warnings: list[str] = Field(
        default_factory=list, description="E.g. fewer than 7 or more than 20 questions."
    )


class LibraryQuestion(Question):
    templates: list[str] = Field(default_factory=list)


class DistributionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["invitations", "link"] = "invitations"
    segment_id: Id | None = None
    group: Group | None = None

    @model_validator(mode="after")
    def _audience(self) -> DistributionCreate:
        given = (self.segment_id is not None) + (self.group is not None)
        if self.kind == "invitations" and given != 1:
            raise ValueError("invitations go to one audience: give segment_id or group")
        if self.kind == "link" and given:
            raise ValueError("an anonymous link has no audience")
        return self


class Invitation(BaseModel):
    invitation_id: uuid.UUID
    customer_id: uuid.UUID
    external_id: str
    email: str | None
    token: str
    link: str


class DistributionRead(BaseModel):
    id: uuid.UUID
    survey_id: uuid.UUID
    kind: Literal["invitations", "link"]
    audience: dict[str, Any]
    recipients: int
    created_at: datetime


class DistributionCreated(DistributionRead):
    token: str | None = Field(default=None, description="The anonymous link's token.")
    link: str | None = None
    invitations: list[Invitation] = Field(
        default_factory=list,
        description="One single-use token per recipient. Shown only in this answer (also as "
        "CSV with `Accept: text/csv`): only digests are stored.",
    )


class RecipientRead(BaseModel):
    invitation_id: uuid.UUID
    customer_id: uuid.UUID | None
    external_id: str | None
    status: Literal["invited", "started", "completed"]


class PublicSurvey(BaseModel):
    title: str
    introduction: str | None
    questions: list[Question]
    answers: dict[str, Any]
    status: Literal["new", "partial", "completed"]


class PublicSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[Key, Any] = Field(default_factory=dict, max_length=100)
    complete: bool = Field(default=False, description="Finish: required questions checked.")


class PublicSubmitted(BaseModel):
    status: Literal["partial", "completed"]
    answers: dict[str, Any]
    resume_token: str | None = Field(
        default=None,
        description="For an anonymous link: the token to continue this response with.",
    )


class ChoiceCount(BaseModel):
    value: str
    count: int
    share: float


class Nps(BaseModel):
    promoters: int
    passives: int
    detractors: int
    score: float | None


class Csat(BaseModel):
    satisfied: int
    share: float | None


class QuestionResult(BaseModel):
    key: str
    text: str
    type: QuestionType
    category: Category
    self_reported: bool
    answered: int
    counts: list[ChoiceCount] = Field(default_factory=list)
    mean: float | None = None
    median: float | None = None
    nps: Nps | None = None
    csat: Csat | None = None
    texts: list[str] = Field(default_factory=list)


class AudienceRate(BaseModel):
    group: str
    invited: int
    responded: int
    rate: float | None
    share_of_invited: float | None
    share_of_respondents: float | None


class SurveyResults(BaseModel):
    survey_id: uuid.UUID
    audience: dict[str, Any]
    responses: int
    completed: int
    partial: int
    questions: list[QuestionResult]
    response_rates: list[AudienceRate]


InterviewTag = Literal["goal", "pain_point", "objection", "motivation", "channel", "other"]


class Quote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: text(2000)  # type: ignore[valid-type]
    tags: list[InterviewTag] = Field(default_factory=list, max_length=10)


class InterviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Id = Field(description="Portrait id or `ext:<external id>`.")
    interviewed_at: Timestamp
    interviewer: text(200) | None = None  # type: ignore[valid-type]
    notes: text(50_000) | None = None  # type: ignore[valid-type]
    quotes: list[Quote] = Field(default_factory=list, max_length=200)
    tags: list[InterviewTag] = Field(default_factory=list, max_length=20)


class InterviewUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interviewed_at: Timestamp | None = None
    interviewer: text(200) | None = None  # type: ignore[valid-type]
    notes: text(50_000) | None = None  # type: ignore[valid-type]
    quotes: list[Quote] | None = Field(default=None, max_length=200)
    tags: list[InterviewTag] | None = Field(default=None, max_length=20)


class InterviewRead(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    interviewed_at: datetime
    interviewer: str | None
    notes: str | None
    quotes: list[Quote]
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class SurveySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    survey_answers_override_store: bool = Field(
        description="May a survey answer overwrite a fact the store sent? When false (the "
        "default) the store's value stays and the profile shows the survey's next to it."
    )


class ResponseRead(BaseModel):
    id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: int
    customer_id: uuid.UUID | None
    external_id: str | None
    status: Literal["partial", "completed"]
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    answers: dict[str, Any]
