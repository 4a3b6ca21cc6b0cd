"""Shapes platforms send: orders with items, events, identify, and the generic webhook
envelope. Unknown fields are refused so a typo is a 422, not silently lost data."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from shared.validation import (
    Currency,
    Id,
    JsonObject,
    Money,
    Str32,
    Str100,
    Str255,
    Timestamp,
    text,
)

MAX_EVENT_BATCH = 1000
MAX_ORDER_ITEMS = 500


class OrderStatus(StrEnum):
    placed = "placed"
    paid = "paid"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    refunded = "refunded"


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: Str255 | None = None
    name: text(500) | None = None  # type: ignore[valid-type]
    category: Str100 | None = None
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: Money


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: Id
    customer_external_id: Id | None = None
    status: OrderStatus = OrderStatus.placed
    currency: Currency
    total: Money
    channel: Str32 | None = None
    placed_at: Timestamp
    updated_at: Timestamp | None = None
    items: Annotated[list[OrderItemIn], Field(max_length=MAX_ORDER_ITEMS)] = []


class OrderItemRead(BaseModel):
    product_id: str | None
    name: str | None
    category: str | None
    quantity: int
    unit_price: Decimal

    @field_serializer("unit_price")
    def _money(self, value: Decimal) -> str:
        return format(value, "f")


class OrderRead(BaseModel):
    id: uuid.UUID
    external_id: str
    customer_id: uuid.UUID | None
    status: OrderStatus
    currency: str
    total: Decimal
    channel: str | None
    placed_at: datetime
    updated_at: datetime
    items: list[OrderItemRead]

    @field_serializer("total")
    def _money(self, value: Decimal) -> str:
        return format(value, "f")


class IngestOutcome(StrEnum):
    created = "created"
    updated = "updated"
    ignored_stale = "ignored_stale"
    ignored_erased = "ignored_erased"
    duplicate = "duplicate"
    accepted = "accepted"


class OrderUpserted(BaseModel):
    outcome: IngestOutcome
    order: OrderRead | None


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="The sender's unique event id: a repeat is stored once.")
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
    customer_external_id: Id | None = None
    anonymous_id: Id | None = None
    occurred_at: Timestamp
    session_id: Str255 | None = None
    device: Str32 | None = None
    channel: Str32 | None = None
    properties: JsonObject = {}

    @model_validator(mode="after")
    def _someone(self) -> EventIn:
        if not self.customer_external_id and not self.anonymous_id:
            raise ValueError("an event needs customer_external_id or anonymous_id")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENT_BATCH)]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events already stored (same id): kept once.")
    ignored_erased: int = Field(description="Events of erased customers: dropped.")


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anonymous_id: Id
    customer_external_id: Id


class WebhookType(StrEnum):
    customer_created = "customer.created"
    customer_updated = "customer.updated"
    customer_deleted = "customer.deleted"
    order_created = "order.created"
    order_updated = "order.updated"
    event_tracked = "event.tracked"
    identify = "identify"


class GenericEnvelope(BaseModel):
    """Portrait's own webhook envelope: `{"type": ..., "data": {...}}`."""

    model_config = ConfigDict(extra="forbid")

    type: WebhookType
    data: dict[str, Any]


class CustomerDeleted(BaseModel):
    model_config = ConfigDict(extra="allow")

    external_id: Id


class WebhookAck(BaseModel):
    delivery_id: str
    outcome: Literal[
        "applied", "accepted", "ignored_stale", "ignored_erased", "duplicate", "ignored"
    ]
    detail: str | None = None
