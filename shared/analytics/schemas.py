"""Customer-value shapes: the job's parameters, the per-customer facts, the summary."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from shared.validation import Timestamp


class RfmSegment(StrEnum):
    champions = "Champions"
    loyal = "Loyal Customers"
    potential_loyalist = "Potential Loyalist"
    new = "New Customers"
    promising = "Promising"
    need_attention = "Need Attention"
    about_to_sleep = "About To Sleep"
    at_risk = "At Risk"
    cannot_lose = "Cannot Lose Them"
    hibernating = "Hibernating"
    lost = "Lost"


class LifecycleStage(StrEnum):
    prospect = "prospect"
    new = "new"
    active = "active"
    at_risk = "at_risk"
    churned = "churned"
    reactivated = "reactivated"


class CustomerValueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: Timestamp | None = Field(
        default=None,
        description="End of the observation period; orders after it are ignored. Default now.",
    )
    horizon_days: int = Field(default=365, ge=30, le=3650, description="CLV horizon.")


class CustomerValueRead(BaseModel):
    """The value facts on a profile (null until the analysis has run)."""

    recency_days: int | None
    frequency: int
    monetary: Decimal
    r_score: int
    f_score: int
    m_score: int
    rfm_segment: RfmSegment | None
    lifecycle_stage: LifecycleStage
    prob_alive: float | None
    expected_orders_90d: float | None
    expected_spend: Decimal | None
    predicted_clv: Decimal | None
    churn_risk: float | None
    longest_tenure: bool
    referrer: bool
    above_average_spender: bool
    computed_at: datetime

    @field_serializer("monetary", "expected_spend", "predicted_clv")
    def _money(self, value: Decimal | None) -> str | None:
        return None if value is None else format(value.quantize(Decimal("0.01")), "f")


class ValueSummary(BaseModel):
    computed_at: datetime | None
    as_of: datetime | None
    horizon_days: int | None
    customers: int
    rfm_segments: dict[str, int]
    lifecycle_stages: dict[str, int]
    core: dict[str, int]
    total_predicted_clv: str
    models: dict[str, Any]
