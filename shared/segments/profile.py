"""A segment's portrait next to the whole store's, and STP comparison of segments.

Each distribution is one GROUP BY over the tenant's customers with a membership flag, so the
segment's share and the store's share of every value come from the same scan, and the lift
(segment share / store share) shows what sets the segment apart."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.segments import repository
from shared.segments import service as segments
from shared.segments.schemas import (
    Bucket,
    CompareRequest,
    CompareResult,
    SegmentProfile,
    SegmentScore,
)

_AGE_BAND = """CASE
    WHEN c.birth_date IS NULL THEN c.age_band
    WHEN date_part('year', age(c.birth_date)) < 25 THEN '18-24'
    WHEN date_part('year', age(c.birth_date)) < 35 THEN '25-34'
    WHEN date_part('year', age(c.birth_date)) < 45 THEN '35-44'
    WHEN date_part('year', age(c.birth_date)) < 55 THEN '45-54'
    WHEN date_part('year', age(c.birth_date)) < 65 THEN '55-64'
    ELSE '65+' END"""

# name -> (SQL expression per customer, or an array to unnest; top N values shown)
DIMENSIONS: dict[str, tuple[str, bool, int]] = {
    "age_band": (_AGE_BAND, False, 10),
    "gender": ("c.gender", False, 10),
    "marital_status": ("c.marital_status", False, 10),
    "income_band": ("c.income_band", False, 10),
    "education_level": ("c.education_level", False, 10),
    "occupation": ("c.occupation", False, 10),
    "city": ("c.city", False, 10),
    "country": ("c.country", False, 10),
    "interests": ("c.interests", True, 10),
    "values": ("c.values", True, 10),
    "preferred_channel": ("c.preferred_channel", False, 10),
    "order_channel": ("c.order_channel", False, 10),
    "device": ("c.preferred_device", False, 10),
    "lifecycle_stage": ("v.lifecycle_stage", False, 10),
    "rfm_segment": ("v.rfm_segment", False, 11),
    "top_categories": ("c.top_categories", True, 10),
}

_FROM = """
FROM customers c
LEFT JOIN customer_values v ON v.tenant_id = c.tenant_id AND v.customer_id = c.id
LEFT JOIN segment_members m ON m.tenant_id = c.tenant_id AND m.segment_id = :s
     AND m.customer_id = c.id AND m.left_at IS NULL
WHERE c.tenant_id = :t
"""


def _distribution_sql(expr: str, is_array: bool) -> str:
    key = "k.value" if is_array else expr
    lateral = f"CROSS JOIN LATERAL unnest({expr}) AS k(value)" if is_array else ""
    base = _FROM.replace("WHERE c.tenant_id", f"{lateral}\nWHERE c.tenant_id")
    return (
        f"SELECT {key} AS value, count(*) FILTER (WHERE m.customer_id IS NOT NULL) AS seg, "
        f"count(*) AS store {base} AND {key} IS NOT NULL GROUP BY 1"
    )


def _buckets(rows: Any, seg_total: int, store_total: int, top: int) -> list[Bucket]:
    out = []
    for r in rows:
        share = r.seg / seg_total if seg_total else 0.0
        store_share = r.store / store_total if store_total else 0.0
        out.append(
            Bucket(
                value=str(r.value),
                count=int(r.seg),
                share=round(share, 4),
                store_share=round(store_share, 4),
                lift=round(share / store_share, 3) if store_share else None,
            )
        )
    out.sort(key=lambda b: (-b.count, -b.store_share, b.value))
    return out[:top]


async def _totals(session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID) -> Any:
    return (
        await session.execute(
            text(
                f"""
        SELECT count(*) AS customers,
               count(m.customer_id) AS members,
               coalesce(sum(c.total_spent), 0) AS revenue,
               coalesce(sum(c.total_spent) FILTER (WHERE m.customer_id IS NOT NULL), 0)
                   AS seg_revenue,
               coalesce(sum(c.order_count) FILTER (WHERE m.customer_id IS NOT NULL), 0)
                   AS seg_orders,
               sum(v.predicted_clv) FILTER (WHERE m.customer_id IS NOT NULL) AS seg_clv,
               avg(v.predicted_clv) FILTER (WHERE m.customer_id IS NOT NULL) AS seg_avg_clv,
               count(*) FILTER (WHERE m.customer_id IS NOT NULL AND (c.accepts_marketing
                   OR c.preferred_channel IS NOT NULL)) AS reachable
        {_FROM}
        """
            ),
            {"t": tenant_id, "s": segment_id},
        )
    ).one()


async def distributions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    segment_id: uuid.UUID,
    dimensions: dict[str, tuple[str, bool, int]],
    members: int,
    customers: int,
) -> dict[str, list[Bucket]]:
    """The segment's and the store's distribution of each dimension (see DIMENSIONS); other
    domains (personas) pass their own dimensions over the same customer scan."""
    params = {"t": tenant_id, "s": segment_id}
    out = {}
    for name, (expr, is_array, top) in dimensions.items():
        rows = (await session.execute(text(_distribution_sql(expr, is_array)), params)).all()
        out[name] = _buckets(rows, members, customers, top)
    return out


async def profile(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> SegmentProfile:
    segment = await segments.get(session, tenant_id, raw)
    t = await _totals(session, tenant_id, segment.id)
    distributions_ = await distributions(
        session, tenant_id, segment.id, DIMENSIONS, int(t.members), int(t.customers)
    )
    revenue = Decimal(t.revenue)
    return SegmentProfile(
        segment_id=segment.id,
        size=int(t.members),
        total_customers=int(t.customers),
        share_of_customers=round(t.members / t.customers, 4) if t.customers else 0.0,
        revenue=segments.money(t.seg_revenue),
        revenue_share=round(float(t.seg_revenue / revenue), 4) if revenue else 0.0,
        average_order_value=(
            segments.money(t.seg_revenue / t.seg_orders) if t.seg_orders else None
        ),
        predicted_value=None if t.seg_clv is None else segments.money(t.seg_clv),
        average_predicted_value=None if t.seg_avg_clv is None else segments.money(t.seg_avg_clv),
        growth=await segments.growth(session, tenant_id, segment, 30),
        size_history=await repository.size_history(session, tenant_id, segment.id, 30),
        distributions=distributions_,
    )


def _scaled(values: list[float]) -> list[float]:
    """Min-max to 0..1 across the compared segments (all equal: all 1)."""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [1.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


async def compare(
    session: AsyncSession, tenant_id: uuid.UUID, data: CompareRequest
) -> CompareResult:
    """STP targeting: each segment's size, value, growth and reachability, scaled across the
    compared segments and weighted by the caller's weights into one score; ranked."""
    rows: list[dict[str, Any]] = []
    for raw in dict.fromkeys(data.segment_ids):
        segment = await segments.get(session, tenant_id, raw)
        t = await _totals(session, tenant_id, segment.id)
        grown = await segments.growth(session, tenant_id, segment, data.period_days)
        members = int(t.members)
        rows.append(
            {
                "segment": segment,
                "size": float(members),
                "revenue": float(t.seg_revenue),
                "predicted_clv": float(t.seg_clv or 0),
                "average_order_value": float(t.seg_revenue / t.seg_orders) if t.seg_orders else 0.0,
                "growth": float(
                    grown.rate if grown.rate is not None else (1.0 if members else 0.0)
                ),
                "reachability": t.reachable / members if members else 0.0,
                "grown": grown,
                "aov": t.seg_revenue / t.seg_orders if t.seg_orders else None,
            }
        )
    weights = data.weights.model_dump()
    metrics = list(weights)
    scaled = {m: _scaled([r[m] for r in rows]) for m in metrics}
    total_weight = sum(weights.values()) or 1.0
    scored = []
    for i, r in enumerate(rows):
        components = {m: round(scaled[m][i], 4) for m in metrics}
        score = sum(weights[m] * scaled[m][i] for m in metrics) / total_weight
        scored.append((score, r, components))
    scored.sort(key=lambda x: (-x[0], x[1]["segment"].name))
    return CompareResult(
        weights=data.weights,
        period_days=data.period_days,
        ranking=[
            SegmentScore(
                segment_id=r["segment"].id,
                name=r["segment"].name,
                rank=n,
                score=round(s, 4),
                size=int(r["size"]),
                revenue=segments.money(r["revenue"]),
                predicted_clv=segments.money(r["predicted_clv"]),
                average_order_value=None if r["aov"] is None else segments.money(r["aov"]),
                growth=r["grown"],
                reachability=round(r["reachability"], 4),
                components=components,
            )
            for n, (s, r, components) in enumerate(scored, start=1)
        ],
    )
