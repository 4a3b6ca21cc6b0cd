"""Funnel definitions and their computed runs (the result, and who dropped out where)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Funnel(Base):
    __tablename__ = "funnels"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Steps, order, window, exclusions, date range, counting unit (shared.funnels.schemas).
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class FunnelRun(Base):
    """One computation of a funnel. The definition is copied in, so a later edit of the funnel
    does not change what an old run means. `dropoffs` holds, compactly, every actor who
    started but did not convert: records of (steps reached: 1 byte, who: 16 bytes) in step
    order, where who is a customer id, or 8 zero bytes and the id of the anonymous visitor's
    first event in the attempt (its `anonymous_id` is read back for the few shown)."""

    __tablename__ = "funnel_runs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "funnel_id"], ["funnels.tenant_id", "funnels.id"], ondelete="CASCADE"
        ),
        Index("ix_funnel_runs_tenant_id_funnel_id_id", "tenant_id", "funnel_id", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    funnel_id: Mapped[uuid.UUID]
    job_id: Mapped[uuid.UUID | None]
    definition: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    dropoffs: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
