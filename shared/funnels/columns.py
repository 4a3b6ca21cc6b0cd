"""The worker's columnar copy of a store's events, synced incrementally from PostgreSQL, from
which funnels without property filters are read (no per-run scan of `events`).

Layout: `<cache_dir>/funnel-events/<database>/<tenant_id>/` holds `meta.json` and parts, each
a directory of one .npy file per column (event id, time, customer id or the anonymous
visitor's hash, name / device / channel / session hashes, flags). A run memory-maps the name
column of each part, keeps the funnel's rows and gathers only those from the other columns.

Sync (under a per-tenant file lock, before each run), in ONE statement so that it reads one
snapshot: events with id > `floor`, the events named in `event_changes` (written by triggers
on every UPDATE and DELETE of events: an identified visitor's events moved to the customer,
an erasure) with seq > `change_floor`, those change rows, and the statement's snapshot.
The rows read are appended as a new part; the ids changed or re-read are added to every older
part's dead list (its rows with those ids are skipped), so a deleted event disappears and an
updated one is replaced without rewriting the big part. Parts (and dead rows) are merged into
one when there are more than MAX_PARTS or the dead lists pass 2% of the rows.

Why floors and not "the largest id seen": ids are taken when a row is inserted but become
visible when its transaction commits, so a smaller id may appear after a larger one was read.
Every committed row missing from a snapshot S belongs to a transaction running at S (S's
`xip`, which the sync reads with the rows). Once all of those are seen finished (before a
later sync's read), that later read (everything above the old floor) holds them, so the floors
move up to the largest id / seq S saw (at once when nothing was running at S). Rows read
twice are de-duplicated by id.

Text values are kept as PostgreSQL's 64-bit `hashtextextended(value, 0)`, exactly the codes
the SQL path uses (shared.funnels.repository.funnel_events), so results are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from shared.funnels.repository import raw
from shared.funnels.schemas import FunnelBreakdown, FunnelStep
from shared.settings import get_settings

COLUMNS = ("id", "ts", "hi", "lo", "name", "device", "channel", "sess", "flags")
_WIRE = np.dtype([(c, ">i8") for c in COLUMNS[:-1]] + [("flags", ">i4")])
_COPY_ROW = np.dtype([("fields", ">i2"), ("length", ">i4"), ("r", _WIRE)])
_COPY_HEADER, _COPY_TRAILER = 19, 2
EVENT, HAS_SESSION, HAS_ACTOR, CHANGE, RUNNING = 1, 2, 4, 8, 16
MAX_PARTS = 8  # more than this after a sync: merged into one
DEAD_SHARE = 0.02  # or when the dead lists hold more than this share of the rows

_Z8 = "'\\x0000000000000000'::bytea"
_H = "int8send(coalesce(hashtextextended({}, 0), 0))"
_EVENT_RECORD = (
    "int8send(e.id) || timestamptz_send(e.occurred_at) || "
    f"coalesce(uuid_send(e.customer_id), {_Z8} || {_H.format('e.anonymous_id')}) || "
    f"{_H.format('e.name')} || {_H.format('e.device')} || {_H.format('e.channel')} || "
    f"{_H.format('e.session_id')} || int4send({EVENT} "
    f"| CASE WHEN e.session_id IS NOT NULL THEN {HAS_SESSION} ELSE 0 END "
    "| CASE WHEN e.customer_id IS NOT NULL OR e.anonymous_id IS NOT NULL "
    f"THEN {HAS_ACTOR} ELSE 0 END)"
)
_SYNC = f"""
WITH ch AS (SELECT seq, event_id FROM event_changes WHERE tenant_id = $1 AND seq > $3)
SELECT {_EVENT_RECORD} FROM events e WHERE e.tenant_id = $1 AND e.id > $2
UNION ALL
SELECT {_EVENT_RECORD} FROM events e
WHERE e.tenant_id = $1 AND e.id <= $2 AND e.id IN (SELECT event_id FROM ch)
UNION ALL
SELECT int8send(event_id) || int8send(seq) || {" || ".join([_Z8] * 6)} || int4send({CHANGE})
FROM ch
UNION ALL
SELECT int8send(x::text::int8) || {" || ".join([_Z8] * 7)} || int4send({RUNNING})
FROM pg_snapshot_xip(pg_current_snapshot()) x
"""


@dataclass
class Meta:
    floor: int = 0  # every event with id <= floor is in the parts as of the last sync
    change_floor: int = 0  # every change with seq <= change_floor has been applied
    # A sync whose snapshot had transactions running: (max id, max seq, their xids).
    pending: tuple[int, int, list[int]] | None = None
    parts: list[str] = field(default_factory=list)
    max_id: int = 0
    max_seq: int = 0
    # Per part, the file (in the part's folder) of ids deleted or changed since it was written:
    # its rows with those ids are skipped (a changed event's new row is in a later part).
    dead: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def cache_root() -> Path:
    configured = get_settings().worker.cache_dir
    base = configured if configured is not None else Path(tempfile.gettempdir()) / "portrait"
    return base / "funnel-events"


def eligible(
    steps: Sequence[FunnelStep], exclusions: Sequence[FunnelStep], b: FunnelBreakdown | None
) -> bool:
    """Funnels the copy answers: steps and exclusions without property filters, no breakdown
    or one by device or channel. The others read PostgreSQL."""
    if not get_settings().worker.funnel_cache:
        return False
    if any(s.filters for s in [*steps, *exclusions]):
        return False
    return b is None or b.by in ("device", "channel")


@contextlib.asynccontextmanager
async def _locked(folder: Path) -> AsyncIterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_meta(folder: Path) -> Meta:
    try:
        return Meta(**json.loads((folder / "meta.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return Meta()


def _write_meta(folder: Path, meta: Meta) -> None:
    tmp = folder / f"meta.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(meta.__dict__))
    os.replace(tmp, folder / "meta.json")


def _load(folder: Path, part: str, column: str) -> np.ndarray:
    column_: np.ndarray = np.load(folder / part / f"{column}.npy", mmap_mode="r")
    return column_


def _write_part(folder: Path, columns: dict[str, np.ndarray]) -> str:
    name = uuid.uuid4().hex
    (folder / name).mkdir()
    for c in COLUMNS:
        np.save(folder / name / f"{c}.npy", np.ascontiguousarray(columns[c]))
    return name


def _dead(folder: Path, meta: Meta, part: str) -> np.ndarray:
    if part not in meta.dead:
        return np.zeros(0, dtype=np.int64)
    ids: np.ndarray = np.load(folder / part / meta.dead[part])
    return ids


def _live(folder: Path, meta: Meta, part: str) -> np.ndarray | None:
    """Which rows of the part still hold (None: all)."""
    dead = _dead(folder, meta, part)
    return ~np.isin(_load(folder, part, "id"), dead) if len(dead) else None


def _drop_stale(folder: Path, meta: Meta) -> None:
    keep = {*meta.parts}
    for child in folder.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_dir():
            for f in child.glob("dead-*.npy"):
                if meta.dead.get(child.name) != f.name:
                    f.unlink(missing_ok=True)


async def sync(session: AsyncSession, tenant_id: uuid.UUID, folder: Path) -> dict[str, int]:
    """Bring the copy up to date (the caller holds the lock)."""
    meta = _read_meta(folder)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    conn = await raw(session)
    # Checked BEFORE the read: a transaction found finished here committed before the read's
    # snapshot, so its rows are in what the read returns.
    settled = meta.pending is not None and not await conn.fetchval(
        "SELECT coalesce(bool_or(pg_xact_status(x::text::xid8) = 'in progress'), false) "
        "FROM unnest($1::int8[]) x",
        meta.pending[2],
    )
    await conn.copy_from_query(
        _SYNC, tenant_id, meta.floor, meta.change_floor, output=sink, format="binary"
    )
    data = b"".join(chunks)
    wire = np.frombuffer(data[_COPY_HEADER : len(data) - _COPY_TRAILER], dtype=_COPY_ROW)["r"]
    flags = wire["flags"].astype(np.int32)
    running = [int(x) for x in wire["id"][(flags & RUNNING) != 0]]
    changes = wire[(flags & CHANGE) != 0]
    rows = wire[(flags & EVENT) != 0]
    fresh = {c: rows[c].astype(np.int32 if c == "flags" else np.int64) for c in COLUMNS}
    # Ids to drop from the parts: the changed ones and any re-read (both at or below what
    # the parts already hold; newer ids cannot be there).
    gone = np.union1d(changes["id"].astype(np.int64), fresh["id"][fresh["id"] <= meta.max_id])
    gone = gone[gone <= meta.max_id]
    parts, dead, counts = list(meta.parts), dict(meta.dead), dict(meta.rows)
    if len(gone):  # marked dead in every older part (cheap: no part is read or rewritten)
        for part in parts:
            name = f"dead-{uuid.uuid4().hex}.npy"
            np.save(folder / part / name, np.union1d(_dead(folder, meta, part), gone))
            dead[part] = name
    if len(rows):
        parts.append(_write_part(folder, fresh))
        counts[parts[-1]] = len(rows)
    n_dead = sum(len(_dead(folder, Meta(dead=dead), p)) for p in parts)
    if len(parts) > MAX_PARTS or n_dead > DEAD_SHARE * max(1, sum(counts.values())):
        now = Meta(dead=dead)
        lives = {p: _live(folder, now, p) for p in parts}
        merged = {
            c: np.concatenate(
                [
                    np.asarray(_load(folder, p, c))[lives[p]]
                    if lives[p] is not None
                    else _load(folder, p, c)
                    for p in parts
                ]
            )
            for c in COLUMNS
        }
        parts, dead = [_write_part(folder, merged)], {}
        counts = {parts[0]: len(merged["id"])}
    max_id = max(meta.max_id, int(fresh["id"].max()) if len(rows) else 0)
    max_seq = max(meta.max_seq, int(changes["ts"].max()) if len(changes) else 0)
    floor, change_floor, pending = meta.floor, meta.change_floor, meta.pending
    if settled and pending is not None:
        floor, change_floor, pending = max(floor, pending[0]), max(change_floor, pending[1]), None
    if not running:  # nothing was running: all that this snapshot saw is complete
        floor, change_floor, pending = max_id, max_seq, None
    elif pending is None:
        pending = (max_id, max_seq, running)
    _write_meta(
        folder,
        Meta(floor=floor, change_floor=change_floor, pending=pending, parts=parts,
             max_id=max_id, max_seq=max_seq, dead=dead,
             rows={p: counts[p] for p in parts if p in counts}),
    )  # fmt: skip
    _drop_stale(folder, _read_meta(folder))
    return {"read": len(rows), "changes": len(changes)}


async def _hashes(session: AsyncSession, values: list[str]) -> list[int]:
    rows = await (await raw(session)).fetch(
        "SELECT hashtextextended(v, 0) AS h, o FROM unnest($1::text[]) WITH ORDINALITY x(v, o) "
        "ORDER BY o",
        values,
    )
    return [int(r["h"]) for r in rows]


async def warm(session: AsyncSession, tenant_id: uuid.UUID, database: str) -> dict[str, int]:
    """Build (or bring up to date) a store's copy ahead of any run; what the sync read."""
    folder = cache_root() / database / str(tenant_id)
    async with _locked(folder):
        return await sync(session, tenant_id, folder)


async def funnel_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    steps: Sequence[FunnelStep],
    exclusions: Sequence[FunnelStep],
    start_us: int,
    end_us: int,
    *,
    sessions: bool,
    breakdown: FunnelBreakdown | None,
    database: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The same columns as shared.funnels.repository.funnel_events' records (hi, lo, ts, id,
    mask, code, sess; times in PostgreSQL microseconds, [start_us, end_us)), from the copy
    after syncing it; and what the sync did."""
    folder = cache_root() / database / str(tenant_id)
    names = await _hashes(session, [s.event for s in [*steps, *exclusions]])
    async with _locked(folder):
        synced = await sync(session, tenant_id, folder)
        meta = _read_meta(folder)
        picked = []
        for part in meta.parts:
            name = _load(folder, part, "name")
            sel = np.isin(name, np.array(names, dtype=np.int64))
            if not sel.any():
                continue
            at = np.flatnonzero(sel)
            ts = np.asarray(_load(folder, part, "ts"))[at]
            flags = np.asarray(_load(folder, part, "flags"))[at]
            ok = (ts >= start_us) & (ts < end_us) & ((flags & HAS_ACTOR) != 0)
            if sessions:
                ok &= (flags & HAS_SESSION) != 0
            at, ts = at[ok], ts[ok]
            dead = _dead(folder, meta, part)
            if len(dead):
                live = ~np.isin(np.asarray(_load(folder, part, "id"))[at], dead)
                at, ts = at[live], ts[live]
            cols = {c: np.asarray(_load(folder, part, c))[at] for c in ("id", "hi", "lo", "name")}
            cols["ts"] = ts
            zero = np.zeros(len(at), dtype=np.int64)
            cols["sess"] = np.asarray(_load(folder, part, "sess"))[at] if sessions else zero
            by = breakdown.by if breakdown is not None else None
            cols["code"] = np.asarray(_load(folder, part, by))[at] if by else zero
            picked.append(cols)
    out = {
        c: np.concatenate([p[c] for p in picked]) if picked else np.zeros(0, dtype=np.int64)
        for c in ("hi", "lo", "ts", "id", "code", "sess", "name")
    }
    mask = np.zeros(len(out["id"]), dtype=np.int64)
    for k in range(len(steps)):
        mask[out["name"] == names[k]] |= 1 << k
    for j in range(len(exclusions)):
        mask[out["name"] == names[len(steps) + j]] |= 1 << 30
    out["mask"] = mask
    return out, synced
