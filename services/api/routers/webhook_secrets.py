"""`/v1/webhook-secrets/rotate`: a new inbound webhook secret, the old one kept for a while."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from services.api.auditing import Audited
from services.api.deps import AdminKey, SessionDep
from services.api.hooks import Route
from services.api.idempotency import Idempotent
from shared.tenants import service as tenants
from shared.tenants.schemas import WebhookSecretRotated

router = APIRouter(route_class=Route, prefix="/v1/webhook-secrets", tags=["webhooks"])


@router.post("/rotate", response_model=WebhookSecretRotated, dependencies=[Idempotent, Audited])
async def rotate(
    request: Request, session: SessionDep, principal: AdminKey
) -> WebhookSecretRotated:
    """Replace the secret inbound deliveries are signed with. Deliveries signed with the
    previous secret are still accepted until `previous_valid_until` (24 h by default,
    `PORTRAIT_API__WEBHOOK_SECRET_OVERLAP_HOURS`), so the platform can be switched over
    without losing any. The new secret is in this answer only."""
    hours = request.app.state.settings.api.webhook_secret_overlap_hours
    return await tenants.rotate_webhook_secret(session, principal.tenant_id, timedelta(hours=hours))
