"""All SQL for personas: the facts a persona is built from (beyond the segment profile's
distributions), and the persona and version rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Persona, PersonaVersion
from shared.personas.build import WEEKDAYS, Dist, Numeric, hour_band
from shared.segments import profile

# Dimensions a persona needs beyond the segment profile's own (same scan, same shape).
EXTRA_DIMENSIONS: dict[str, tuple[str, bool, int]] = {
    "children": ("c.children::text", False, 10),
    "industry": ("c.industry", False, 10),
    "lifestyle": ("c.lifestyle", True, 10),
    "motivations": ("c.motivations", True, 10),
    "decision_role": ("c.decision_role", False, 10),
}
DIMENSIONS = {**profile.DIMENSIONS, **EXTRA_DIMENSIONS}

_FROM = """FROM customers c
LEFT JOIN customer_values v ON v.tenant_id = c.tenant_id AND v.customer_id = c.id
LEFT JOIN segment_members m ON m.tenant_id = c.tenant_id AND m.segment_id = :s
     AND m.customer_id = c.id AND m.left_at IS NULL
WHERE c.tenant_id = :t"""

_YEARS = "greatest(extract(epoch FROM now() - c.first_order_at) / 31557600.0, 0.25)"
_NUMBERS = {
    "orders_per_year": f"CASE WHEN c.first_order_at IS NOT NULL THEN c.order_count / {_YEARS} END",
    "average_order_value": "c.average_order_value",
    "predicted_clv": "v.predicted_clv",
    "recency_days": "extract(epoch FROM now() - c.last_order_at) / 86400.0",
}


async def coverage(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(members, customers, dimension -> (members with a value, customers with a value))."""
    cols = ["count(m.customer_id) AS members", "count(*) AS customers"]
    for i, (expr, is_array, _) in enumerate(DIMENSIONS.values()):
        has = f"cardinality({expr}) > 0" if is_array else f"({expr}) IS NOT NULL"
        cols.append(f"count(*) FILTER (WHERE m.customer_id IS NOT NULL AND {has}) AS s{i}")
        cols.append(f"count(*) FILTER (WHERE {has}) AS a{i}")
    row = (
        await session.execute(
            text(f"SELECT {', '.join(cols)} {_FROM}"), {"t": tenant_id, "s": segment_id}
        )
    ).one()
    known = {
        name: (int(getattr(row, f"s{i}")), int(getattr(row, f"a{i}")))
        for i, name in enumerate(DIMENSIONS)
    }
    return int(row.members), int(row.customers), known


async def distributions(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, members: int, total: int
) -> dict[str, list[Dist]]:
    """The segment profile's distributions (shared.segments.profile) as counts."""
    buckets = await profile.distributions(
        session, tenant_id, segment_id, DIMENSIONS, members, total
    )
    return {
        name: [Dist(b.value, b.count, round(b.store_share * total)) for b in found]
        for name, found in buckets.items()
    }


async def when_they_buy(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> tuple[dict[str, list[Dist]], dict[str, tuple[int, int]]]:
    """Orders by weekday and by time of day (UTC), the segment's next to the store's."""
    rows = (
        await session.execute(
            text(
                """SELECT extract(dow FROM o.placed_at)::int AS dow,
                   extract(hour FROM o.placed_at)::int AS hour,
                   count(*) FILTER (WHERE m.customer_id IS NOT NULL) AS seg, count(*) AS store
                FROM orders o
                LEFT JOIN segment_members m ON m.tenant_id = o.tenant_id AND m.segment_id = :s
                     AND m.customer_id = o.customer_id AND m.left_at IS NULL
                WHERE o.tenant_id = :t AND o.customer_id IS NOT NULL
                  AND o.status NOT IN ('cancelled', 'refunded')
                GROUP BY 1, 2"""
            ),
            {"t": tenant_id, "s": segment_id},
        )
    ).all()
    days: dict[str, list[int]] = {}
    bands: dict[str, list[int]] = {}
    for r in rows:
        for bucket, key in ((days, WEEKDAYS[r.dow]), (bands, hour_band(r.hour))):
            acc = bucket.setdefault(key, [0, 0])
            acc[0] += int(r.seg)
            acc[1] += int(r.store)
    seg_total = sum(v[0] for v in days.values())
    store_total = sum(v[1] for v in days.values())

    def dist(acc: dict[str, list[int]]) -> list[Dist]:
        out = [Dist(k, v[0], v[1]) for k, v in acc.items()]
        return sorted(out, key=lambda d: (-d.count, -d.store_count, d.value))

    known = {"weekday": (seg_total, store_total), "hour": (seg_total, store_total)}
    return {"weekday": dist(days), "hour": dist(bands)}, known


async def numbers(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> dict[str, Numeric]:
    """Medians of per-customer behaviour numbers, in the segment and among all buyers."""
    cols = []
    for i, expr in enumerate(_NUMBERS.values()):
        cols.append(
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY ({expr})) "
            f"FILTER (WHERE m.customer_id IS NOT NULL) AS sm{i}"
        )
        cols.append(f"count({expr}) FILTER (WHERE m.customer_id IS NOT NULL) AS sn{i}")
        cols.append(f"percentile_cont(0.5) WITHIN GROUP (ORDER BY ({expr})) AS am{i}")
        cols.append(f"count({expr}) AS an{i}")
    row = (
        await session.execute(
            text(f"SELECT {', '.join(cols)} {_FROM}"), {"t": tenant_id, "s": segment_id}
        )
    ).one()

    def num(x: Any) -> float | None:
        return None if x is None else float(x)

    return {
        name: Numeric(
            num(getattr(row, f"sm{i}")),
            int(getattr(row, f"sn{i}")),
            num(getattr(row, f"am{i}")),
            int(getattr(row, f"an{i}")),
        )
        for i, name in enumerate(_NUMBERS)
    }


async def value_analysed(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    found = await session.execute(
        text("SELECT EXISTS (SELECT 1 FROM customer_values WHERE tenant_id = :t)"),
        {"t": tenant_id},
    )
    return bool(found.scalar())


async def get(session: AsyncSession, tenant_id: uuid.UUID, persona_id: uuid.UUID) -> Persona | None:
    return await session.get(Persona, (tenant_id, persona_id))


async def get_by_segment(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID
) -> Persona | None:
    found = await session.execute(
        select(Persona).where(Persona.tenant_id == tenant_id, Persona.segment_id == segment_id)
    )
    return found.scalar_one_or_none()


async def list_(
    session: AsyncSession, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> Sequence[Persona]:
    q = select(Persona).where(Persona.tenant_id == tenant_id)
    if after is not None:
        q = q.where(Persona.id > after)
    return (await session.execute(q.order_by(Persona.id).limit(limit))).scalars().all()


async def all_(session: AsyncSession, tenant_id: uuid.UUID) -> Sequence[Persona]:
    q = select(Persona).where(Persona.tenant_id == tenant_id).order_by(Persona.id)
    return (await session.execute(q)).scalars().all()


async def names(session: AsyncSession, tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Persona.segment_id, Persona.name).where(Persona.tenant_id == tenant_id)
    )
    return {r.segment_id: r.name for r in rows}


async def existing_segments(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Which of these segments still exist, with their current size."""
    rows = await session.execute(
        text("SELECT id, size FROM segments WHERE tenant_id = :t AND id = ANY(:ids)"),
        {"t": tenant_id, "ids": list(ids)},
    )
    return {r.id: int(r.size) for r in rows}


async def versions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    persona_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> Sequence[PersonaVersion]:
    q = select(PersonaVersion).where(
        PersonaVersion.tenant_id == tenant_id, PersonaVersion.persona_id == persona_id
    )
    if before is not None:
        q = q.where(PersonaVersion.version < before)
    q = q.order_by(PersonaVersion.version.desc()).limit(limit)
    return (await session.execute(q)).scalars().all()


async def memberships(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    segment_ids: Sequence[uuid.UUID],
) -> set[uuid.UUID]:
    rows = await session.execute(
        text(
            "SELECT segment_id FROM segment_members WHERE tenant_id = :t AND customer_id = :c "
            "AND left_at IS NULL AND segment_id = ANY(:ids)"
        ),
        {"t": tenant_id, "c": customer_id, "ids": list(segment_ids)},
    )
    return set(rows.scalars())


async def delete_persona(
    session: AsyncSession, tenant_id: uuid.UUID, persona_id: uuid.UUID
) -> None:
    await session.execute(
        delete(Persona).where(Persona.tenant_id == tenant_id, Persona.id == persona_id)
    )
