"""Customer value: per-customer RFM, lifecycle, predictions and core flags (replaced whole on
each run), and the runs themselves with their fitted parameters."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class CustomerValue(Base):
    __tablename__ = "customer_values"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("ix_customer_values_tenant_id_rfm_segment", "tenant_id", "rfm_segment"),
        Index("ix_customer_values_tenant_id_lifecycle_stage", "tenant_id", "lifecycle_stage"),
        Index("ix_customer_values_tenant_id_predicted_clv", "tenant_id", "predicted_clv"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[Decimal] = mapped_column(Numeric)
    r_score: Mapped[int] = mapped_column(SmallInteger)
    f_score: Mapped[int] = mapped_column(SmallInteger)
    m_score: Mapped[int] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    prob_alive: Mapped[float | None] = mapped_column(Float)
    expected_orders_90d: Mapped[float | None] = mapped_column(Float)
    expected_spend: Mapped[Decimal | None] = mapped_column(Numeric)
    predicted_clv: Mapped[Decimal | None] = mapped_column(Numeric)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    longest_tenure: Mapped[bool] = mapped_column(Boolean)
    referrer: Mapped[bool] = mapped_column(Boolean)
    above_average_spender: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ValueRun(Base):
    __tablename__ = "value_runs"
    __table_args__ = (Index("ix_value_runs_tenant_id_computed_at", "tenant_id", "computed_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID | None]
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    horizon_days: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer)
    # Fitted BG/NBD and Gamma-Gamma parameters, with whether each fit was usable.
    models: Mapped[dict[str, Any]] = mapped_column(default=dict)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
