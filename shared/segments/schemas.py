"""Segment shapes: definitions, previews, members, the segment's portrait, STP comparison."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.segments.conditions import MAX_DEPTH, Condition, depth
from shared.validation import Id, text

SegmentKind = Literal["rule", "static", "segmentation", "builtin"]


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: text(200)  # type: ignore[valid-type]
    description: text(2000) | None = None  # type: ignore[valid-type]
    kind: Literal["rule", "static"] = "rule"
    condition: Condition | None = Field(
        default=None, description="The rule (a JSON condition tree); for `rule` segments."
    )
    customer_ids: list[Id] | None = Field(
        default=None,
        max_length=100_000,
        description="For `static` segments: Portrait ids or `ext:<external id>`.",
    )
    refresh_every_minutes: int | None = Field(default=None, ge=5, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _shape(self) -> SegmentCreate:
        if self.kind == "rule":
            if self.condition is None:
                raise ValueError("a rule segment needs a condition")
            if self.customer_ids is not None:
                raise ValueError("a rule segment takes no customer_ids")
            if depth(self.condition) > MAX_DEPTH:
                raise ValueError(f"the condition nests deeper than {MAX_DEPTH} levels")
        else:
            if self.customer_ids is None:
                raise ValueError("a static segment needs customer_ids")
            if self.condition is not None or self.refresh_every_minutes is not None:
                raise ValueError("a static segment has no condition or refresh schedule")
        return self


class SegmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: text(200) | None = None  # type: ignore[valid-type]
    description: text(2000) | None = None  # type: ignore[valid-type]
    condition: Condition | None = None
    refresh_every_minutes: int | None = Field(default=None, ge=5, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _depth(self) -> SegmentUpdate:
        if self.condition is not None and depth(self.condition) > MAX_DEPTH:
            raise ValueError(f"the condition nests deeper than {MAX_DEPTH} levels")
        return self


class Growth(BaseModel):
    period_days: int
    size_then: int
    entered: int
    left: int
    change: int
    rate: float | None = Field(description="change / size_then; null when it was empty")


class SegmentRead(BaseModel):
    id: uuid.UUID
    slug: str | None
    name: str
    description: str | None
    kind: SegmentKind
    condition: dict[str, Any] | None
    details: dict[str, Any]
    refresh_every_minutes: int | None
    size: int
    refreshed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    refresh_job_id: uuid.UUID | None = Field(
        default=None, description="Set when this answer queued a membership refresh."
    )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    condition: Condition
    sample_size: int = Field(default=10, ge=0, le=50)

    @model_validator(mode="after")
    def _depth(self) -> PreviewRequest:
        if depth(self.condition) > MAX_DEPTH:
            raise ValueError(f"the condition nests deeper than {MAX_DEPTH} levels")
        return self


class CustomerBrief(BaseModel):
    id: uuid.UUID
    external_id: str
    first_name: str | None
    country: str | None
    order_count: int
    total_spent: str


class PreviewResult(BaseModel):
    size: int
    total_customers: int
    share: float
    sample: list[CustomerBrief]


class MemberRead(BaseModel):
    customer_id: uuid.UUID
    external_id: str
    entered_at: datetime


class Bucket(BaseModel):
    value: str
    count: int
    share: float
    store_share: float
    lift: float | None


class SegmentProfile(BaseModel):
    segment_id: uuid.UUID
    size: int
    total_customers: int
    share_of_customers: float
    revenue: str
    revenue_share: float
    average_order_value: str | None
    predicted_value: str | None
    average_predicted_value: str | None
    growth: Growth
    size_history: list[dict[str, Any]]
    distributions: dict[str, list[Bucket]]


class CompareWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: float = Field(default=1.0, ge=0)
    revenue: float = Field(default=1.0, ge=0)
    predicted_clv: float = Field(default=1.0, ge=0)
    average_order_value: float = Field(default=0.5, ge=0)
    growth: float = Field(default=0.5, ge=0)
    reachability: float = Field(default=0.5, ge=0)


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_ids: list[Id] = Field(min_length=1, max_length=50)
    weights: CompareWeights = Field(default_factory=CompareWeights)
    period_days: int = Field(default=30, ge=1, le=3650)


class SegmentScore(BaseModel):
    segment_id: uuid.UUID
    name: str
    rank: int
    score: float
    size: int
    revenue: str
    predicted_clv: str
    average_order_value: str | None
    growth: Growth
    reachability: float
    components: dict[str, float] = Field(
        description="Each metric scaled 0..1 across the compared segments, before weighting."
    )


class CompareResult(BaseModel):
    weights: CompareWeights
    period_days: int
    ranking: list[SegmentScore]
