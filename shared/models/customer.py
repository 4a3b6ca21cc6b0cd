"""A customer's profile: typed facts in four groups, where each came from, and the behavioural
facts computed from their orders and events (kept current on ingest)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id

TextArray = ARRAY(Text)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_tenant_id_external_id", "tenant_id", "external_id", unique=True),
        Index("ix_customers_tenant_id_email", "tenant_id", "email"),
        Index("ix_customers_tenant_id_referred_by", "tenant_id", "referred_by"),
        Index("ix_customers_tenant_id_total_spent", "tenant_id", "total_spent", "id"),
        Index("ix_customers_tenant_id_last_order_at", "tenant_id", "last_order_at", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(255))

    # Contact (personal data: erased with the customer, never logged).
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    accepts_marketing: Mapped[bool | None] = mapped_column(Boolean)

    # Demographic.
    birth_date: Mapped[date | None] = mapped_column(Date)
    age_band: Mapped[str | None] = mapped_column(String(16))
    gender: Mapped[str | None] = mapped_column(String(32))
    marital_status: Mapped[str | None] = mapped_column(String(32))
    children: Mapped[int | None] = mapped_column(Integer)
    income_band: Mapped[str | None] = mapped_column(String(32))
    occupation: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(200))
    job_level: Mapped[str | None] = mapped_column(String(32))
    education_level: Mapped[str | None] = mapped_column(String(32))
    # Who decides purchases in the household (decides | influences | shares | other).
    decision_role: Mapped[str | None] = mapped_column(String(16))

    # Geographic.
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str | None] = mapped_column(String(64))

    # Psychographic.
    interests: Mapped[list[str] | None] = mapped_column(TextArray)
    values: Mapped[list[str] | None] = mapped_column(TextArray)
    lifestyle: Mapped[list[str] | None] = mapped_column(TextArray)
    motivations: Mapped[list[str] | None] = mapped_column(TextArray)
    preferred_channel: Mapped[str | None] = mapped_column(String(32))

    referred_by: Mapped[str | None] = mapped_column(String(255))
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Per fact: {"source": "store|survey|inferred|manual", "set_at": ..., "ref": ...}.
    fact_sources: Mapped[dict[str, Any]] = mapped_column(default=dict)

    # Ordering of deliveries: an update older than these is ignored.
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_delivery_id: Mapped[str | None] = mapped_column(String(255))

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)

    # Behaviour, computed from orders and events (shared.customers.stats).
    order_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_spent: Mapped[Decimal] = mapped_column(Numeric, default=0, server_default="0")
    average_order_value: Mapped[Decimal | None] = mapped_column(Numeric)
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refund_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refunded_amount: Mapped[Decimal] = mapped_column(Numeric, default=0, server_default="0")
    top_categories: Mapped[list[str] | None] = mapped_column(TextArray)
    # Quantity bought per category (purchases only): the category mix k-means reads.
    category_quantities: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    order_channel: Mapped[str | None] = mapped_column(String(32))
    event_channel: Mapped[str | None] = mapped_column(String(32))
    preferred_device: Mapped[str | None] = mapped_column(String(32))
    referral_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stats_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Tombstone(Base):
    """What is left of an erased customer: a digest of their external id, so a late delivery
    cannot bring them back, and nothing else."""

    __tablename__ = "tombstones"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id_hash: Mapped[bytes] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
