"""Saved segments and their membership history (who entered when, who left when), from which
size over time and growth are derived."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (Index("uq_segments_tenant_id_slug", "tenant_id", "slug", unique=True),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # A stable handle for built-in and generated segments (e.g. "builtin:referrers").
    slug: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # rule | static | segmentation | builtin
    condition: Mapped[dict[str, Any] | None]
    # For segments a segmentation made: its method, cluster centroid, naming evidence.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    refresh_every_minutes: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class SegmentMember(Base):
    __tablename__ = "segment_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "segment_id"], ["segments.tenant_id", "segments.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        # At most one open membership per customer and segment.
        Index(
            "uq_segment_members_tenant_id_segment_id_customer_id_open",
            "tenant_id",
            "segment_id",
            "customer_id",
            unique=True,
            postgresql_where=text("left_at IS NULL"),
        ),
        Index("ix_segment_members_tenant_id_customer_id", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    segment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Segmentation(Base):
    """One data-driven segmentation run (RFM groups or k-means clusters) and what it made."""

    __tablename__ = "segmentations"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    method: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[uuid.UUID | None]
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
