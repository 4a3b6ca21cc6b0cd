"""A tenant is one store; every other row belongs to exactly one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Kept readable (not hashed): HMAC verification needs the secret itself.
    webhook_secret: Mapped[str] = mapped_column(Text)
    # Policy: may a survey answer overwrite a fact the store sent? (Default: no; the profile
    # then shows both.)
    survey_answers_override_store: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false"
    )
    # After a rotation the previous secret stays accepted until this moment.
    previous_webhook_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
