"""Audit log shapes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    key_id: uuid.UUID | None
    action: str
    object_type: str
    object_id: str | None
    method: str
    route: str
    status: int
    request_id: str | None
