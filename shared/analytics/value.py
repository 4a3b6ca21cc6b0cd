"""Customer value for a whole tenant: features from PostgreSQL, the models over arrays, the
results written back set-based. The `analytics.customer_value` job runs it; the API reads
the stored results on profiles, in filters and in the summary."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics import features as features_mod
from shared.analytics import models, rfm
from shared.analytics.features import Features
from shared.analytics.schemas import CustomerValueRead, ValueSummary
from shared.jobs.runner import JobKind, JobRun
from shared.models import CustomerValue, ValueRun
from shared.segments import service as segments_service

PREDICTION_DAYS = 90
# A yearly 10% discount rate, per day: CLV is a present value.
DISCOUNT_PER_DAY = 1.10 ** (1 / 365) - 1

_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "lifecycle_stage",
    "prob_alive",
    "expected_orders_90d",
    "expected_spend",
    "predicted_clv",
    "churn_risk",
    "longest_tenure",
    "referrer",
    "above_average_spender",
)


@dataclass
class Computed:
    columns: dict[str, np.ndarray]
    models: dict[str, Any]


def _finite(values: np.ndarray, fallback: float = 0.0) -> np.ndarray:
    return np.where(np.isfinite(values), values, fallback)


def compute(f: Features, horizon_days: int) -> Computed:
    """Every value fact for every customer; pure (no I/O). Buyers get predictions; prospects
    (no purchase yet) get their stage and zeros, never NaN."""
    n = len(f)
    buyer = f.purchase_days > 0
    x = np.maximum(f.purchase_days - 1, 0)[buyer].astype(np.float64)
    t_x = f.span[buyer].astype(np.float64)
    big_t = np.maximum(f.since_first[buyer], 0).astype(np.float64)
    repeat_mean = np.divide(f.repeat_spent[buyer], x, out=np.zeros_like(x), where=x > 0)
    order_value = float(f.spent[buyer].sum() / max(f.orders[buyer].sum(), 1))

    bg = models.fit_bgnbd(x, t_x, big_t)
    gg = models.fit_gamma_gamma(x, repeat_mean, fallback_mean=order_value)
    alive = np.full(n, np.nan)
    expected = np.full(n, np.nan)
    spend = np.full(n, np.nan)
    value = np.full(n, np.nan)
    risk = np.full(n, np.nan)
    if buyer.any():
        alive[buyer] = models.prob_alive(bg.params, x, t_x, big_t)
        expected[buyer] = models.expected_purchases(bg.params, PREDICTION_DAYS, x, t_x, big_t)
        spend[buyer] = models.expected_spend(gg.params, x, repeat_mean)
        value[buyer] = models.clv(
            bg.params,
            gg.params,
            x,
            t_x,
            big_t,
            repeat_mean,
            horizon_periods=horizon_days,
            discount_rate_per_period=DISCOUNT_PER_DAY,
        )
        risk[buyer] = models.churn_risk(bg.params, x, t_x, big_t, horizon=PREDICTION_DAYS)

    recency = np.where(buyer, f.since_last, -1)
    r, fr, m = rfm.rfm_scores(
        np.where(buyer, f.since_last, np.nan), f.purchase_days, np.where(buyer, f.spent, 0.0)
    )
    longest, referrer, above = rfm.core_flags(
        np.where(buyer, f.since_first, f.age_days), f.referral_count, f.spent, f.orders
    )
    stages = rfm.lifecycle_stage(f.purchase_days, f.since_first, f.since_last, f.last_gap)
    stages = np.where((f.purchase_days == 0) & (f.refunds > 0), "churned", stages)
    columns = {
        "customer_id": f.customer_id,
        "recency_days": recency,
        "frequency": f.purchase_days,
        "monetary": f.spent,
        "r_score": r,
        "f_score": fr,
        "m_score": m,
        "rfm_segment": rfm.rfm_segment(r, fr, m),
        "lifecycle_stage": stages,
        "prob_alive": alive,
        "expected_orders_90d": expected,
        "expected_spend": spend,
        "predicted_clv": value,
        "churn_risk": risk,
        "longest_tenure": longest,
        "referrer": referrer,
        "above_average_spender": above,
    }
    fitted = {
        "bgnbd": {
            **asdict(bg.params),
            "usable": bg.usable,
            "method": bg.method,
            "reason": bg.reason,
            "customers": bg.n,
            "time_unit": "days",
        },
        "gamma_gamma": {
            **asdict(gg.params),
            "usable": gg.usable,
            "method": gg.method,
            "reason": gg.reason,
            "customers": gg.n,
        },
    }
    return Computed(columns, fitted)


def _records(c: Computed) -> list[tuple[Any, ...]]:
    cols = c.columns

    def money(v: float) -> Decimal | None:
        return None if not np.isfinite(v) else Decimal(f"{v:.2f}")

    def num(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    out = []
    for i in range(len(cols["customer_id"])):
        recency = int(cols["recency_days"][i])
        out.append(
            (
                cols["customer_id"][i],
                None if recency < 0 else recency,
                int(cols["frequency"][i]),
                money(float(cols["monetary"][i])) or Decimal(0),
                int(cols["r_score"][i]),
                int(cols["f_score"][i]),
                int(cols["m_score"][i]),
                cols["rfm_segment"][i],
                str(cols["lifecycle_stage"][i]),
                num(cols["prob_alive"][i]),
                num(cols["expected_orders_90d"][i]),
                money(cols["expected_spend"][i]),
                money(cols["predicted_clv"][i]),
                num(cols["churn_risk"][i]),
                bool(cols["longest_tenure"][i]),
                bool(cols["referrer"][i]),
                bool(cols["above_average_spender"][i]),
            )
        )
    return out


async def store(
    session: AsyncSession, tenant_id: uuid.UUID, c: Computed, computed_at: datetime
) -> None:
    """Replace the tenant's value rows in this transaction: COPY into a temporary table (COPY
    cannot write a table under row-level security), then one INSERT ... SELECT."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    cols = ", ".join(_COLUMNS)
    # Same column types as the real table, no constraints (tenant_id is added on insert).
    await session.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS value_stage ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM customer_values WITH NO DATA"
        )
    )
    await session.execute(text("TRUNCATE value_stage"))
    await raw.copy_records_to_table("value_stage", records=_records(c), columns=list(_COLUMNS))
    await session.execute(
        text("DELETE FROM customer_values WHERE tenant_id = :t"), {"t": tenant_id}
    )
    await session.execute(
        text(
            f"INSERT INTO customer_values (tenant_id, {cols}, computed_at) "
            f"SELECT :t, {cols}, :at FROM value_stage"
        ),
        {"t": tenant_id, "at": computed_at},
    )


async def run(run: JobRun) -> dict[str, Any]:
    as_of_raw = run.params.get("as_of")
    as_of = datetime.fromisoformat(as_of_raw) if as_of_raw else datetime.now(UTC)
    horizon = int(run.params.get("horizon_days", 365))
    feats = await features_mod.load(run.session, run.tenant_id, as_of)
    await run.report(0.3)
    computed = compute(feats, horizon)
    await run.report(0.6)
    now = datetime.now(UTC)
    await store(run.session, run.tenant_id, computed, now)
    await run.report(0.9)
    run.session.add(
        ValueRun(
            tenant_id=run.tenant_id,
            job_id=run.job_id,
            as_of=as_of,
            horizon_days=horizon,
            customers=len(feats),
            models=computed.models,
            computed_at=now,
        )
    )
    # Value facts feed the built-in core segments and any rule that uses them.
    await segments_service.ensure_builtins(run.session, run.tenant_id)
    if run.queue is not None:
        await segments_service.refresh_rule_segments(
            run.session, run.queue, run.tenant_id, due_only=False
        )
    segments = Counter(s for s in computed.columns["rfm_segment"] if s)
    stages = Counter(str(s) for s in computed.columns["lifecycle_stage"])
    clv = computed.columns["predicted_clv"]
    return {
        "as_of": as_of.isoformat(),
        "horizon_days": horizon,
        "customers": len(feats),
        "rfm_segments": dict(segments),
        "lifecycle_stages": dict(stages),
        "total_predicted_clv": f"{float(np.nansum(clv)):.2f}",
        "models": computed.models,
    }


CUSTOMER_VALUE = JobKind("analytics.customer_value", run, timeout_s=900, max_tries=3)


async def read_one(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> CustomerValueRead | None:
    row = (
        await session.execute(
            select(CustomerValue).where(
                CustomerValue.tenant_id == tenant_id, CustomerValue.customer_id == customer_id
            )
        )
    ).scalar_one_or_none()
    return None if row is None else CustomerValueRead.model_validate(row, from_attributes=True)


async def summary(session: AsyncSession, tenant_id: uuid.UUID) -> ValueSummary:
    last = (
        await session.execute(
            select(ValueRun)
            .where(ValueRun.tenant_id == tenant_id)
            .order_by(ValueRun.computed_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    counts = (
        await session.execute(
            text(
                "SELECT rfm_segment, lifecycle_stage, count(*) AS n, sum(predicted_clv) AS clv, "
                "sum(longest_tenure::int) AS longest, sum(referrer::int) AS referrers, "
                "sum(above_average_spender::int) AS above "
                "FROM customer_values WHERE tenant_id = :t GROUP BY rfm_segment, lifecycle_stage"
            ),
            {"t": tenant_id},
        )
    ).all()
    segments: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    core: Counter[str] = Counter()
    total = Decimal(0)
    for row in counts:
        if row.rfm_segment:
            segments[row.rfm_segment] += row.n
        stages[row.lifecycle_stage] += row.n
        total += row.clv or 0
        core.update(
            longest_tenure=row.longest, referrers=row.referrers, above_average_spenders=row.above
        )
    return ValueSummary(
        computed_at=last.computed_at if last else None,
        as_of=last.as_of if last else None,
        horizon_days=last.horizon_days if last else None,
        customers=sum(stages.values()),
        rfm_segments=dict(segments),
        lifecycle_stages=dict(stages),
        core=dict(core),
        total_predicted_clv=f"{total:.2f}",
        models=last.models if last else {},
    )
