"""Behavioural facts computed from orders and events, refreshed set-based for the customers
an ingest touched: one UPDATE over all of them, never a query per customer."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Orders that count as purchases; cancelled and refunded ones do not.
PURCHASE_STATUSES = ("placed", "paid", "fulfilled")

_ORDERS_SQL = """
WITH target AS (SELECT unnest(CAST(:ids AS uuid[])) AS id),
o AS (
    SELECT o.customer_id,
           count(*) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS n,
           coalesce(sum(o.total) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')), 0)
               AS spent,
           min(o.placed_at) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS first_at,
           max(o.placed_at) FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS last_at,
           count(*) FILTER (WHERE o.status = 'refunded') AS refunds,
           coalesce(sum(o.total) FILTER (WHERE o.status = 'refunded'), 0) AS refunded,
           mode() WITHIN GROUP (ORDER BY o.channel)
               FILTER (WHERE o.status IN ('placed', 'paid', 'fulfilled')) AS channel
    FROM orders o JOIN target t ON o.customer_id = t.id
    WHERE o.tenant_id = :tenant
    GROUP BY o.customer_id
),
cat AS (
    SELECT customer_id, array_agg(category ORDER BY qty DESC, category) AS top
    FROM (
        SELECT o.customer_id, i.category, sum(i.quantity) AS qty,
               row_number() OVER (PARTITION BY o.customer_id
                                  ORDER BY sum(i.quantity) DESC, i.category) AS rank
        FROM orders o
        JOIN target t ON o.customer_id = t.id
        JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
        WHERE o.tenant_id = :tenant AND i.category IS NOT NULL
          AND o.status IN ('placed', 'paid', 'fulfilled')
        GROUP BY o.customer_id, i.category
    ) ranked
    WHERE rank <= 3
    GROUP BY customer_id
)
UPDATE customers c SET
    order_count = coalesce(o.n, 0),
    total_spent = coalesce(o.spent, 0),
    average_order_value = CASE WHEN coalesce(o.n, 0) > 0 THEN round(o.spent / o.n, 2) END,
    first_order_at = o.first_at,
    last_order_at = o.last_at,
    refund_count = coalesce(o.refunds, 0),
    refunded_amount = coalesce(o.refunded, 0),
    order_channel = o.channel,
    top_categories = cat.top,
    stats_updated_at = now()
FROM target t
LEFT JOIN o ON o.customer_id = t.id
LEFT JOIN cat ON cat.customer_id = t.id
WHERE c.tenant_id = :tenant AND c.id = t.id
"""

_EVENTS_SQL = """
WITH target AS (SELECT unnest(CAST(:ids AS uuid[])) AS id),
e AS (
    SELECT e.customer_id,
           mode() WITHIN GROUP (ORDER BY e.device) AS device,
           mode() WITHIN GROUP (ORDER BY e.channel) AS channel
    FROM events e JOIN target t ON e.customer_id = t.id
    WHERE e.tenant_id = :tenant
    GROUP BY e.customer_id
)
UPDATE customers c SET preferred_device = e.device, event_channel = e.channel,
    stats_updated_at = now()
FROM target t LEFT JOIN e ON e.customer_id = t.id
WHERE c.tenant_id = :tenant AND c.id = t.id
"""

_REFERRALS_SQL = """
WITH target AS (SELECT unnest(CAST(:refs AS text[])) AS external_id),
r AS (
    SELECT c.referred_by AS external_id, count(*) AS n
    FROM customers c JOIN target t ON c.referred_by = t.external_id
    WHERE c.tenant_id = :tenant
    GROUP BY c.referred_by
)
UPDATE customers c SET referral_count = coalesce(r.n, 0)
FROM target t LEFT JOIN r ON r.external_id = t.external_id
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


async def refresh_referrals(
    session: AsyncSession, tenant_id: uuid.UUID, referrer_external_ids: Collection[str]
) -> None:
    refs = sorted({r for r in referrer_external_ids if r})
    if refs:
        await session.execute(text(_REFERRALS_SQL), {"tenant": tenant_id, "refs": refs})
