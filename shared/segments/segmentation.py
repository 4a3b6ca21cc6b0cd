"""Data-driven segmentation runs: `rfm` (one segment per named RFM group, kept current like a
rule) and `kmeans` (clusters of buyers on behaviour and profile features, each a segment
named by what sets it apart, its centroid in the features' own units).

Features come from PostgreSQL in three set-based reads (customers, category mix, device
mix) and are pivoted into arrays; the clustering itself is `shared.segments.clustering`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics import rfm
from shared.errors import Conflict, InvalidInput, NotFound
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue
from shared.jobs.runner import JobKind, JobRun
from shared.models import CustomerValue, Segment, Segmentation
from shared.segments import clustering, repository
from shared.segments.schemas import SegmentRead

RUN = "segmentations.run"
RFM_GROUPS = rfm.SEGMENTS
TOP_CATEGORIES = 8


class SegmentationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["rfm", "kmeans"]
    features: list[str] | None = Field(
        default=None,
        max_length=40,
        description="k-means features (default: recency, frequency, monetary, AOV, tenure, "
        "age, category mix, channel, mobile share).",
    )
    k: int | None = Field(default=None, ge=2, le=20)
    k_min: int = Field(default=2, ge=2, le=20)
    k_max: int = Field(default=8, ge=2, le=20)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _ks(self) -> SegmentationCreate:
        if self.k_min > self.k_max:
            raise ValueError("k_min is above k_max")
        if self.method == "rfm" and (self.features or self.k):
            raise ValueError("rfm takes no features or k")
        return self


class SegmentationRead(BaseModel):
    id: uuid.UUID
    method: str
    params: dict[str, Any]
    job_id: uuid.UUID | None
    status: str
    result: dict[str, Any] | None
    segments: list[SegmentRead]
    created_at: datetime


# Every column as one array (one row back): no Python object per customer and field. Missing
# values come as NaN. `fetch`, not `fetchrow`: a row limit would rule out parallel workers.
_BASE = """
SELECT array_agg(c.id ORDER BY c.id) AS id,
       array_agg(coalesce(date_part('day', now() - c.last_order_at), 'NaN') ORDER BY c.id)
           AS recency_days,
       array_agg(c.order_count::float8 ORDER BY c.id) AS frequency,
       array_agg(c.total_spent::float8 ORDER BY c.id) AS monetary,
       array_agg(coalesce(c.average_order_value::float8, 'NaN') ORDER BY c.id) AS aov,
       array_agg(date_part('day', now() - coalesce(c.first_order_at, c.created_at)) ORDER BY c.id)
           AS tenure_days,
       array_agg(coalesce(date_part('year', age(c.birth_date)), 'NaN') ORDER BY c.id) AS age,
       array_agg(c.preferred_channel ORDER BY c.id) AS preferred_channel,
       array_agg(CASE WHEN c.order_count > 0
                      THEN c.refund_count::float8 / (c.order_count + c.refund_count)
                      ELSE 0 END ORDER BY c.id) AS refund_rate,
       array_agg(c.category_quantities ORDER BY c.id) AS category_quantities
FROM customers c
WHERE c.tenant_id = $1 AND c.order_count > 0
"""
_NUMERIC = ("recency_days", "frequency", "monetary", "aov", "tenure_days", "age", "refund_rate")
# The store's best-selling categories, from the customers' own tallies.
_TOP_CATEGORIES = """
SELECT q.key FROM customers c, jsonb_each_text(c.category_quantities) q
WHERE c.tenant_id = $1 AND c.order_count > 0
GROUP BY q.key ORDER BY sum(q.value::numeric) DESC, q.key LIMIT $2
"""
_DEVICES = """
SELECT array_agg(customer_id) AS customer_id, array_agg(mobile_share) AS mobile_share FROM (
    SELECT customer_id, avg((device = 'mobile')::int)::float8 AS mobile_share
    FROM events WHERE tenant_id = $1 AND customer_id IS NOT NULL AND device IS NOT NULL
    GROUP BY customer_id
) d
"""


async def load_features(
    session: AsyncSession, tenant_id: uuid.UUID
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Buyers (customers with at least one purchase) and their feature columns."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    (base,) = await raw.fetch(_BASE, tenant_id)
    ids = np.empty(len(base["id"] or ()), dtype=object)
    ids[:] = base["id"] or []
    n = len(ids)
    table: dict[str, np.ndarray] = {
        name: np.array(base[name] or [], dtype=np.float64) for name in _NUMERIC
    }
    preferred = np.array(base["preferred_channel"] or [], dtype=object)
    for channel in sorted({c for c in preferred if c}):
        table[f"channel_{_slug(channel)}"] = (preferred == channel).astype(np.float64)
    # The category mix: each customer's share of the store's top categories (of what they
    # bought of those), from the tallies the profile keeps.
    top = [r["key"] for r in await raw.fetch(_TOP_CATEGORIES, tenant_id, TOP_CATEGORIES)]
    if top:
        tallies = [json.loads(q) if isinstance(q, str) else q for q in base["category_quantities"]]
        quantities = np.array([[float(t.get(c, 0)) for c in top] for t in tallies]).reshape(
            n, len(top)
        )
        totals = quantities.sum(axis=1)
        for j, category in enumerate(top):
            table[f"category_{_slug(category)}"] = np.divide(
                quantities[:, j], totals, out=np.zeros(n), where=totals > 0
            )
    (devices,) = await raw.fetch(_DEVICES, tenant_id)
    index = {cid: i for i, cid in enumerate(ids)}
    at = np.fromiter((index.get(c, -1) for c in devices["customer_id"] or ()), np.int64)
    share = np.array(devices["mobile_share"] or [], dtype=np.float64)
    mobile = np.full(n, np.nan)
    mobile[at[at >= 0]] = share[at >= 0]
    if np.isfinite(mobile).any():
        table["mobile_share"] = mobile
    return ids, table


def _slug(value: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in value.lower()).strip("_")[:40] or "other"


async def start(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, data: SegmentationCreate
) -> Segmentation:
    if data.method == "rfm":
        analysed = await session.scalar(
            select(func.count()).where(CustomerValue.tenant_id == tenant_id)
        )
        if not analysed:
            raise Conflict(
                "RFM segmentation needs the customer-value analysis: POST "
                "/v1/analyses/customer-value first."
            )
    params = data.model_dump(mode="json", exclude_none=True)
    run = Segmentation(tenant_id=tenant_id, method=data.method, params=params)
    session.add(run)
    await session.flush()
    job = await jobs.create(session, queue, tenant_id, RUN, {"segmentation_id": str(run.id)})
    run.job_id = job.id
    return run


async def _rfm(run: JobRun, seg: Segmentation) -> dict[str, Any]:
    from shared.segments import service as segments

    made = []
    for group in RFM_GROUPS:
        slug = f"rfm:{_slug(group)}"
        segment = await repository.get_by_slug(run.session, run.tenant_id, slug)
        if segment is None:
            segment = Segment(
                tenant_id=run.tenant_id,
                slug=slug,
                name=group,
                kind="segmentation",
                description=f"RFM group {group!r}, kept current with the value analysis.",
                condition={"fact": "rfm_segment", "op": "eq", "value": group},
                details={},
            )
            run.session.add(segment)
            await run.session.flush()
        segment.details = {"segmentation_id": str(seg.id), "method": "rfm"}
        done = await segments.refresh(run.session, run.tenant_id, segment.id)
        made.append({"segment_id": str(segment.id), "name": group, "size": done["size"]})
    return {"segments": made}


async def _kmeans(run: JobRun, seg: Segmentation) -> dict[str, Any]:
    p = SegmentationCreate.model_validate(seg.params)
    ids, table = await load_features(run.session, run.tenant_id)
    await run.report(0.3)
    features = p.features or clustering.default_features(table)
    try:
        result = clustering.segment_kmeans(
            table, features, k=p.k, k_range=(p.k_min, p.k_max), seed=p.seed
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    await run.report(0.8)
    now = datetime.now(UTC)
    made = []
    for cluster in result.clusters:
        segment = Segment(
            tenant_id=run.tenant_id,
            slug=f"kmeans:{seg.id}:{cluster.label}",
            name=cluster.name,
            description=cluster.description,
            kind="segmentation",
            details={
                "segmentation_id": str(seg.id),
                "method": "kmeans",
                "label": cluster.label,
                "centroid": cluster.centroid,
                "statistic": cluster.statistic,
                "z_scores": cluster.z_scores,
                "traits": list(cluster.traits),
                "share": cluster.share,
            },
        )
        run.session.add(segment)
        await run.session.flush()
        # A new segment: its members are inserted at once (ids are distinct customers).
        members = ids[np.asarray(result.labels) == cluster.label].tolist()
        size = await repository.add_first_members(
            run.session, run.tenant_id, segment.id, members, now
        )
        segment.size, segment.refreshed_at = size, now
        made.append(
            {
                "segment_id": str(segment.id),
                "name": cluster.name,
                "size": size,
                "description": cluster.description,
                "centroid": cluster.centroid,
            }
        )
    return {
        "segments": made,
        "k": result.k,
        "k_chosen": result.k_chosen,
        "features": list(result.features),
        "customers": int(len(ids)),
        "silhouette": result.silhouette,
        "davies_bouldin": result.davies_bouldin,
        "scores": [
            {"k": s.k, "silhouette": s.silhouette, "davies_bouldin": s.davies_bouldin}
            for s in result.scores
        ],
        "seed": result.seed,
    }


async def run_job(run: JobRun) -> dict[str, Any]:
    seg = (
        await run.session.execute(
            select(Segmentation).where(
                Segmentation.tenant_id == run.tenant_id,
                Segmentation.id == uuid.UUID(run.params["segmentation_id"]),
            )
        )
    ).scalar_one_or_none()
    if seg is None:
        return {"skipped": "the segmentation is gone"}
    result = await (_rfm(run, seg) if seg.method == "rfm" else _kmeans(run, seg))
    seg.result = result
    return result


RUN_KIND = JobKind(RUN, run_job, timeout_s=900, max_tries=2)


async def read(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> SegmentationRead:
    from shared.segments import service as segments

    try:
        seg_id = uuid.UUID(raw)
    except ValueError:
        raise NotFound("No segmentation with this id.") from None
    seg = (
        await session.execute(
            select(Segmentation).where(
                Segmentation.tenant_id == tenant_id, Segmentation.id == seg_id
            )
        )
    ).scalar_one_or_none()
    if seg is None:
        raise NotFound("No segmentation with this id.")
    status = "queued"
    if seg.job_id is not None:
        status = (await jobs.get(session, tenant_id, seg.job_id)).status
    made = []
    for item in (seg.result or {}).get("segments", []):
        segment = await repository.get(session, tenant_id, uuid.UUID(item["segment_id"]))
        if segment is not None:
            made.append(segments.to_read(segment))
    return SegmentationRead(
        id=seg.id,
        method=seg.method,
        params=seg.params,
        job_id=seg.job_id,
        status=status,
        result=seg.result,
        segments=made,
        created_at=seg.created_at,
    )
