"""Shopify webhook payloads (REST Admin API format) turned into Portrait's ingest shapes.

Pure: no I/O and no clock, so the webhook router, bulk replays and the tests share it. The
output follows the customer, order and event shapes of the API contract; what to do with
each result (upsert, ensure, erase, drop as stale) is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "CUSTOMER_TOPICS",
    "CHECKOUT_TOPICS",
    "ORDER_TOPICS",
    "PRIVACY_TOPICS",
    "TOPICS",
    "Mapped",
    "MappedKind",
    "MappingError",
    "ShopifyHeaders",
    "channel_from_source",
    "map_delivery",
    "order_status",
    "read_headers",
]

MappedKind = Literal[
    "customer.upsert",
    "customer.ensure",
    "order.upsert",
    "event",
    "customer.export",
    "customer.erase",
    "tenant.erase",
    "ignored",
]


@dataclass(frozen=True)
class Mapped:
    """One thing to apply. ``updated_at`` is the payload's own clock, for dropping stale
    deliveries (Shopify retries for hours and does not keep order)."""

    kind: MappedKind
    data: dict[str, Any]
    updated_at: str | None = None


class MappingError(ValueError):
    """The payload lacks what Portrait needs (the webhook answers 422)."""


CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled"})
CHECKOUT_TOPICS = frozenset({"checkouts/create"})
PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
TOPICS = CUSTOMER_TOPICS | ORDER_TOPICS | CHECKOUT_TOPICS | PRIVACY_TOPICS


# --- delivery headers -------------------------------------------------------------------


@dataclass(frozen=True)
class ShopifyHeaders:
    topic: str | None
    shop_domain: str | None
    webhook_id: str | None
    event_id: str | None
    triggered_at: str | None
    api_version: str | None

    @property
    def delivery_id(self) -> str | None:
        """The id to deduplicate on: Shopify's guide names ``X-Shopify-Event-Id``, which
        stays the same across retries and duplicate subscriptions; older deliveries only
        carry ``X-Shopify-Webhook-Id``."""
        return self.event_id or self.webhook_id


def read_headers(headers: Mapping[str, str]) -> ShopifyHeaders:
    """The ``X-Shopify-*`` delivery headers, looked up case-insensitively."""
    h = {k.lower(): v.strip() for k, v in headers.items()}

    def get(name: str) -> str | None:
        return h.get(name) or None

    topic = get("x-shopify-topic")
    return ShopifyHeaders(
        topic=topic.lower() if topic else None,
        shop_domain=get("x-shopify-shop-domain"),
        webhook_id=get("x-shopify-webhook-id"),
        event_id=get("x-shopify-event-id"),
        triggered_at=get("x-shopify-triggered-at"),
        api_version=get("x-shopify-api-version"),
    )


# --- field helpers ------------------------------------------------------------------------

_GID_PREFIX = "gid://shopify/"


def _opt_id(value: Any, field: str) -> str | None:
    """Shopify ids are 64-bit integers in REST payloads (GraphQL gids are accepted too)."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float):
        # A float id has already lost digits (Shopify ids exceed 2**53).
        raise MappingError(f"{field} must be an integer or string id, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(_GID_PREFIX):
            text = text.rsplit("/", 1)[-1]
        return text or None
    raise MappingError(f"{field} must be an integer or string id")


def _req_id(value: Any, field: str) -> str:
    ident = _opt_id(value, field)
    if ident is None:
        raise MappingError(f"{field} is required")
    return ident


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _timestamp(value: Any, field: str) -> str | None:
    """Kept as Shopify sent it (RFC 3339 with its offset), but checked so a bad value is a
    422 here rather than an error deep in the database layer."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MappingError(f"{field} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MappingError(f"{field} is not an RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MappingError(f"{field} has no UTC offset: {value!r}")
    return value


def _money(value: Any, field: str) -> str | None:
    """Decimal string, exactly as sent. Shopify sends strings; a JSON number is accepted
    but never passed through float arithmetic."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MappingError(f"{field} must be a decimal amount")
    if isinstance(value, float):
        value = repr(value)  # shortest repr round-trips: 59.45 -> "59.45"
    text = str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise MappingError(f"{field} must be a decimal amount, got {value!r}") from exc
    if not amount.is_finite():
        raise MappingError(f"{field} must be a finite decimal amount")
    return text


def _quantity(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise MappingError(f"{field} must be a whole number")


def _mapping(value: Any, field: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MappingError(f"{field} must be an object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MappingError(f"{field} must be a list")
    return value


def _tags(value: Any) -> list[str]:
    """REST payloads send tags as one comma-separated string ("vip, wholesale")."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise MappingError("tags must be a string or a list")
    return [t for t in (str(i).strip() for i in items if i is not None) if t]


def _accepts_marketing(customer: Mapping[str, Any]) -> bool | None:
    """``email_marketing_consent.state`` (current) wins over ``accepts_marketing`` (removed
    from newer API versions). None when the payload says neither."""
    consent = customer.get("email_marketing_consent")
    if isinstance(consent, Mapping) and consent.get("state") is not None:
        return consent.get("state") == "subscribed"
    legacy = customer.get("accepts_marketing")
    if isinstance(legacy, bool):
        return legacy
    return None


_SOURCE_CHANNELS = {"web": "web", "pos": "pos", "iphone": "app", "android": "app"}


def channel_from_source(source_name: Any) -> str | None:
    """Shopify's ``source_name``: web, pos, iphone, android, shopify_draft_order, an app's
    id... The known ones become Portrait channels; anything else is kept as sent."""
    source = _opt_str(source_name)
    if source is None:
        return None
    return _SOURCE_CHANNELS.get(source.lower(), source)


def order_status(order: Mapping[str, Any]) -> str:
    """Portrait's order status from Shopify's cancel, payment and fulfilment states."""
    if order.get("cancelled_at"):
        return "cancelled"
    financial = str(order.get("financial_status") or "").lower()
    if financial == "refunded":
        return "refunded"
    if financial == "voided":
        # The authorisation was released without capture: the sale did not happen.
        return "cancelled"
    if financial in ("paid", "partially_refunded"):
        fulfilment = str(order.get("fulfillment_status") or "").lower()
        return "fulfilled" if fulfilment == "fulfilled" else "paid"
    # pending, authorized, partially_paid, expired, or absent: not (fully) paid yet.
    return "placed"


# --- per-topic mapping ----------------------------------------------------------------------

# Shopify REST customer field -> Portrait customer field, copied only when present, so a
# payload that omits a field (protected customer data, trimmed webhook fields) never
# erases what Portrait already knows.
_CUSTOMER_PLAIN = {
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
}
_ADDRESS_FIELDS = {
    "country_code": "country",
    "province_code": "region",
    "city": "city",
    "zip": "postcode",
}


def _default_address(customer: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any] | None]:
    if "default_address" in customer:
        return True, _mapping(customer["default_address"], "default_address")
    if "addresses" in customer:
        addresses = _list(customer["addresses"], "addresses")
        for address in addresses:
            if isinstance(address, Mapping) and address.get("default"):
                return True, address
        return True, None
    return False, None


def _customer(payload: Mapping[str, Any]) -> Mapped:
    data: dict[str, Any] = {"external_id": _req_id(payload.get("id"), "customer id")}
    for src, dst in _CUSTOMER_PLAIN.items():
        if src in payload:
            data[dst] = _opt_str(payload[src])
    for field in ("created_at", "updated_at"):
        if field in payload:
            data[field] = _timestamp(payload[field], field)
    accepts = _accepts_marketing(payload)
    if accepts is not None:
        data["accepts_marketing"] = accepts
    present, address = _default_address(payload)
    if present:
        for src, dst in _ADDRESS_FIELDS.items():
            data[dst] = _opt_str(address.get(src)) if address else None
    traits: dict[str, Any] = {}
    if "tags" in payload:
        traits["shopify_tags"] = _tags(payload["tags"])
    if payload.get("state") is not None:
        traits["shopify_state"] = str(payload["state"])
    if traits:
        data["traits"] = traits
    return Mapped("customer.upsert", data, data.get("updated_at"))


def _ensure_customer(
    customer: Mapping[str, Any] | None, fallback_email: Any
) -> tuple[str | None, Mapped | None]:
    """The minimal customer an order or checkout points at, so the reference resolves.
    It is a separate kind because it must only fill gaps, never overwrite richer facts."""
    if customer is None:
        return None, None
    external_id = _opt_id(customer.get("id"), "customer.id")
    if external_id is None:
        return None, None
    data: dict[str, Any] = {"external_id": external_id}
    email = _opt_str(customer.get("email")) or _opt_str(fallback_email)
    if email:
        data["email"] = email
    for field in ("first_name", "last_name"):
        value = _opt_str(customer.get(field))
        if value:
            data[field] = value
    return external_id, Mapped("customer.ensure", data, None)


def _order_item(item: Any, index: int) -> dict[str, Any]:
    where = f"line_items[{index}]"
    line = _mapping(item, where)
    if line is None:
        raise MappingError(f"{where} must be an object")
    return {
        "product_id": _opt_id(line.get("product_id"), f"{where}.product_id"),
        "variant_id": _opt_id(line.get("variant_id"), f"{where}.variant_id"),
        "sku": _opt_str(line.get("sku")),
        "name": _opt_str(line.get("title")) or _opt_str(line.get("name")),
        # Order line items carry no product_type in current API versions; None then.
        "category": _opt_str(line.get("product_type")),
        "quantity": _quantity(line.get("quantity"), f"{where}.quantity"),
        "unit_price": _money(line.get("price"), f"{where}.price"),
    }


def _order(payload: Mapping[str, Any]) -> list[Mapped]:
    external_id = _req_id(payload.get("id"), "order id")
    customer = _mapping(payload.get("customer"), "customer")
    customer_id, ensure = _ensure_customer(customer, payload.get("email"))
    placed_at = _timestamp(payload.get("processed_at"), "processed_at") or _timestamp(
        payload.get("created_at"), "created_at"
    )
    if placed_at is None:
        raise MappingError("order has neither processed_at nor created_at")
    updated_at = _timestamp(payload.get("updated_at"), "updated_at")
    order = {
        "external_id": external_id,
        "customer_external_id": customer_id,
        "status": order_status(payload),
        "currency": _opt_str(payload.get("currency")),
        "total": _money(payload.get("total_price"), "total_price"),
        "channel": channel_from_source(payload.get("source_name")),
        "placed_at": placed_at,
        "updated_at": updated_at,
        "items": [
            _order_item(item, i)
            for i, item in enumerate(_list(payload.get("line_items"), "line_items"))
        ],
    }
    # The customer first, so the order's reference resolves when applied in order.
    mapped = [ensure] if ensure else []
    mapped.append(Mapped("order.upsert", order, updated_at))
    return mapped


def _checkout(payload: Mapping[str, Any]) -> list[Mapped]:
    token = _opt_str(payload.get("token"))
    if token is None:
        raise MappingError("checkout token is required")
    occurred_at = _timestamp(payload.get("created_at"), "created_at")
    if occurred_at is None:
        raise MappingError("checkout created_at is required")
    customer = _mapping(payload.get("customer"), "customer")
    customer_id, ensure = _ensure_customer(customer, payload.get("email"))
    items = _list(payload.get("line_items"), "line_items")
    item_count = 0
    for i, item in enumerate(items):
        line = _mapping(item, f"line_items[{i}]") or {}
        item_count += _quantity(line.get("quantity"), f"line_items[{i}].quantity")
    event = {
        "id": f"shopify-checkout-{token}-created",
        "name": "checkout_started",
        "customer_external_id": customer_id,
        "anonymous_id": None if customer_id else f"shopify-checkout:{token}",
        "occurred_at": occurred_at,
        "session_id": None,
        "device": None,
        "channel": channel_from_source(payload.get("source_name")),
        "properties": {
            "cart_value": _money(payload.get("total_price"), "total_price"),
            "currency": _opt_str(payload.get("currency")),
            "item_count": item_count,
        },
    }
    updated_at = _timestamp(payload.get("updated_at"), "updated_at")
    mapped = [ensure] if ensure else []
    mapped.append(Mapped("event", event, updated_at))
    return mapped


def _shop_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "shop_id": _opt_id(payload.get("shop_id"), "shop_id"),
        "shop_domain": _opt_str(payload.get("shop_domain")),
    }


def _privacy_subject(payload: Mapping[str, Any], orders_field: str) -> dict[str, Any]:
    """Who a data request or redaction is about. Shopify notes the customer may carry only
    an email, so the id is optional as long as something identifies them."""
    customer = _mapping(payload.get("customer"), "customer") or {}
    subject = {
        "customer_external_id": _opt_id(customer.get("id"), "customer.id"),
        "email": _opt_str(customer.get("email")),
        "phone": _opt_str(customer.get("phone")),
        "order_external_ids": [
            _req_id(o, f"{orders_field}[{i}]")
            for i, o in enumerate(_list(payload.get(orders_field), orders_field))
        ],
    }
    if subject["customer_external_id"] is None and subject["email"] is None:
        raise MappingError("customer needs an id or an email")
    return {**subject, **_shop_fields(payload)}


def _data_request(payload: Mapping[str, Any]) -> list[Mapped]:
    data = _privacy_subject(payload, "orders_requested")
    request = _mapping(payload.get("data_request"), "data_request") or {}
    data["data_request_id"] = _opt_id(request.get("id"), "data_request.id")
    return [Mapped("customer.export", data, None)]


def _customer_redact(payload: Mapping[str, Any]) -> list[Mapped]:
    return [Mapped("customer.erase", _privacy_subject(payload, "orders_to_redact"), None)]


def _shop_redact(payload: Mapping[str, Any]) -> list[Mapped]:
    data = _shop_fields(payload)
    if data["shop_id"] is None and data["shop_domain"] is None:
        raise MappingError("shop/redact needs shop_id or shop_domain")
    return [Mapped("tenant.erase", data, None)]


_HANDLERS: dict[str, Callable[[Mapping[str, Any]], list[Mapped]]] = {
    **{t: lambda p: [_customer(p)] for t in CUSTOMER_TOPICS},
    **{t: _order for t in ORDER_TOPICS},
    "checkouts/create": _checkout,
    "customers/data_request": _data_request,
    "customers/redact": _customer_redact,
    "shop/redact": _shop_redact,
}


def map_delivery(topic: str, payload: Mapping[str, Any]) -> list[Mapped]:
    """Map one delivery (``X-Shopify-Topic`` and the parsed JSON body).

    Raises ``MappingError`` when a supported topic's payload lacks what Portrait needs;
    an unsupported topic maps to a single ``ignored`` result so it can be acknowledged.
    """
    normalized = topic.strip().lower()
    handler = _HANDLERS.get(normalized)
    if handler is None:
        return [Mapped("ignored", {"topic": topic}, None)]
    if not isinstance(payload, Mapping):
        raise MappingError(f"{normalized} payload must be a JSON object")
    return handler(payload)
