"""Surveys (versioned question lists), their distributions with single-use invitation tokens
and anonymous links, responses, and one row per answer so answers are queryable in SQL by
(survey, question, value)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Survey(Base):
    __tablename__ = "surveys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    introduction: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | closed
    # Bumped by every change to the questions; a response records the version it answered.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The ordered questions (shared.surveys.schemas.Question, as JSON).
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    template: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class SurveyDistribution(Base):
    """One send of a survey: to an audience (one invitation per recipient) or as an
    anonymous link (one token, many respondents)."""

    __tablename__ = "survey_distributions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "survey_id"], ["surveys.tenant_id", "surveys.id"], ondelete="CASCADE"
        ),
        Index("ix_survey_distributions_tenant_id_survey_id", "tenant_id", "survey_id"),
        Index(
            "uq_survey_distributions_tenant_id_link_token_hash",
            "tenant_id",
            "link_token_hash",
            unique=True,
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(16))  # invitations | link
    # {"segment_id": ...} or {"group": ...}; empty for links.
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    link_token_hash: Mapped[bytes | None]
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class SurveyInvitation(Base):
    """A single-use token: for one recipient of a distribution, or handed to an anonymous
    respondent of a link so they can resume. Only a SHA-256 digest of the token is kept."""

    __tablename__ = "survey_invitations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "distribution_id"],
            ["survey_distributions.tenant_id", "survey_distributions.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("uq_survey_invitations_tenant_id_token_hash", "tenant_id", "token_hash", unique=True),
        Index(
            "ix_survey_invitations_tenant_id_distribution_id", "tenant_id", "distribution_id", "id"
        ),
        Index("ix_survey_invitations_tenant_id_customer_id", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    distribution_id: Mapped[uuid.UUID]
    survey_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID | None]
    token_hash: Mapped[bytes]
    response_id: Mapped[uuid.UUID | None]
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "survey_id"], ["surveys.tenant_id", "surveys.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("ix_survey_responses_tenant_id_survey_id", "tenant_id", "survey_id", "id"),
        Index("ix_survey_responses_tenant_id_customer_id", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID]
    survey_version: Mapped[int] = mapped_column(Integer)
    distribution_id: Mapped[uuid.UUID | None]
    customer_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16), default="partial")  # partial | completed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SurveyAnswer(Base):
    """One answer to one question. The value is kept typed, so segments and results query it:
    `value_text` (single choice, yes/no as 'yes'/'no', text, ISO date), `value_number`
    (rating, NPS, number) and `choices` (multiple choice)."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "response_id"],
            ["survey_responses.tenant_id", "survey_responses.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_survey_answers_tenant_id_survey_id_question_key_value_text",
            "tenant_id",
            "survey_id",
            "question_key",
            "value_text",
        ),
        Index("ix_survey_answers_tenant_id_customer_id", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    response_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    question_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID | None]
    value_text: Mapped[str | None] = mapped_column(Text)
    value_number: Mapped[Decimal | None] = mapped_column(Numeric)
    choices: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
