"""Customers, orders and events in the shapes platforms send (API.md)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

_seq = itertools.count(1)


def customer(external_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "external_id": external_id or f"c-{n}",
        "email": f"customer{n}@example.com",
        "first_name": "An",
        "last_name": "Nguyen",
        "created_at": "2026-01-05T09:00:00+07:00",
        "gender": "female",
        "marital_status": "married",
        "birth_date": "1990-04-02",
        "country": "VN",
        "city": "Ho Chi Minh City",
        "interests": ["yoga", "cooking"],
        "values": ["health"],
        "preferred_channel": "email",
        "accepts_marketing": True,
    }
    body.update(overrides)
    return body


def order(
    customer_external_id: str | None, external_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "external_id": external_id or f"o-{n}",
        "customer_external_id": customer_external_id,
        "status": "paid",
        "currency": "USD",
        "total": "59.45",
        "channel": "web",
        "placed_at": (datetime.now(UTC) - timedelta(days=10)).isoformat(),
        "items": [
            {
                "product_id": "p-1",
                "name": "Serum",
                "category": "skincare",
                "quantity": 1,
                "unit_price": "49.00",
            },
            {
                "product_id": "p-2",
                "name": "Cotton pads",
                "category": "accessories",
                "quantity": 2,
                "unit_price": "5.225",
            },
        ],
    }
    body.update(overrides)
    return body


def event(
    name: str = "page_view", customer_external_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "id": f"e-{n}",
        "name": name,
        "customer_external_id": customer_external_id,
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "session_id": "s-1",
        "device": "mobile",
        "channel": "web",
        "properties": {"path": "/"},
    }
    body.update(overrides)
    return body
