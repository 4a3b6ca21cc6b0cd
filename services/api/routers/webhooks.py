"""`/v1/webhooks/{source}/{tenant_id}`: signed deliveries from store platforms.

No API key: platforms cannot send one (Shopify sends no custom headers). The signature made
with the tenant's webhook secret is the credential: Standard Webhooks headers for `generic`,
`X-Shopify-Hmac-Sha256` for `shopify`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from services.api.deps import SessionDep
from services.api.problems import responses
from shared.ingest import webhooks
from shared.ingest.schemas import WebhookAck

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "/{source}/{tenant_id}",
    response_model=WebhookAck,
    responses=responses(400, 401, 413, 422, 429, 500, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive(
    source: Literal["generic", "shopify"], tenant_id: str, request: Request, session: SessionDep
) -> WebhookAck:
    """Apply one delivery at most once. A repeated delivery id answers `duplicate`; an update
    older than what is stored answers `ignored_stale`; a bad signature or unknown tenant is
    the same 401."""
    body = await request.body()
    return await webhooks.receive(session, source, tenant_id, request.headers, body)
