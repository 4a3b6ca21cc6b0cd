"""Inbound webhooks: check the signature made with the tenant's secret, apply each delivery
at most once, and map Portrait's generic envelope or Shopify's topics onto ingest.

A delivery names its tenant in the path; an unknown tenant and a bad signature give the same
401, so tenant ids cannot be probed. Retries and duplicates are normal: a delivery id seen
before answers `duplicate` and changes nothing; an update older than what is stored answers
`ignored_stale`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.customers import repository as customers_repo
from shared.customers import service as customers
from shared.customers.schemas import CustomerIn, UpsertOutcome
from shared.db.engine import set_tenant
from shared.errors import FieldError, InvalidInput, Unauthorized
from shared.ingest import repository, service, shopify
from shared.ingest.schemas import (
    CustomerDeleted,
    EventIn,
    GenericEnvelope,
    IdentifyIn,
    IngestOutcome,
    OrderIn,
    OrderItemIn,
    WebhookAck,
    WebhookType,
)
from shared.ingest.signing import InvalidSignature, verify_shopify, verify_standard
from shared.tenants import service as tenants

SOURCES = ("generic", "shopify")
_UNAUTHORIZED = "The webhook signature is missing or not valid."


def _invalid(exc: ValidationError, prefix: tuple[str | int, ...] = ("body",)) -> InvalidInput:
    errors = [
        FieldError([*prefix, *(p if isinstance(p, int) else str(p) for p in e["loc"])], e["msg"])
        for e in exc.errors()
    ]
    return InvalidInput("The delivery does not match the expected shape.", errors=errors)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)  # NaN, Infinity: not JSON
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The body is not valid JSON (UTF-8).") from None


async def authenticate(
    session: AsyncSession,
    source: str,
    tenant_ref: str,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[uuid.UUID, str]:
    """Return the tenant and the delivery id, or raise the one 401 for every failure."""
    try:
        tenant_id = uuid.UUID(tenant_ref)
    except ValueError:
        raise Unauthorized(_UNAUTHORIZED) from None
    await set_tenant(session, tenant_id)
    secrets = await tenants.webhook_secrets(session, tenant_id)
    if not secrets or source not in SOURCES:
        raise Unauthorized(_UNAUTHORIZED)
    try:
        if source == "generic":
            delivery_id = verify_standard(secrets, headers, body, now=time.time())
        else:
            verify_shopify(secrets, headers, body)
            h = shopify.read_headers(headers)
            if not h.delivery_id or not h.topic:
                raise InvalidSignature("missing_headers")
            delivery_id = f"{h.topic}:{h.delivery_id}"
    except InvalidSignature:
        raise Unauthorized(_UNAUTHORIZED) from None
    return tenant_id, delivery_id


async def receive(
    session: AsyncSession,
    source: str,
    tenant_ref: str,
    headers: Mapping[str, str],
    body: bytes,
) -> WebhookAck:
    tenant_id, delivery_id = await authenticate(session, source, tenant_ref, headers, body)
    payload = _json(body)
    if source == "generic" and isinstance(payload, dict) and payload.get("type") == "event.tracked":
        return await _accept_event(session, tenant_id, delivery_id, payload)
    topic = (
        shopify.read_headers(headers).topic or "unknown"
        if source == "shopify"
        else str(payload.get("type", "unknown"))
        if isinstance(payload, dict)
        else "unknown"
    )
    if not await repository.record_delivery(session, tenant_id, source, delivery_id, topic[:64]):
        return WebhookAck(
            delivery_id=delivery_id,
            outcome="duplicate",
            detail="This delivery was received before; applied once.",
        )
    if source == "generic":
        outcome, detail = await _apply_generic(session, tenant_id, payload, delivery_id)
    else:
        outcome, detail = await _apply_shopify(session, tenant_id, topic, payload, delivery_id)
    await repository.set_delivery_outcome(session, tenant_id, source, delivery_id, outcome)
    return WebhookAck(delivery_id=delivery_id, outcome=outcome, detail=detail)


async def _accept_event(
    session: AsyncSession, tenant_id: uuid.UUID, delivery_id: str, payload: dict[str, Any]
) -> WebhookAck:
    """Tracked events are many and order-free: check them now (a bad one is a 422), store
    them in the inbox with one statement, and let the worker apply them in batches."""
    try:
        event = EventIn.model_validate(GenericEnvelope.model_validate(payload).data)
    except ValidationError as exc:
        raise _invalid(exc) from None
    stored = await repository.enqueue_delivery(
        session, tenant_id, "generic", delivery_id, "event.tracked", event.model_dump(mode="json")
    )
    if not stored:
        return WebhookAck(
            delivery_id=delivery_id,
            outcome="duplicate",
            detail="This delivery was received before; applied once.",
        )
    return WebhookAck(
        delivery_id=delivery_id,
        outcome="accepted",
        detail="Stored; applied within moments by the worker.",
    )


def _outcome(value: str) -> str:
    if value in (UpsertOutcome.created, UpsertOutcome.updated, IngestOutcome.accepted):
        return "applied"
    return value


async def _apply_generic(
    session: AsyncSession, tenant_id: uuid.UUID, payload: Any, delivery_id: str
) -> tuple[str, str | None]:
    try:
        envelope = GenericEnvelope.model_validate(payload)
        data = envelope.data
        match envelope.type:
            case WebhookType.customer_created | WebhookType.customer_updated:
                customer = CustomerIn.model_validate(data)
                (result,) = await customers.upsert_many(
                    session, tenant_id, [customer], delivery_id=delivery_id
                )
                return _outcome(result.outcome), None
            case WebhookType.customer_deleted:
                gone = CustomerDeleted.model_validate(data)
                await customers.erase_by_external_id(session, tenant_id, gone.external_id)
                return "applied", None
            case WebhookType.order_created | WebhookType.order_updated:
                order = OrderIn.model_validate(data)
                (done,) = await service.upsert_orders(
                    session, tenant_id, [order], delivery_id=delivery_id
                )
                return _outcome(done.outcome), None
            case WebhookType.event_tracked:
                accepted = await service.ingest_events(
                    session, tenant_id, [EventIn.model_validate(data)]
                )
                if accepted.ignored_erased:
                    return "ignored_erased", None
                return ("applied" if accepted.accepted else "duplicate"), None
            case WebhookType.identify:
                ok = await service.identify(session, tenant_id, IdentifyIn.model_validate(data))
                return ("applied" if ok else "ignored_erased"), None
    except ValidationError as exc:
        raise _invalid(exc) from None
    return "ignored", None  # pragma: no cover - every type is matched above


_ITEM_FIELDS = set(OrderItemIn.model_fields)


async def _apply_shopify(
    session: AsyncSession, tenant_id: uuid.UUID, topic: str, payload: Any, delivery_id: str
) -> tuple[str, str | None]:
    if not isinstance(payload, dict):
        raise InvalidInput("A Shopify delivery is a JSON object.")
    try:
        mapped = shopify.map_delivery(topic, payload)
    except shopify.MappingError as exc:
        raise InvalidInput(str(exc)) from None
    outcomes: list[str] = []
    detail: str | None = None
    try:
        for m in mapped:
            outcome, note = await _apply_mapped(session, tenant_id, m, delivery_id)
            outcomes.append(outcome)
            detail = detail or note
    except ValidationError as exc:
        raise _invalid(exc, ("body", topic)) from None
    # The delivery's answer is about its main object, the last one mapped.
    return (outcomes[-1] if outcomes else "ignored"), detail


async def _apply_mapped(
    session: AsyncSession, tenant_id: uuid.UUID, m: shopify.Mapped, delivery_id: str
) -> tuple[str, str | None]:
    data = m.data
    match m.kind:
        case "customer.upsert":
            (result,) = await customers.upsert_many(
                session, tenant_id, [CustomerIn.model_validate(data)], delivery_id=delivery_id
            )
            return _outcome(result.outcome), None
        case "customer.ensure":
            ids = await customers_repo.ensure(session, tenant_id, [data["external_id"]])
            if data["external_id"] not in ids:
                return "ignored_erased", None
            await customers.fill_gaps(
                session,
                tenant_id,
                ids[data["external_id"]],
                {k: v for k, v in data.items() if k != "external_id"},
            )
            return "applied", None
        case "order.upsert":
            data = {
                **data,
                "items": [
                    {k: v for k, v in item.items() if k in _ITEM_FIELDS}
                    for item in data.get("items", [])
                ],
            }
            (done,) = await service.upsert_orders(
                session, tenant_id, [OrderIn.model_validate(data)], delivery_id=delivery_id
            )
            return _outcome(done.outcome), None
        case "event":
            accepted = await service.ingest_events(
                session, tenant_id, [EventIn.model_validate(data)]
            )
            return ("applied" if accepted.accepted else "duplicate"), None
        case "customer.erase":
            if data.get("customer_external_id"):
                await customers.erase_by_external_id(
                    session, tenant_id, str(data["customer_external_id"])
                )
            return "applied", None
        case "customer.export":
            ref = data.get("customer_external_id")
            if ref and await customers_repo.get_by_external_id(session, tenant_id, str(ref)):
                return "applied", f"Export ready at /v1/customers/ext:{ref}/export"
            return "applied", "No data is held about this customer."
        case "tenant.erase":
            await customers.erase_tenant_data(session, tenant_id)
            return "applied", "Every customer, order and event of this store was erased."
    return "ignored", f"Topic not used by Portrait ({data.get('topic', 'unknown')})."
