"""All SQL for funnels and paths: definitions and runs, and the funnel's events handed over
compactly.

The events query reads only the funnel's events (by name and time, through the
(tenant_id, name, occurred_at) index), computes in PostgreSQL which steps each event matches
(a bit mask) and its breakdown code, and returns everything as ONE bytea of fixed-size
binary records (`string_agg` of `*send()` outputs): no text conversion, no per-row Python
objects; numpy reads it with `frombuffer`. Sorting and the funnel walk happen in numpy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.funnels.schemas import FunnelBreakdown, FunnelStep, StepFilter
from shared.models import Funnel, FunnelRun

RECORD = np.dtype(
    [
        ("hi", ">i8"),
        ("lo", ">i8"),
        ("ts", ">i8"),
        ("id", ">i8"),
        ("mask", ">i4"),
        ("code", ">i8"),
        ("sess", ">i8"),
    ]  # fmt: skip
)
_COPY_ROW = np.dtype([("fields", ">i2"), ("length", ">i4"), ("r", RECORD)])
_COPY_HEADER, _COPY_TRAILER = 19, 2  # signature, flags, extension length; the -1 at the end
TOP_CANDIDATES = 50  # values read for a breakdown; the top ones by actors are kept


async def raw(session: AsyncSession) -> asyncpg.Connection:
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


@dataclass
class Sql:
    """Collects bind values while a statement is written."""

    args: list[Any] = field(default_factory=list)

    def bind(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    def filter(self, f: StepFilter) -> str:
        key = self.bind(f.property, "text")
        if f.op == "exists":
            return f"e.properties ? {key}"
        if f.op in ("gt", "gte", "lt", "lte"):
            sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[f.op]
            num = f"(CASE WHEN jsonb_typeof(e.properties -> {key}) = 'number' " \
                  f"THEN (e.properties ->> {key})::numeric END)"  # fmt: skip
            return f"coalesce({num} {sym} {self.bind(str(f.value), 'numeric')}, false)"
        value = f"(e.properties ->> {key})"
        if f.op == "in":
            values = [_as_text(v) for v in f.value]  # type: ignore[union-attr]
            return f"coalesce({value} = ANY({self.bind(values, 'text[]')}), false)"
        if f.op == "starts_with":
            return f"coalesce(starts_with({value}, {self.bind(f.value, 'text')}), false)"
        if f.op == "contains":
            return f"coalesce(strpos({value}, {self.bind(f.value, 'text')}) > 0, false)"
        compare = f"{value} = {self.bind(_as_text(f.value), 'text')}"
        if f.op == "neq":
            return f"NOT coalesce({compare}, false)"
        return f"coalesce({compare}, false)"

    def step(self, s: FunnelStep) -> str:
        parts = [f"e.name = {self.bind(s.event, 'text')}", *(self.filter(f) for f in s.filters)]
        return "(" + " AND ".join(parts) + ")"


def _as_text(v: Any) -> str:
    """A JSON scalar as `->>` shows it (true/false, numbers as written)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_PROFILE_COLUMNS = {
    "country", "region", "city", "gender", "age_band", "income_band", "marital_status",
    "occupation", "industry", "job_level", "education_level", "preferred_channel",
    "order_channel", "event_channel", "preferred_device", "timezone",
}  # fmt: skip


def _value_expr(sql: Sql, b: FunnelBreakdown) -> tuple[str, str]:
    """(the breakdown value as text, the join it needs)."""
    if b.by in ("device", "channel"):
        return f"e.{b.by}", ""
    if b.by == "event_property":
        return f"(e.properties ->> {sql.bind(b.property, 'text')})", ""
    join = "LEFT JOIN customers c ON c.tenant_id = e.tenant_id AND c.id = e.customer_id"
    prop = b.property or ""
    if prop.startswith("traits."):
        return f"(c.traits ->> {sql.bind(prop[7:], 'text')})", join
    assert prop in _PROFILE_COLUMNS
    return f"c.{prop}::text", join


async def event_values(
    session: AsyncSession, tenant_id: uuid.UUID, b: FunnelBreakdown, ids: list[int]
) -> dict[int, str | None]:
    """The breakdown value on the given events (by id: primary-key look-ups)."""
    sql = Sql()
    t = sql.bind(tenant_id, "uuid")
    value, _ = _value_expr(sql, b)
    rows = await (await raw(session)).fetch(
        f"SELECT e.id, {value} AS v FROM events e WHERE e.tenant_id = {t} "
        f"AND e.id = ANY({sql.bind(ids, 'int8[]')})",
        *sql.args,
    )
    return {int(r["id"]): r["v"] for r in rows}


async def top_values(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    b: FunnelBreakdown,
    first: FunnelStep,
    start: datetime,
    end: datetime,
) -> list[str]:
    """The most frequent values on first-step events (or among customers, for a profile
    field): candidates; the job keeps the top ones by actors and folds the rest into other."""
    sql = Sql()
    t = sql.bind(tenant_id, "uuid")
    value, join = _value_expr(sql, b)
    if b.by == "profile":
        src = "FROM customers c WHERE c.tenant_id = " + t
    else:
        src = (
            f"FROM events e WHERE e.tenant_id = {t} AND e.name = {sql.bind(first.event, 'text')} "
            f"AND e.occurred_at >= {sql.bind(start, 'timestamptz')} "
            f"AND e.occurred_at < {sql.bind(end, 'timestamptz')}"
        )
    stmt = (
        f"SELECT v FROM (SELECT {value} AS v, count(*) AS n {src} GROUP BY 1) x "
        f"WHERE v IS NOT NULL ORDER BY n DESC, v LIMIT {TOP_CANDIDATES}"
    )
    rows = await (await raw(session)).fetch(stmt, *sql.args)
    return [r["v"] for r in rows]


async def funnel_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    steps: Sequence[FunnelStep],
    exclusions: Sequence[FunnelStep],
    start: datetime,
    end: datetime,
    *,
    sessions: bool,
    breakdown: FunnelBreakdown | None = None,
    values: Sequence[str] = (),
    segment_ids: Sequence[uuid.UUID] = (),
) -> np.ndarray:
    """The funnel's events in [start, end) as records (RECORD); an anonymous visitor's `hi` is
    0 and `lo` the hash of their id. `code`: for an event value the value's hash (0
    for none); for a profile field the 1-based index in `values`, 0 for another value, -1 for
    none; for segments a bit per segment."""
    sql = Sql()
    t = sql.bind(tenant_id, "uuid")
    names = sorted({s.event for s in [*steps, *exclusions]})
    mask = " + ".join(
        f"(CASE WHEN {sql.step(s)} THEN {1 << k} ELSE 0 END)" for k, s in enumerate(steps)
    )
    if exclusions:
        excl = " OR ".join(sql.step(s) for s in exclusions)
        mask += f" + (CASE WHEN {excl} THEN {1 << 30} ELSE 0 END)"
    code, join = "0", ""
    if breakdown is not None and breakdown.by in ("segment", "persona"):
        segs = sql.bind(list(segment_ids), "uuid[]")
        join = (
            "LEFT JOIN (SELECT customer_id, bit_or(1 << (array_position("
            f"{segs}, segment_id) - 1)) AS bits FROM segment_members WHERE tenant_id = {t} "
            f"AND segment_id = ANY({segs}) AND left_at IS NULL GROUP BY customer_id) m "
            "ON m.customer_id = e.customer_id"
        )
        code = "coalesce(m.bits, 0)"
    elif breakdown is not None and breakdown.by != "profile":
        # The value's 64-bit hash: no dictionary to build first (that would be a second scan);
        # the labels of the few values shown are read back by event id afterwards.
        value, join = _value_expr(sql, breakdown)
        code = f"coalesce(hashtextextended({value}, 0), 0)"
    elif breakdown is not None:
        value, join = _value_expr(sql, breakdown)
        vals = sql.bind(list(values), "text[]")
        none = f"CASE WHEN {value} IS NULL THEN -1 ELSE 0 END"
        code = f"coalesce(array_position({vals}, {value}), {none})"
    zero8 = "'\\x0000000000000000'::bytea"
    sess = "int8send(hashtextextended(session_id, 0))" if sessions else zero8
    stmt = f"""
    WITH f AS (
        SELECT e.customer_id, e.anonymous_id, e.occurred_at, e.id, e.session_id,
               ({mask})::int4 AS mask, ({code})::int8 AS code
        FROM events e {join}
        WHERE e.tenant_id = {t} AND e.name = ANY({sql.bind(names, "text[]")})
          AND e.occurred_at >= {sql.bind(start, "timestamptz")}
          AND e.occurred_at < {sql.bind(end, "timestamptz")}
          AND (e.customer_id IS NOT NULL OR e.anonymous_id IS NOT NULL)
          {"AND e.session_id IS NOT NULL" if sessions else ""}
    )
    SELECT coalesce(uuid_send(customer_id),
                    {zero8} || int8send(hashtextextended(anonymous_id, 0)))
           || timestamptz_send(occurred_at) || int8send(id) || int4send(mask)
           || int8send(code) || {sess}
    FROM f WHERE mask <> 0
    """
    # COPY in binary: one bytea field per row, so every row has the same layout (field count,
    # length, the record) and numpy reads the whole stream in place.
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    conn = await raw(session)
    await conn.copy_from_query(stmt, *sql.args, output=sink, format="binary")
    data = b"".join(chunks)
    body = data[_COPY_HEADER : len(data) - _COPY_TRAILER]
    return np.frombuffer(body, dtype=_COPY_ROW)["r"]


# --- definitions and runs ----------------------------------------------------------------------


async def get(session: AsyncSession, tenant_id: uuid.UUID, funnel_id: uuid.UUID) -> Funnel | None:
    return (
        await session.execute(
            select(Funnel).where(Funnel.tenant_id == tenant_id, Funnel.id == funnel_id)
        )
    ).scalar_one_or_none()


async def list_(
    session: AsyncSession, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> Sequence[Funnel]:
    stmt = select(Funnel).where(Funnel.tenant_id == tenant_id)
    if after:
        stmt = stmt.where(Funnel.id < after)
    return (await session.execute(stmt.order_by(Funnel.id.desc()).limit(limit))).scalars().all()


async def get_run(
    session: AsyncSession, tenant_id: uuid.UUID, funnel_id: uuid.UUID, run_id: uuid.UUID
) -> FunnelRun | None:
    return (
        await session.execute(
            select(FunnelRun).where(
                FunnelRun.tenant_id == tenant_id,
                FunnelRun.funnel_id == funnel_id,
                FunnelRun.id == run_id,
            )
        )
    ).scalar_one_or_none()


async def get_run_by_id(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID
) -> FunnelRun | None:
    return (
        await session.execute(
            select(FunnelRun).where(FunnelRun.tenant_id == tenant_id, FunnelRun.id == run_id)
        )
    ).scalar_one_or_none()


async def dropoff_slice(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, start: int, length: int
) -> bytes:
    """Bytes [start, start+length) of a run's dropoff records (PostgreSQL cuts them out, so a
    page never reads the whole list)."""
    conn = await raw(session)
    row = await conn.fetchrow(
        "SELECT substring(dropoffs FROM $3::int + 1 FOR $4::int) AS part FROM funnel_runs "
        "WHERE tenant_id = $1 AND id = $2",
        tenant_id, run_id, start, length,
    )  # fmt: skip
    return bytes(row["part"] or b"") if row else b""


async def anonymous_of_events(
    session: AsyncSession, tenant_id: uuid.UUID, event_ids: list[int]
) -> dict[int, str | None]:
    """The anonymous id on each given event (primary-key look-ups)."""
    if not event_ids:
        return {}
    rows = await (await raw(session)).fetch(
        "SELECT id, anonymous_id FROM events WHERE tenant_id = $1 AND id = ANY($2::int8[])",
        tenant_id, event_ids,
    )  # fmt: skip
    return {int(r["id"]): r["anonymous_id"] for r in rows}


async def external_ids(
    session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await (await raw(session)).fetch(
        "SELECT id, external_id FROM customers WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id, ids,
    )  # fmt: skip
    return {r["id"]: r["external_id"] for r in rows}


async def journey_events(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime, *, sessions: bool
) -> tuple[list[str], list[str], list[datetime]]:
    """Every event in [start, end), sorted by actor, time and id: the actor's key (customer,
    else anonymous visitor; with the session when counting sessions), the name, the time."""
    actor = "coalesce(customer_id::text, 'a:' || anonymous_id)"
    if sessions:
        actor += " || '/' || session_id"
    rows = await (await raw(session)).fetchrow(
        f"SELECT array_agg(a ORDER BY a, occurred_at, id) AS a, "
        f"array_agg(name ORDER BY a, occurred_at, id) AS n, "
        f"array_agg(occurred_at ORDER BY a, occurred_at, id) AS t FROM ("
        f"SELECT {actor} AS a, name, occurred_at, id FROM events WHERE tenant_id = $1 "
        f"AND occurred_at >= $2 AND occurred_at < $3) x WHERE a IS NOT NULL",
        tenant_id, start, end,
    )  # fmt: skip
    return list(rows["a"] or []), list(rows["n"] or []), list(rows["t"] or [])
