"""Per-customer purchase features for the value models, computed by PostgreSQL in one
statement over the tenant's orders (the set-based floor for data that lives there) and
handed over as numpy arrays.

Time is counted in whole days (UTC). Repeat purchases are counted by distinct purchase days,
as BG/NBD expects; only orders that count as purchases (placed, paid, fulfilled) and were
placed at or before `as_of` are read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

FEATURES_SQL = """
WITH days AS (
    SELECT customer_id,
           (placed_at AT TIME ZONE 'UTC')::date AS day,
           sum(total) AS spent,
           count(*) AS orders
    FROM orders
    WHERE tenant_id = $1 AND customer_id IS NOT NULL AND placed_at <= $2
      AND status IN ('placed', 'paid', 'fulfilled')
    GROUP BY customer_id, day
),
gaps AS (
    -- One window (one sort): the gap to the previous purchase day, and whether this is the
    -- customer's last purchase day.
    SELECT customer_id, day, spent, orders,
           day - lag(day) OVER w AS gap,
           lead(day) OVER w IS NULL AS is_last
    FROM days
    WINDOW w AS (PARTITION BY customer_id ORDER BY day)
),
per_customer AS (
    SELECT customer_id,
           min(day) AS first_day,
           max(day) AS last_day,
           count(*) AS purchase_days,
           sum(orders) AS orders,
           sum(spent) AS spent,
           sum(spent) FILTER (WHERE gap IS NOT NULL) AS repeat_spent,
           max(gap) AS longest_gap,
           max(gap) FILTER (WHERE is_last) AS last_gap
    FROM gaps
    GROUP BY customer_id
),
refunds AS (
    SELECT customer_id, count(*) AS refunds
    FROM orders
    WHERE tenant_id = $1 AND customer_id IS NOT NULL AND placed_at <= $2
      AND status = 'refunded'
    GROUP BY customer_id
)
SELECT c.id,
       ($2::timestamptz AT TIME ZONE 'UTC')::date - (c.created_at AT TIME ZONE 'UTC')::date
           AS age_days,
       c.referral_count,
       coalesce(p.orders, 0) AS orders,
       coalesce(p.purchase_days, 0) AS purchase_days,
       coalesce(p.spent, 0)::float8 AS spent,
       coalesce(p.repeat_spent, 0)::float8 AS repeat_spent,
       ($2::timestamptz AT TIME ZONE 'UTC')::date - p.first_day AS since_first,
       ($2::timestamptz AT TIME ZONE 'UTC')::date - p.last_day AS since_last,
       p.last_day - p.first_day AS span,
       coalesce(p.longest_gap, 0) AS longest_gap,
       coalesce(p.last_gap, 0) AS last_gap,
       coalesce(r.refunds, 0) AS refunds
FROM customers c
LEFT JOIN per_customer p ON p.customer_id = c.id
LEFT JOIN refunds r ON r.customer_id = c.id
WHERE c.tenant_id = $1 AND (c.created_at <= $2 OR p.customer_id IS NOT NULL)
"""


@dataclass
class Features:
    """One entry per customer; days since first/last purchase are -1 for non-buyers."""

    customer_id: np.ndarray  # object array of uuid.UUID
    age_days: np.ndarray
    referral_count: np.ndarray
    orders: np.ndarray
    purchase_days: np.ndarray
    spent: np.ndarray
    repeat_spent: np.ndarray
    since_first: np.ndarray
    since_last: np.ndarray
    span: np.ndarray
    longest_gap: np.ndarray
    last_gap: np.ndarray  # days between the last two purchase days (0 with one)
    refunds: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)


_COLUMNS = (
    ("age_days", "int8", "0"),
    ("referral_count", "int8", "0"),
    ("orders", "int8", "0"),
    ("purchase_days", "int8", "0"),
    ("spent", "float8", "0"),
    ("repeat_spent", "float8", "0"),
    ("since_first", "int8", "-1"),
    ("since_last", "int8", "-1"),
    ("span", "int8", "0"),
    ("longest_gap", "int8", "0"),
    ("last_gap", "int8", "0"),
    ("refunds", "int8", "0"),
)
# One row of arrays instead of a row per customer: asyncpg decodes an array in C, so the
# hand-over costs little beyond the query itself.
_ARRAYS_SQL = (
    "SELECT array_agg(f.id) AS id, "
    + ", ".join(
        f"array_agg(coalesce(f.{name}, {default})::{kind}) AS {name}"
        for name, kind, default in _COLUMNS
    )
    + f" FROM ({FEATURES_SQL}) AS f"
)


async def load(session: AsyncSession, tenant_id: uuid.UUID, as_of: datetime) -> Features:
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    # `fetch`, not `fetchrow`: asyncpg runs fetchrow's portal with a row limit, and
    # PostgreSQL then plans without parallel workers.
    row = (await raw.fetch(_ARRAYS_SQL, tenant_id, as_of))[0]
    ids = np.empty(len(row["id"] or []), dtype=object)
    ids[:] = row["id"] or []
    columns = {
        name: np.array(row[name] or [], dtype=np.float64 if kind == "float8" else np.int64)
        for name, kind, _ in _COLUMNS
    }
    columns["age_days"] = np.maximum(columns["age_days"], 0)
    return Features(customer_id=ids, **columns)
