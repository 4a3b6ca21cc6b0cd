"""Outbound webhook shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator


class EventType(StrEnum):
    job_finished = "job.finished"
    segment_membership_changed = "segment.membership_changed"
    survey_response_received = "survey.response_received"
    persona_updated = "persona.updated"


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


_TEXT = r"^[^\x00]*$"


def _url(value: AnyHttpUrl) -> AnyHttpUrl:
    if len(str(value)) > 2000:
        raise ValueError("at most 2000 characters")
    return value


class EndpointCreate(BaseModel):
    url: AnyHttpUrl = Field(description="Where events are POSTed (http or https).")
    events: list[EventType] = Field(min_length=1, max_length=len(EventType))
    description: str | None = Field(default=None, max_length=500, pattern=_TEXT)
    enabled: bool = True

    _check_url = field_validator("url")(_url)


class EndpointUpdate(BaseModel):
    url: AnyHttpUrl | None = None
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=len(EventType))
    description: str | None = Field(default=None, max_length=500, pattern=_TEXT)
    enabled: bool | None = None

    _check_url = field_validator("url")(_url)


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[EventType]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointRead):
    secret: str = Field(
        description="Standard Webhooks secret the deliveries are signed with: shown only now."
    )


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Also the `webhook-id` header of every attempt.")
    event_type: EventType
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    created_at: datetime
    delivered_at: datetime | None
