"""Personas: a named portrait of one target segment, kept current by regeneration, and each
generation run as a version with what changed since the one before."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Persona(Base):
    __tablename__ = "personas"
    # One persona per segment: regeneration updates it in place. No foreign key to the
    # segment: a persona outlives its segment (it then says so) instead of vanishing.
    __table_args__ = (
        Index("uq_personas_tenant_id_segment_id", "tenant_id", "segment_id", unique=True),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    segment_id: Mapped[uuid.UUID]
    segment_name: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    tagline: Mapped[str] = mapped_column(Text)
    narrative: Mapped[str] = mapped_column(Text)
    # Generated fields, each with its evidence (replaced by every regeneration).
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A marketer's edits by field key ("name", "tagline", "narrative", or a field): locked,
    # so regeneration keeps them and shows the current data beside them.
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    covered_customers: Mapped[int] = mapped_column(Integer, default=0)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class PersonaVersion(Base):
    """One generation run of a persona: what it said then, and how that differs (drift)."""

    __tablename__ = "persona_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "persona_id"], ["personas.tenant_id", "personas.id"], ondelete="CASCADE"
        ),
        Index(
            "uq_persona_versions_tenant_id_persona_id_version",
            "tenant_id",
            "persona_id",
            "version",
            unique=True,
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    persona_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[uuid.UUID | None]
    # {"name", "tagline", "narrative", "fields", "covered_customers"} as generated.
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"field", "kind", "text", "from", "to"}]: the drift against the previous version.
    changes: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    covered_customers: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
