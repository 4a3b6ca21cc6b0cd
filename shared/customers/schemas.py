"""Customer shapes: what platforms send (`CustomerIn`), what a marketer edits
(`CustomerPatch`), and the profile the API shows (`CustomerRead`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from shared.analytics.schemas import CustomerValueRead, LifecycleStage, RfmSegment
from shared.validation import (
    BirthDate,
    Country,
    Id,
    Instant,
    JsonObject,
    Str32,
    Str64,
    Str100,
    Str255,
    Tags,
    Timestamp,
    text,
)


class FactSource(StrEnum):
    store = "store"
    survey = "survey"
    inferred = "inferred"
    manual = "manual"


Gender = Literal["female", "male", "non_binary", "other", "prefer_not_to_say"]
MaritalStatus = Literal["single", "married", "partnered", "divorced", "widowed", "other"]
EducationLevel = Literal[
    "none",
    "high_school",
    "some_college",
    "vocational",
    "associate",
    "bachelor",
    "master",
    "doctorate",
    "other",
]
JobLevel = Literal[
    "student",
    "entry",
    "mid",
    "senior",
    "manager",
    "director",
    "executive",
    "owner",
    "retired",
    "unemployed",
    "other",
]
AgeBand = Literal["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
DecisionRole = Literal["decides", "influences", "shares", "other"]

# Every typed fact, by group: sources are kept per fact, and filters are offered on each.
FACT_GROUPS: dict[str, tuple[str, ...]] = {
    "demographic": (
        "birth_date",
        "age_band",
        "gender",
        "marital_status",
        "children",
        "income_band",
        "occupation",
        "industry",
        "job_level",
        "education_level",
        "decision_role",
    ),
    "geographic": ("country", "region", "city", "postcode", "timezone"),
    "psychographic": ("interests", "values", "lifestyle", "motivations", "preferred_channel"),
    "contact": ("email", "phone", "first_name", "last_name", "accepts_marketing"),
    "other": ("referred_by", "traits"),
}
FACTS: tuple[str, ...] = tuple(f for group in FACT_GROUPS.values() for f in group)


class CustomerFacts(BaseModel):
    """The facts a customer can have; every one optional. Unknown fields are refused, so a
    typo is an error instead of silently lost data."""

    model_config = ConfigDict(extra="forbid")

    email: text(320) | None = None  # type: ignore[valid-type]
    phone: Str64 | None = None
    first_name: text(200) | None = None  # type: ignore[valid-type]
    last_name: text(200) | None = None  # type: ignore[valid-type]
    accepts_marketing: bool | None = None
    birth_date: BirthDate | None = None
    age_band: AgeBand | None = None
    gender: Gender | None = None
    marital_status: MaritalStatus | None = None
    children: int | None = Field(default=None, ge=0, le=30)
    income_band: Str32 | None = None
    occupation: text(200) | None = None  # type: ignore[valid-type]
    industry: text(200) | None = None  # type: ignore[valid-type]
    job_level: JobLevel | None = None
    education_level: EducationLevel | None = None
    decision_role: DecisionRole | None = Field(
        default=None, description="Who decides purchases in the household."
    )
    country: Country | None = None
    region: Str100 | None = None
    city: text(200) | None = None  # type: ignore[valid-type]
    postcode: Str32 | None = None
    timezone: Str64 | None = None
    interests: Tags | None = None
    values: Tags | None = None
    lifestyle: Tags | None = None
    motivations: Tags | None = None
    preferred_channel: Str32 | None = None
    referred_by: Str255 | None = None
    traits: JsonObject | None = None


class CustomerIn(CustomerFacts):
    """A customer as a platform sends it; upserted by `external_id`."""

    external_id: Id
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class CustomerPatch(CustomerFacts):
    """A partial edit: only the fields sent change, and they are marked `manual`."""


class SurveyClaim(BaseModel):
    """What a survey answer said about a fact the store's data kept (the tenant's policy did
    not let the answer overwrite it)."""

    value: Any
    ref: str | None = None
    set_at: datetime | None = None


class FactProvenance(BaseModel):
    source: FactSource
    set_at: datetime
    ref: str | None = Field(default=None, description="For `survey`: the survey's id.")
    survey: SurveyClaim | None = Field(
        default=None, description="A survey's differing answer, when the store's value stayed."
    )


class Behaviour(BaseModel):
    order_count: int
    total_spent: Decimal
    average_order_value: Decimal | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    days_since_last_order: int | None
    tenure_days: int
    refund_count: int
    refunded_amount: Decimal
    top_categories: list[str]
    preferred_order_channel: str | None
    preferred_event_channel: str | None
    preferred_device: str | None
    referral_count: int

    @field_serializer("total_spent", "average_order_value", "refunded_amount")
    def _money(self, value: Decimal | None) -> str | None:
        return None if value is None else format(value.quantize(Decimal("0.01")), "f")


class CustomerRead(BaseModel):
    id: uuid.UUID
    external_id: str
    created_at: datetime
    updated_at: datetime
    demographic: dict[str, Any]
    geographic: dict[str, Any]
    psychographic: dict[str, Any]
    contact: dict[str, Any]
    referred_by: str | None
    traits: dict[str, Any]
    behaviour: Behaviour
    value: CustomerValueRead | None = Field(
        default=None, description="RFM, lifecycle and predictions (null until analysed)."
    )
    sources: dict[str, FactProvenance] = Field(
        description="Where each fact came from and when it was set."
    )


class UpsertOutcome(StrEnum):
    created = "created"
    updated = "updated"
    ignored_stale = "ignored_stale"
    ignored_erased = "ignored_erased"


class CustomerUpserted(BaseModel):
    outcome: UpsertOutcome
    customer: CustomerRead | None


class CustomerSort(StrEnum):
    created_at = "created_at"
    created_at_desc = "-created_at"
    total_spent = "total_spent"
    total_spent_desc = "-total_spent"
    order_count = "order_count"
    order_count_desc = "-order_count"
    last_order_at = "last_order_at"
    last_order_at_desc = "-last_order_at"
    predicted_clv = "predicted_clv"
    predicted_clv_desc = "-predicted_clv"


# Bounds of the numeric filters: past them a count overflows bigint and a day count overflows
# a date, which were 500s.
MAX_COUNT = 1_000_000_000
MAX_DAYS = 36_500


class CustomerFilters(BaseModel):
    """Filters for `GET /v1/customers`: equality on typed facts, ranges on computed ones."""

    model_config = ConfigDict(extra="forbid")

    email: text(320) | None = None  # type: ignore[valid-type]
    gender: Gender | None = None
    marital_status: MaritalStatus | None = None
    age_band: AgeBand | None = None
    income_band: Str32 | None = None
    occupation: text(200) | None = None  # type: ignore[valid-type]
    industry: text(200) | None = None  # type: ignore[valid-type]
    job_level: JobLevel | None = None
    education_level: EducationLevel | None = None
    decision_role: DecisionRole | None = None
    country: Country | None = None
    region: Str100 | None = None
    city: text(200) | None = None  # type: ignore[valid-type]
    postcode: Str32 | None = None
    interest: Str100 | None = Field(default=None, description="Has this interest.")
    value: Str100 | None = Field(default=None, description="Holds this value.")
    lifestyle: Str100 | None = None
    motivation: Str100 | None = None
    preferred_channel: Str32 | None = None
    accepts_marketing: bool | None = None
    referred_by: Str255 | None = None
    min_age: int | None = Field(default=None, ge=0, le=130)
    max_age: int | None = Field(default=None, ge=0, le=130)
    timezone: Str64 | None = None
    min_children: int | None = Field(default=None, ge=0, le=30)
    max_children: int | None = Field(default=None, ge=0, le=30)
    min_orders: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    max_orders: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    min_total_spent: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_total_spent: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    min_average_order_value: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_average_order_value: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    min_refunds: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    min_referrals: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    max_days_since_last_order: int | None = Field(default=None, ge=0, le=MAX_DAYS)
    min_days_since_last_order: int | None = Field(default=None, ge=0, le=MAX_DAYS)
    min_tenure_days: int | None = Field(default=None, ge=0, le=MAX_DAYS)
    top_category: Str100 | None = Field(default=None, description="Among top categories.")
    preferred_device: Str32 | None = None
    preferred_order_channel: Str32 | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None
    first_order_after: Instant | None = None
    first_order_before: Instant | None = None
    last_order_after: Instant | None = None
    last_order_before: Instant | None = None
    rfm_segment: RfmSegment | None = None
    lifecycle_stage: LifecycleStage | None = None
    min_predicted_clv: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_predicted_clv: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    min_churn_risk: float | None = Field(default=None, ge=0, le=1)
    max_churn_risk: float | None = Field(default=None, ge=0, le=1)
    min_prob_alive: float | None = Field(default=None, ge=0, le=1)
    longest_tenure: bool | None = Field(default=None, description="Core: bought longest.")
    referrer: bool | None = Field(default=None, description="Core: refers others.")
    above_average_spender: bool | None = Field(
        default=None, description="Core: spends above the average buyer."
    )
    sort: CustomerSort = CustomerSort.created_at_desc
    # Paging lives here too: one query model, so an unknown parameter is a 422, not ignored.
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=500)


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["order", "event", "survey_response", "interview"]
    id: str
    summary: str
    data: dict[str, Any]


class CustomerExport(BaseModel):
    customer: CustomerRead
    orders: list[dict[str, Any]]
    events: list[dict[str, Any]]
    identities: list[str]
    survey_responses: list[dict[str, Any]] = Field(default_factory=list)
    survey_invitations: list[dict[str, Any]] = Field(default_factory=list)
    interviews: list[dict[str, Any]] = Field(default_factory=list)
    exported_at: datetime
