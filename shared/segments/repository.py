"""All SQL for segments: the matching query for a condition, membership diffs, reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Uuid,
    and_,
    bindparam,
    column,
    func,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import key_checks_cached
from shared.models import Customer, CustomerValue, Segment, SegmentMember


def matching(tenant_id: uuid.UUID, condition: ColumnElement[bool]) -> Select[Any]:
    """The ids of the tenant's customers meeting `condition` (value facts outer-joined)."""
    return (
        select(Customer.id)
        .select_from(Customer)
        .outerjoin(
            CustomerValue,
            and_(
                CustomerValue.tenant_id == Customer.tenant_id,
                CustomerValue.customer_id == Customer.id,
            ),
        )
        .where(Customer.tenant_id == tenant_id, condition)
    )


async def count_customers(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    return int(
        await session.scalar(select(func.count()).where(Customer.tenant_id == tenant_id)) or 0
    )


async def preview(
    session: AsyncSession, tenant_id: uuid.UUID, condition: ColumnElement[bool], sample: int
) -> tuple[int, Sequence[Customer]]:
    ids = matching(tenant_id, condition).subquery()
    size = int(await session.scalar(select(func.count()).select_from(ids)) or 0)
    rows: Sequence[Customer] = []
    if sample and size:
        rows = (
            (
                await session.execute(
                    select(Customer)
                    .where(Customer.tenant_id == tenant_id, Customer.id.in_(select(ids.c.id)))
                    .order_by(Customer.total_spent.desc(), Customer.id)
                    .limit(sample)
                )
            )
            .scalars()
            .all()
        )
    return size, rows


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, *, for_update: bool = False
) -> Segment | None:
    stmt = select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_slug(session: AsyncSession, tenant_id: uuid.UUID, slug: str) -> Segment | None:
    return (
        await session.execute(
            select(Segment).where(Segment.tenant_id == tenant_id, Segment.slug == slug)
        )
    ).scalar_one_or_none()


async def existing_ids(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await session.execute(
        select(Segment.id).where(Segment.tenant_id == tenant_id, Segment.id.in_(ids))
    )
    return set(rows.scalars())


async def list_(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    kind: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Segment]:
    stmt = select(Segment).where(Segment.tenant_id == tenant_id)
    if kind:
        stmt = stmt.where(Segment.kind == kind)
    if after:
        stmt = stmt.where(Segment.id < after)
    return (await session.execute(stmt.order_by(Segment.id.desc()).limit(limit))).scalars().all()


_STAGE = text(
    "CREATE TEMP TABLE IF NOT EXISTS segment_match (customer_id uuid PRIMARY KEY) "
    "ON COMMIT DELETE ROWS"
)

_LEAVE = text(
    """
    UPDATE segment_members m SET left_at = :now
    WHERE m.tenant_id = :t AND m.segment_id = :s AND m.left_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM segment_match x WHERE x.customer_id = m.customer_id)
    """
)
_ENTER = text(
    """
    INSERT INTO segment_members (tenant_id, segment_id, customer_id, entered_at)
    SELECT :t, :s, x.customer_id, :now FROM segment_match x
    WHERE NOT EXISTS (
        SELECT 1 FROM segment_members m
        WHERE m.tenant_id = :t AND m.segment_id = :s AND m.customer_id = x.customer_id
          AND m.left_at IS NULL
    )
    """
)


_MATCH = table("segment_match", column("customer_id"))


async def replace_members(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    segment_id: uuid.UUID,
    ids: Select[Any],
    now: datetime,
) -> tuple[int, int, int]:
    """Make the open memberships equal the customers `ids` selects: close the ones that no
    longer match, open the new ones (history is kept). Set-based: a temporary table of the
    matching ids, then one UPDATE and one INSERT. Returns (size, entered, left)."""
    await session.execute(_STAGE)
    await session.execute(text("TRUNCATE segment_match"))
    await session.execute(insert(_MATCH).from_select(["customer_id"], ids.distinct()))
    params = {"t": tenant_id, "s": segment_id, "now": now}
    left = (await session.execute(_LEAVE, params)).rowcount  # type: ignore[attr-defined]
    async with key_checks_cached(session):
        entered = (await session.execute(_ENTER, params)).rowcount  # type: ignore[attr-defined]
    size = int(await session.scalar(text("SELECT count(*) FROM segment_match")) or 0)
    return size, int(entered or 0), int(left or 0)


async def members(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    segment_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Any]:
    stmt = (
        select(SegmentMember.customer_id, Customer.external_id, SegmentMember.entered_at)
        .join(
            Customer,
            and_(
                Customer.tenant_id == SegmentMember.tenant_id,
                Customer.id == SegmentMember.customer_id,
            ),
        )
        .where(
            SegmentMember.tenant_id == tenant_id,
            SegmentMember.segment_id == segment_id,
            SegmentMember.left_at.is_(None),
        )
    )
    if after:
        stmt = stmt.where(SegmentMember.customer_id > after)
    return (await session.execute(stmt.order_by(SegmentMember.customer_id).limit(limit))).all()


async def growth(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, since: datetime
) -> tuple[int, int, int]:
    """(size at `since`, entered since, left since) from the membership history."""
    row = (
        await session.execute(
            text(
                """
        SELECT count(*) FILTER (WHERE entered_at <= :since
                                  AND (left_at IS NULL OR left_at > :since)) AS then,
               count(*) FILTER (WHERE entered_at > :since) AS entered,
               count(*) FILTER (WHERE left_at > :since) AS left
        FROM segment_members WHERE tenant_id = :t AND segment_id = :s
        """
            ),
            {"t": tenant_id, "s": segment_id, "since": since},
        )
    ).one()
    return int(row.then), int(row.entered), int(row.left)


async def size_history(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, days: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            """
        SELECT d::date AS day,
               (SELECT count(*) FROM segment_members m
                WHERE m.tenant_id = :t AND m.segment_id = :s
                  AND m.entered_at <= d + interval '1 day'
                  AND (m.left_at IS NULL OR m.left_at > d + interval '1 day')) AS size
        FROM generate_series(current_date - (:days - 1), current_date, interval '1 day') AS d
        ORDER BY d
        """
        ),
        {"t": tenant_id, "s": segment_id, "days": days},
    )
    return [{"date": r.day.isoformat(), "size": int(r.size)} for r in rows]


_FIRST_MEMBERS = text(
    """
    INSERT INTO segment_members (tenant_id, segment_id, customer_id, entered_at)
    SELECT :t, :s, x.id, :now FROM unnest(CAST(:ids AS uuid[])) AS x(id)
    ORDER BY x.id  -- in index order: each index page and key check is visited once
    """
)


async def add_first_members(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    segment_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    now: datetime,
) -> int:
    """The members of a segment made just now (it has none yet): one INSERT, no staging and
    no comparison with open memberships. `ids` must be distinct. Returns the size."""
    if len(ids):
        async with key_checks_cached(session):
            await session.execute(
                _FIRST_MEMBERS, {"t": tenant_id, "s": segment_id, "now": now, "ids": list(ids)}
            )
    return len(ids)


def ids_select(ids: list[Any]) -> Select[Any]:
    """A select of given customer ids (as one array parameter, however many there are)."""
    return select(func.unnest(bindparam("member_ids", ids, type_=ARRAY(Uuid))).label("id"))
