"""On-site events (append-only), and which anonymous visitor turned out to be which customer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("uq_events_tenant_id_external_id", "tenant_id", "external_id", unique=True),
        Index(
            "ix_events_tenant_id_customer_id_occurred_at", "tenant_id", "customer_id", "occurred_at"
        ),
        Index("ix_events_tenant_id_anonymous_id", "tenant_id", "anonymous_id"),
        # The events a stitch may move onto a customer: few, and read per visitor.
        Index(
            "ix_events_unlinked",
            "tenant_id",
            "anonymous_id",
            postgresql_where=text("customer_id IS NULL"),
        ),
        # Covering: "did X in the last D days" conditions read the index alone.
        Index(
            "ix_events_tenant_id_name_occurred_at_customer",
            "tenant_id",
            "name",
            "occurred_at",
            postgresql_include=["customer_id"],
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[uuid.UUID | None]
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    device: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CustomerIdentity(Base):
    """anonymous_id -> customer, learned from `identify` or an event carrying both."""

    __tablename__ = "identities"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    anonymous_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class EventChange(Base):
    """An event row that was updated (an anonymous visitor identified) or deleted (erasure):
    written by triggers on `events`, read by workers that keep a columnar copy of the events
    (shared.funnels.columns) to re-read or drop those rows."""

    __tablename__ = "event_changes"

    # No foreign key to tenants: deleting a tenant cascades to its events, whose delete
    # trigger writes here while the tenant row is going away.
    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
