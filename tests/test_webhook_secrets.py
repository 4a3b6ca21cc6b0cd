"""Rotating the inbound webhook secret: the new one works at once, the old one during the
overlap only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.tenants import service as tenants
from tests.factories.store import customer
from tests.helpers import auth
from tests.test_auth import assert_problem
from tests.test_webhooks import send_generic


def _created(n: int) -> dict:
    return {"type": "customer.created", "data": customer(f"c-{n}")}


async def test_both_secrets_work_during_the_overlap_then_only_the_new(client, tenant, owner_engine):
    old = tenant.webhook_secret
    r = await client.post("/v1/webhook-secrets/rotate", headers=auth(tenant.api_key))
    assert r.status_code == 200, r.text
    new = r.json()["webhook_secret"]
    until = datetime.fromisoformat(r.json()["previous_valid_until"])
    assert new != old
    assert new.startswith("whsec_")
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)

    assert (await send_generic(client, tenant, _created(1), secret=new)).status_code == 200
    assert (await send_generic(client, tenant, _created(2), secret=old)).status_code == 200

    # The overlap ends (as if 24 h had passed; every process re-reads within 30 s).
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET previous_secret_expires_at = now() - interval '1 s'")
        )
    tenants._secrets.clear()
    assert_problem(await send_generic(client, tenant, _created(3), secret=old), 401)
    assert (await send_generic(client, tenant, _created(4), secret=new)).status_code == 200


async def test_rotating_twice_accepts_only_the_last_two(client, tenant):
    first = tenant.webhook_secret
    h = auth(tenant.api_key)
    second = (await client.post("/v1/webhook-secrets/rotate", headers=h)).json()["webhook_secret"]
    third = (await client.post("/v1/webhook-secrets/rotate", headers=h)).json()["webhook_secret"]
    assert_problem(await send_generic(client, tenant, _created(1), secret=first), 401)
    assert (await send_generic(client, tenant, _created(2), secret=second)).status_code == 200
    assert (await send_generic(client, tenant, _created(3), secret=third)).status_code == 200


async def test_only_admin_keys_rotate(client, tenant):
    r = await client.post(
        "/v1/api-keys", json={"name": "w", "scopes": ["write"]}, headers=auth(tenant.api_key)
    )
    writer = r.json()["key"]
    assert_problem(await client.post("/v1/webhook-secrets/rotate", headers=auth(writer)), 403)
    assert (await send_generic(client, tenant, _created(1))).status_code == 200
