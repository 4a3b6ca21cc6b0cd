"""Funnel and path shapes: definitions (validated at the edge), run requests, results."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.jobs.schemas import JobRead
from shared.validation import Tag, text

EventName = Tag  # 1 to 100 characters, no NUL
PropertyName = Tag
Scalar = Annotated[str, Field(max_length=500)] | int | float | bool
FilterOp = Literal["eq", "neq", "in", "starts_with", "contains", "exists", "gt", "gte", "lt", "lte"]
MAX_WINDOW_S = 366 * 86_400


def _plain(value: object) -> None:
    """What PostgreSQL can compare with: no NUL in text, finite numbers."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")


class StepFilter(BaseModel):
    """A condition on the event's `properties` (e.g. `path` starts with `/checkout`)."""

    model_config = ConfigDict(extra="forbid")

    property: PropertyName
    op: FilterOp = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> StepFilter:
        if self.op == "exists":
            return self
        if self.op == "in":
            if not isinstance(self.value, list) or not 1 <= len(self.value) <= 100:
                raise ValueError("`in` takes a list of 1 to 100 values")
            for v in self.value:
                _plain(v)
            return self
        if self.value is None or isinstance(self.value, list):
            raise ValueError(f"`{self.op}` takes one value")
        if self.op in ("gt", "gte", "lt", "lte") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError(f"`{self.op}` compares numbers")
        if self.op in ("starts_with", "contains") and not isinstance(self.value, str):
            raise ValueError(f"`{self.op}` takes a string")
        _plain(self.value)
        return self


class FunnelStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: EventName
    filters: list[StepFilter] = Field(default_factory=list, max_length=10)
    label: text(100) | None = None  # type: ignore[valid-type]


class FunnelDateRange(BaseModel):
    """Attempts must start in [from, to); `last_days` means the days up to the run."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    last_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _one_way(self) -> FunnelDateRange:
        if self.last_days is not None:
            if self.from_ is not None or self.to is not None:
                raise ValueError("give either `last_days` or `from`/`to`")
        elif self.from_ is None or self.to is None:
            raise ValueError("give `last_days`, or both `from` and `to`")
        elif self.from_ >= self.to:
            raise ValueError("`from` must be before `to`")
        return self


class FunnelDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[FunnelStep] = Field(min_length=2, max_length=20)
    order: Literal["ordered", "strict", "any"] = "ordered"
    window_seconds: int = Field(
        default=7 * 86_400, ge=1, le=MAX_WINDOW_S, description="Conversion window from step 1."
    )
    exclusions: list[FunnelStep] = Field(default_factory=list, max_length=10)
    date_range: FunnelDateRange = Field(default_factory=lambda: FunnelDateRange(last_days=30))
    count: Literal["customers", "sessions"] = Field(
        default="customers",
        description="Unique customers (known, or anonymous visitors not yet identified), "
        "or sessions.",
    )


class FunnelCreate(FunnelDefinition):
    name: text(200) = Field(min_length=1)  # type: ignore[valid-type]
    description: text(2000) | None = None  # type: ignore[valid-type]


class FunnelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: text(200) | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
    description: text(2000) | None = None  # type: ignore[valid-type]
    steps: list[FunnelStep] | None = Field(default=None, min_length=2, max_length=20)
    order: Literal["ordered", "strict", "any"] | None = None
    window_seconds: int | None = Field(default=None, ge=1, le=MAX_WINDOW_S)
    exclusions: list[FunnelStep] | None = Field(default=None, max_length=10)
    date_range: FunnelDateRange | None = None
    count: Literal["customers", "sessions"] | None = None


class FunnelRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    steps: list[dict[str, Any]]
    order: str
    window_seconds: int
    exclusions: list[dict[str, Any]]
    date_range: dict[str, Any]
    count: str
    created_at: datetime
    updated_at: datetime


ProfileField = Literal[
    "country", "region", "city", "gender", "age_band", "income_band", "marital_status",
    "occupation", "industry", "job_level", "education_level", "preferred_channel",
    "order_channel", "event_channel", "preferred_device", "timezone",
]  # fmt: skip


class FunnelBreakdown(BaseModel):
    """Split the funnel by one thing. `device`, `channel` and `event_property` take the value
    on the attempt's first event; `profile` a customer fact (or `traits.<key>`); `segment`
    membership of the given segments (now); `persona` membership of the given personas'
    segments (now), shown by the personas' names."""

    model_config = ConfigDict(extra="forbid")

    by: Literal["device", "channel", "event_property", "profile", "segment", "persona"]
    property: PropertyName | None = Field(
        default=None, description="For `event_property`: the key; for `profile`: the field."
    )
    segment_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20
    )
    persona_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20
    )
    top: int = Field(default=10, ge=1, le=50, description="Values kept; the rest are `other`.")

    @model_validator(mode="after")
    def _needs(self) -> FunnelBreakdown:
        if self.by == "event_property" and self.property is None:
            raise ValueError("`event_property` needs `property`")
        if self.by == "profile":
            allowed = set(ProfileField.__args__)  # type: ignore[attr-defined]
            p = self.property or ""
            if p not in allowed and not (p.startswith("traits.") and len(p) > 7):
                raise ValueError(
                    f"`profile` needs `property`: one of {sorted(allowed)} or traits.<key>"
                )
        if self.by == "segment" and not self.segment_ids:
            raise ValueError("`segment` needs `segment_ids`")
        # A persona breakdown is run as one by the personas' segments (filled in by Portrait).
        if self.by not in ("segment", "persona") and self.segment_ids is not None:
            raise ValueError("only `segment` takes `segment_ids`")
        if self.by == "persona" and not self.persona_ids:
            raise ValueError("`persona` needs `persona_ids`")
        if self.by != "persona" and self.persona_ids is not None:
            raise ValueError("only `persona` takes `persona_ids`")
        if self.by in ("device", "channel", "segment", "persona") and self.property is not None:
            raise ValueError(f"`{self.by}` takes no `property`")
        return self


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    breakdown: FunnelBreakdown | None = None
    trend: Literal["day", "week", "month"] | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Significance level.")


class RunAccepted(JobRead):
    run_id: uuid.UUID


class RunRead(BaseModel):
    id: uuid.UUID
    funnel_id: uuid.UUID
    job_id: uuid.UUID | None
    status: str
    definition: dict[str, Any]
    params: dict[str, Any]
    created_at: datetime
    computed_at: datetime | None
    result: dict[str, Any] | None


class DropoffRead(BaseModel):
    customer_id: uuid.UUID | None
    external_id: str | None
    anonymous_id: str | None


class SaveAsSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: text(200) = Field(min_length=1)  # type: ignore[valid-type]
    description: text(2000) | None = None  # type: ignore[valid-type]


class DropoffsSave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1, le=20, description="Reached this step (1-based), went no further.")
    save_as_segment: SaveAsSegment


class PathsRequest(BaseModel):
    """The most common journeys after `start_event` (or before `end_event`)."""

    model_config = ConfigDict(extra="forbid")

    start_event: EventName | None = None
    end_event: EventName | None = None
    steps: int = Field(default=4, ge=1, le=10, description="Events followed after (before).")
    date_range: FunnelDateRange = Field(default_factory=lambda: FunnelDateRange(last_days=30))
    count: Literal["customers", "sessions"] = "customers"
    max_branches: int = Field(default=6, ge=1, le=50, description="Per node; rarer go to other.")
    min_share: float = Field(default=0.01, ge=0, le=1, description="Of all journeys; rarer: other.")
    collapse_repeats: bool = Field(default=True, description="A run of one event counts once.")

    @model_validator(mode="after")
    def _one_anchor(self) -> PathsRequest:
        if (self.start_event is None) == (self.end_event is None):
            raise ValueError("give exactly one of `start_event` and `end_event`")
        return self
