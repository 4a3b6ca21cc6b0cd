"""Behavioural facts computed from orders and events, refreshed set-based for the customers
an ingest touched: one UPDATE over all of them, never a query per customer."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Orders that count as purchases; cancelled and refunded ones do not.
PURCHASE_STATUSES = ("placed", "paid", "fulfilled")

# Each statement probes the (tenant_id, customer_id) indexes once per target customer
# (LATERAL), so its cost follows the batch, not the table, whatever the planner's statistics.
_ORDERS_SQL = """
WITH target AS (SELECT unnest(CAST(:ids AS uuid[])) AS id)
UPDATE customers c SET
    order_count = o.n,
    total_spent = o.spent,
    average_order_value = CASE WHEN o.n > 0 THEN round(o.spent / o.n, 2) END,
    first_order_at = o.first_at,
    last_order_at = o.last_at,
    refund_count = o.refunds,
    refunded_amount = o.refunded,
    order_channel = o.channel,
    top_categories = cat.top,
    category_quantities = cat.quantities,
    stats_updated_at = now()
FROM target t
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS n,
           coalesce(sum(o.total) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')), 0)
               AS spent,
           min(o.placed_at) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS first_at,
           max(o.placed_at) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS last_at,
           count(*) FILTER (WHERE o.status = 'refunded') AS refunds,
           coalesce(sum(o.total) FILTER (WHERE o.status = 'refunded'), 0) AS refunded,
           mode() WITHIN GROUP (ORDER BY o.channel)
               FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS channel
    FROM orders o
    WHERE o.tenant_id = :tenant AND o.customer_id = t.id
) o
CROSS JOIN LATERAL (
    SELECT (array_agg(x.category ORDER BY x.qty DESC, x.category))[1:3] AS top,
           coalesce(jsonb_object_agg(x.category, x.qty), '{}') AS quantities
    FROM (
        SELECT i.category, sum(i.quantity) AS qty
        FROM order_items i
        WHERE i.tenant_id = :tenant AND i.category IS NOT NULL
          AND i.order_id = ANY (ARRAY(
              SELECT o.id FROM orders o
              WHERE o.tenant_id = :tenant AND o.customer_id = t.id
                AND o.status IN ('placed', 'paid', 'fulfilled')
          ))
        GROUP BY i.category
    ) x
) cat
WHERE c.tenant_id = :tenant AND c.id = t.id
"""

# Driven by the customers' primary key (`id = ANY`), one mode() per customer over its events.
_EVENTS_SQL = """
UPDATE customers c SET (preferred_device, event_channel, stats_updated_at) = (
    SELECT mode() WITHIN GROUP (ORDER BY e.device), mode() WITHIN GROUP (ORDER BY e.channel),
           now()
    FROM events e
    WHERE e.tenant_id = :tenant AND e.customer_id = c.id
)
WHERE c.tenant_id = :tenant AND c.id = ANY(CAST(:ids AS uuid[]))
"""
# The stored preferences of the customers new events touched, their rows locked in id order:
# every transaction that refreshes customers locks them in that one order, never in a cycle.
_PREFERENCES_SQL = """
SELECT id, preferred_device, event_channel FROM customers
WHERE tenant_id = :tenant AND id = ANY(CAST(:ids AS uuid[]))
ORDER BY id
FOR NO KEY UPDATE
"""

_REFERRALS_SQL = """
WITH target AS (SELECT unnest(CAST(:refs AS text[])) AS external_id)
UPDATE customers c SET referral_count = r.n
FROM target t
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM customers r
    WHERE r.tenant_id = :tenant AND r.referred_by = t.external_id
) r
WHERE c.tenant_id = :tenant AND c.external_id = t.external_id
"""


async def refresh_orders(
    session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Collection[uuid.UUID]
) -> None:
    if customer_ids:
        await session.execute(
            text(_ORDERS_SQL), {"tenant": tenant_id, "ids": sorted(set(customer_ids))}
        )


async def refresh_events(
    session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Collection[uuid.UUID]
) -> None:
    if customer_ids:
        await session.execute(
            text(_EVENTS_SQL), {"tenant": tenant_id, "ids": sorted(set(customer_ids))}
        )


async def refresh_events_for(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    votes: Collection[tuple[uuid.UUID, str | None, str | None]],
    always: Collection[uuid.UUID] = (),
) -> None:
    """Refresh after new events, given as (customer, device, channel): the customers in
    `always`, and those whose preferred device or channel the events could change. Events
    that name the value stored (or none) cannot: votes for the mode keep it the mode."""
    ids = sorted({v[0] for v in votes} | set(always))
    if not ids:
        return
    stored = {
        cid: (device, channel)
        for cid, device, channel in await session.execute(
            text(_PREFERENCES_SQL), {"tenant": tenant_id, "ids": ids}
        )
    }
    changed = set(always)
    for cid, device, channel in votes:
        held = stored.get(cid)
        if held is not None and (
            (device is not None and device != held[0])
            or (channel is not None and channel != held[1])
        ):
            changed.add(cid)
    await refresh_events(session, tenant_id, changed)


async def refresh_referrals(
    session: AsyncSession, tenant_id: uuid.UUID, referrer_external_ids: Collection[str]
) -> None:
    refs = sorted({r for r in referrer_external_ids if r})
    if refs:
        await session.execute(text(_REFERRALS_SQL), {"tenant": tenant_id, "refs": refs})


async def analyze_tables(session: AsyncSession) -> None:
    """Refresh the planner's statistics after a bulk load (an owner-run function)."""
    await session.execute(text("SELECT portrait_analyze()"))
