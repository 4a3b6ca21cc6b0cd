"""Funnel rules: definitions, runs (a job: load the funnel's events compactly, walk them in
numpy, store the result and who dropped out where), drop-off lists and segments made of
them. The semantics are in shared.funnels.compute."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import Uuid, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import errors
from shared.db.engine import unit_of_work
from shared.errors import Conflict, FieldError, InvalidInput, NotFound
from shared.funnels import columns, compute, repository, results
from shared.funnels.schemas import (
    DropoffRead,
    DropoffsSave,
    FunnelBreakdown,
    FunnelCreate,
    FunnelDefinition,
    FunnelRead,
    FunnelUpdate,
    RunCreate,
    RunRead,
)
from shared.jobs import repository as jobs_repo
from shared.jobs import service as jobs
from shared.jobs.queue import JobQueue
from shared.jobs.runner import JobKind, JobRun
from shared.models import Customer, Funnel, FunnelRun, Job, Persona, Segment
from shared.personas import repository as personas_repo
from shared.segments import repository as segments_repo
from shared.settings import get_settings
from shared.tenants import repository as tenants_repo

RUN = "funnels.run"
DROPOFF = np.dtype([("step", "u1"), ("hi", ">i8"), ("lo", ">i8")])
_MIX = np.uint64(0x9E3779B97F4A7C15)


def parse_id(raw: str | uuid.UUID, what: str = "funnel") -> uuid.UUID:
    return errors.parse_id(raw, what)


def _definition(f: Funnel) -> FunnelDefinition:
    return FunnelDefinition.model_validate(f.definition)


def to_read(f: Funnel) -> FunnelRead:
    d = f.definition
    return FunnelRead(
        id=f.id,
        name=f.name,
        description=f.description,
        steps=d["steps"],
        order=d["order"],
        window_seconds=d["window_seconds"],
        exclusions=d["exclusions"],
        date_range=d["date_range"],
        count=d["count"],
        created_at=f.created_at,
        updated_at=f.updated_at,
    )


def _dump(d: FunnelDefinition) -> dict[str, Any]:
    out = FunnelDefinition.model_validate(d.model_dump()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return out


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str | uuid.UUID) -> Funnel:
    funnel = await repository.get(session, tenant_id, parse_id(raw))
    if funnel is None:
        raise NotFound("No funnel with this id.")
    return funnel


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: FunnelCreate) -> FunnelRead:
    definition = FunnelDefinition.model_validate(data.model_dump(exclude={"name", "description"}))
    funnel = Funnel(
        tenant_id=tenant_id, name=data.name, description=data.description,
        definition=_dump(definition),
    )  # fmt: skip
    session.add(funnel)
    await session.flush()
    await session.refresh(funnel)
    return to_read(funnel)


async def update(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: FunnelUpdate
) -> FunnelRead:
    funnel = await get(session, tenant_id, raw)
    fields = data.model_fields_set
    if "name" in fields and data.name is not None:
        funnel.name = data.name
    if "description" in fields:
        funnel.description = data.description
    changes = {
        k: getattr(data, k)
        for k in fields - {"name", "description"}
        if getattr(data, k) is not None
    }
    if changes:
        merged = {**_definition(funnel).model_dump(), **{k: v for k, v in changes.items()}}
        try:
            definition = FunnelDefinition.model_validate(
                {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in merged.items()}
            )
        except ValidationError as exc:
            raise InvalidInput(
                "The funnel would not be valid.",
                errors=[FieldError(["body", *e["loc"]], e["msg"]) for e in exc.errors()],
            ) from None
        funnel.definition = _dump(definition)
    funnel.updated_at = datetime.now(UTC)
    await session.flush()
    await session.refresh(funnel)
    return to_read(funnel)


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    await session.delete(await get(session, tenant_id, raw))
    await session.flush()


# --- runs ----------------------------------------------------------------------------------------


async def create_run(
    session: AsyncSession, queue: JobQueue, tenant_id: uuid.UUID, raw: str, data: RunCreate
) -> tuple[FunnelRun, Job]:
    funnel = await get(session, tenant_id, raw)
    params = data.model_dump(mode="json", exclude_none=True)
    if data.breakdown is not None and data.breakdown.by == "segment":
        ids = await _segment_ids(session, tenant_id, data.breakdown)
        params["breakdown"]["segment_ids"] = [str(i) for i in ids]
    elif data.breakdown is not None and data.breakdown.by == "persona":
        personas = await _personas(session, tenant_id, data.breakdown)
        params["breakdown"]["persona_ids"] = [str(p.id) for p in personas]
        params["breakdown"]["segment_ids"] = [str(p.segment_id) for p in personas]
    run = FunnelRun(
        tenant_id=tenant_id, funnel_id=funnel.id, definition=funnel.definition, params=params
    )
    session.add(run)
    await session.flush()
    job = await jobs.create(session, queue, tenant_id, RUN, {"run_id": str(run.id)})
    run.job_id = job.id
    await session.flush()
    await session.refresh(run)
    return run, job


async def _segment_ids(
    session: AsyncSession, tenant_id: uuid.UUID, b: FunnelBreakdown
) -> list[uuid.UUID]:
    ids = []
    for n, ref in enumerate(b.segment_ids or []):
        try:
            ids.append(uuid.UUID(ref))
        except ValueError:
            ids.append(uuid.UUID(int=0))
        found = await segments_repo.existing_ids(session, tenant_id, [ids[-1]])
        if ids[-1] not in found:
            msg = f"no segment {ref} in this store"
            raise InvalidInput(
                msg, errors=[FieldError(["body", "breakdown", "segment_ids", n], msg)]
            )
    return ids


async def _personas(
    session: AsyncSession, tenant_id: uuid.UUID, b: FunnelBreakdown
) -> list[Persona]:
    """The personas named, each with a live segment (a persona's people are its segment's)."""
    found = []
    for n, ref in enumerate(b.persona_ids or []):
        try:
            persona = await personas_repo.get(session, tenant_id, uuid.UUID(ref))
        except ValueError:
            persona = None
        alive = persona is not None and bool(
            await segments_repo.existing_ids(session, tenant_id, [persona.segment_id])
        )
        if persona is None or not alive:
            msg = (
                f"no persona {ref} in this store"
                if persona is None
                else f"the segment of persona {ref} was deleted"
            )
            raise InvalidInput(
                msg, errors=[FieldError(["body", "breakdown", "persona_ids", n], msg)]
            )
        found.append(persona)
    return found


async def get_run(
    session: AsyncSession, tenant_id: uuid.UUID, funnel_raw: str, run_raw: str
) -> FunnelRun:
    run = await repository.get_run(
        session, tenant_id, parse_id(funnel_raw), parse_id(run_raw, "run")
    )
    if run is None:
        raise NotFound("No run with this id.")
    return run


async def run_read(session: AsyncSession, run: FunnelRun) -> RunRead:
    status = "succeeded" if run.result is not None else "queued"
    if run.job_id is not None and run.result is None:
        job = await jobs_repo.get(session, run.tenant_id, run.job_id)
        status = job.status if job is not None else status
    return RunRead(
        id=run.id, funnel_id=run.funnel_id, job_id=run.job_id, status=status,
        definition=run.definition, params=run.params, created_at=run.created_at,
        computed_at=run.computed_at, result=run.result,
    )  # fmt: skip


def date_window(d: FunnelDefinition, now: datetime) -> tuple[datetime, datetime]:
    r = d.date_range
    if r.last_days is not None:
        return now - timedelta(days=r.last_days), now
    assert r.from_ is not None
    assert r.to is not None
    return r.from_, r.to


def _step_labels(d: FunnelDefinition) -> list[dict[str, Any]]:
    return [{"event": s.event, "label": s.label or s.event} for s in d.steps]


async def compute_run(
    session: AsyncSession, tenant_id: uuid.UUID, run: FunnelRun, report: Any = None
) -> dict[str, Any]:
    """Load, walk, summarise and store one run (its transaction is the caller's)."""
    d = FunnelDefinition.model_validate(run.definition)
    params = run.params or {}
    breakdown = (
        FunnelBreakdown.model_validate(params["breakdown"]) if params.get("breakdown") else None
    )
    start, end = date_window(d, run.created_at)
    n = len(d.steps)
    values: list[str] = []
    segment_ids = [uuid.UUID(s) for s in (breakdown.segment_ids or [])] if breakdown else []
    if breakdown is not None and breakdown.by == "profile":
        values = await repository.top_values(session, tenant_id, breakdown, d.steps[0], start, end)
    clock = time.perf_counter()
    records: Any
    synced: dict[str, Any] | None = None
    upto = end + timedelta(seconds=d.window_seconds)
    if columns.eligible(d.steps, d.exclusions, breakdown):
        records, synced = await columns.funnel_events(
            session, tenant_id, d.steps, d.exclusions, _pg_us(start), _pg_us(upto),
            sessions=d.count == "sessions", breakdown=breakdown,
            database=await _database(session),
        )  # fmt: skip
    else:
        records = await repository.funnel_events(
            session, tenant_id, d.steps, d.exclusions, start, upto,
            sessions=d.count == "sessions", breakdown=breakdown, values=values,
            segment_ids=segment_ids,
        )  # fmt: skip
    loaded = time.perf_counter()
    if report:
        await report(0.5)
    hi = records["hi"].astype(np.int64)
    lo = records["lo"].astype(np.int64)
    actor = lo
    if d.count == "sessions":
        mixed = lo.view(np.uint64) * _MIX + records["sess"].astype(np.int64).view(np.uint64)
        actor = mixed.view(np.int64)
    ts = records["ts"].astype(np.int64)
    seq = records["id"].astype(np.int64)
    order = compute.sort_order(actor, ts, seq)
    # Only what the walk reads is put in order; the code and id are looked up at the entries.
    none = np.zeros(0, dtype=np.int64)
    ev = compute.Events(
        actor[order], ts[order], none, records["mask"].astype(np.int64)[order], none
    )
    start_us = _pg_us(start)
    end_us = _pg_us(end)
    p = compute.run(ev, n, d.order, d.window_seconds * 1_000_000, start_us, end_us, presorted=True)
    entry_ids = seq[order[p.entry]]
    p.code = records["code"][order[p.entry]].astype(np.int64)
    labels = await _labels(session, tenant_id, breakdown, p, entry_ids, values)
    names = await _segment_names(session, tenant_id, segment_ids)
    if breakdown is not None and breakdown.by == "persona":
        names = [
            persona.name
            if (persona := await personas_repo.get(session, tenant_id, uuid.UUID(ref)))
            else name
            for ref, name in zip(breakdown.persona_ids or [], names, strict=False)
        ]
    groups, described = _groups(p, breakdown, labels, names)
    result = results.summarize(
        p, n, d.order, _step_labels(d), groups=groups, breakdown=described,
        trend=params.get("trend"), alpha=float(params.get("alpha", 0.05)),
    )  # fmt: skip
    result["date_range"] = {"from": start.isoformat(), "to": end.isoformat()}
    result["unit"] = d.count
    # Who dropped out where: (steps reached, who) for each actor who did not convert. A
    # customer is their id; an anonymous visitor (hi 0) the id of their entry event, whose
    # anonymous id a page reads back by primary key.
    left = p.reached < n
    origin = order[p.entry[left]]
    out = np.zeros(len(origin), dtype=DROPOFF)
    out["step"] = p.reached[left]
    out["hi"] = hi[origin]
    out["lo"] = lo[origin]
    entry_id = seq[origin]
    if d.count == "sessions":  # one entry per person and step, however many sessions
        keep = np.lexsort((out["lo"], out["hi"], out["step"]))
        out, entry_id = out[keep], entry_id[keep]
        first = np.r_[True, out[1:] != out[:-1]]
        out, entry_id = out[first], entry_id[first]
    anon = out["hi"] == 0
    out["lo"][anon] = entry_id[anon]
    out = out[np.argsort(out["step"], kind="stable")]
    result["dropoff_lists"] = [
        {"step": k, "count": int((out["step"] == k).sum())} for k in range(1, n)
    ]
    run.result = result
    computed = time.perf_counter()
    run.dropoffs = out.tobytes()
    run.computed_at = datetime.now(UTC)
    await session.flush()
    timings = {"query_s": loaded - clock, "compute_s": computed - loaded,
               "store_s": time.perf_counter() - computed}  # fmt: skip
    return {"run_id": str(run.id), "funnel_id": str(run.funnel_id), "entered": result["entered"],
            "converted": result["converted"], "rows": len(records["ts"]),
            "source": "columns" if synced is not None else "postgresql", "synced": synced,
            "seconds": {k: round(v, 3) for k, v in timings.items()}}  # fmt: skip


async def _database(session: AsyncSession) -> str:
    """The database's name and creation-unique oid: a copy never outlives its database."""
    row = await (await repository.raw(session)).fetchrow(
        "SELECT current_database() AS name, oid FROM pg_database WHERE datname = current_database()"
    )
    assert row is not None
    return f"{row['name']}-{row['oid']}"


def _pg_us(t: datetime) -> int:
    """Microseconds since 2000-01-01 UTC, exactly (a float timestamp can be 1 us off, which
    would move an event at the very edge of the range in or out)."""
    return (t - _PG_EPOCH) // timedelta(microseconds=1)


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def _segment_names(
    session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[str]:
    names = []
    for segment_id in ids:
        s = await segments_repo.get(session, tenant_id, segment_id)
        names.append(s.name if s is not None else str(segment_id))
    return names


async def _labels(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    b: FunnelBreakdown | None,
    p: compute.Progress,
    entry_ids: np.ndarray,
    values: list[str],
) -> dict[int, str]:
    """What each breakdown code shows as. Profile codes index `values`; event values are
    hashes, named by reading one entry event of each of the most common ones."""
    if b is None or b.by in ("segment", "persona"):
        return {}
    if b.by == "profile":
        return {-1: "(none)", **{k + 1: v for k, v in enumerate(values)}}
    codes, first, counts = np.unique(p.code, return_index=True, return_counts=True)
    top = np.argsort(-counts, kind="stable")[: b.top + 1]
    sample = {int(entry_ids[first[i]]): int(codes[i]) for i in top if codes[i] != 0}
    found = await repository.event_values(session, tenant_id, b, list(sample))
    return {0: "(none)", **{code: str(found.get(i)) for i, code in sample.items()}}


def _groups(
    p: compute.Progress, b: FunnelBreakdown | None, labels: dict[int, str], segment_names: list[str]
) -> tuple[list[tuple[str, np.ndarray]] | None, dict[str, Any] | None]:
    if b is None:
        return None, None
    described: dict[str, Any] = {"by": b.by}
    if b.property:
        described["property"] = b.property
    if b.by in ("segment", "persona"):
        described["segment_ids"] = b.segment_ids
        if b.persona_ids:
            described["persona_ids"] = b.persona_ids
        groups = [(name, ((p.code >> i) & 1) == 1) for i, name in enumerate(segment_names)]
        groups.append(("(no segment)", p.code == 0))
        return groups, described
    codes, counts = np.unique(p.code, return_counts=True)
    ranked = sorted(
        (c for c in zip(codes.tolist(), counts.tolist(), strict=True) if c[0] in labels),
        key=lambda c: (-c[1], labels[c[0]]),
    )
    top = [c for c, _ in ranked[: b.top]]
    groups = [(labels[c], p.code == c) for c in top]
    other = ~np.isin(p.code, top)
    if other.any():
        groups.append(("other", other))
    return groups, described


async def run_job(run: JobRun) -> dict[str, Any]:
    found = await repository.get_run_by_id(
        run.session, run.tenant_id, uuid.UUID(run.params["run_id"])
    )
    if found is None:
        return {"skipped": "the run is gone"}
    return await compute_run(run.session, run.tenant_id, found, run.report)


RUN_KIND = JobKind(RUN, run_job, timeout_s=900, max_tries=3)


# --- drop-offs -----------------------------------------------------------------------------------


def _dropoff_step(run: FunnelRun, step: int, loc: list[str | int]) -> tuple[int, int]:
    """(first record, count) of the run's list for `step`."""
    if run.result is None:
        raise Conflict("The run has not finished yet.")
    lists = run.result["dropoff_lists"]
    if not 1 <= step <= len(lists):
        msg = f"step must be between 1 and {len(lists)} (the last step has no drop-offs)"
        raise InvalidInput(msg, errors=[FieldError(loc, msg)])
    before = sum(x["count"] for x in lists[: step - 1])
    return before, lists[step - 1]["count"]


async def dropoffs(
    session: AsyncSession, tenant_id: uuid.UUID, run: FunnelRun, step: int, after: int, limit: int
) -> list[DropoffRead]:
    first, count = _dropoff_step(run, step, ["query", "step"])
    start = first + after
    take = max(0, min(limit, count - after))
    part = await repository.dropoff_slice(
        session, tenant_id, run.id, start * DROPOFF.itemsize, take * DROPOFF.itemsize
    )
    rows = np.frombuffer(part, dtype=DROPOFF)
    return await _describe(session, tenant_id, run, rows)


async def _describe(
    session: AsyncSession, tenant_id: uuid.UUID, run: FunnelRun, rows: np.ndarray
) -> list[DropoffRead]:
    pairs = list(zip(rows["hi"].tolist(), rows["lo"].tolist(), strict=True))
    ids = [_uuid(hi, lo) for hi, lo in pairs]
    ext = await repository.external_ids(session, tenant_id, [i for i in ids if i is not None])
    anon = await repository.anonymous_of_events(
        session, tenant_id, [int(lo) for hi, lo in pairs if hi == 0]
    )
    out = []
    for i, (_, lo) in zip(ids, pairs, strict=True):
        if i is None:
            out.append(DropoffRead(customer_id=None, external_id=None, anonymous_id=anon.get(lo)))
        else:
            out.append(DropoffRead(customer_id=i, external_id=ext.get(i), anonymous_id=None))
    return out


def _uuid(hi: int, lo: int) -> uuid.UUID | None:
    if hi == 0:
        return None
    return uuid.UUID(
        bytes=int(hi).to_bytes(8, "big", signed=True) + int(lo).to_bytes(8, "big", signed=True)
    )


async def save_dropoffs(
    session: AsyncSession, tenant_id: uuid.UUID, run: FunnelRun, data: DropoffsSave
) -> Segment:
    """A static segment of the known customers who reached `step` and went no further
    (anonymous visitors cannot be segment members)."""
    first, count = _dropoff_step(run, data.step, ["body", "step"])
    part = await repository.dropoff_slice(
        session, tenant_id, run.id, first * DROPOFF.itemsize, count * DROPOFF.itemsize
    )
    rows = np.frombuffer(part, dtype=DROPOFF)
    rows = rows[rows["hi"] != 0]
    ids = [_uuid(h, lo) for h, lo in zip(rows["hi"].tolist(), rows["lo"].tolist(), strict=True)]
    segment = Segment(
        tenant_id=tenant_id, name=data.save_as_segment.name,
        description=data.save_as_segment.description, kind="static", condition=None,
        details={"source": {"funnel_id": str(run.funnel_id), "run_id": str(run.id),
                            "dropped_after_step": data.step}},
    )  # fmt: skip
    session.add(segment)
    await session.flush()
    found = select(Customer.id).where(
        Customer.tenant_id == tenant_id,
        Customer.id == any_(bindparam("ids", ids, type_=ARRAY(Uuid))),
    )
    now = datetime.now(UTC)
    size, _, _ = await segments_repo.replace_members(session, tenant_id, segment.id, found, now)
    segment.size, segment.refreshed_at = size, now
    segment.details = {**segment.details, "requested": len(ids), "matched": size}
    await session.flush()
    await session.refresh(segment)
    return segment


async def warm_copies(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """At worker start: build, or bring up to date, the columnar copy of every store that has
    a funnel, so the first run after a (re)start reads a warm copy instead of building it.
    Returns the stores warmed."""
    worker = get_settings().worker
    if not (worker.funnel_cache and worker.warm_funnel_copies):
        return 0
    async with unit_of_work(sessionmaker) as session:
        tenant_ids = await tenants_repo.all_tenant_ids(session)
    warmed = 0
    for tenant_id in tenant_ids:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            found = await session.scalar(
                select(Funnel.id).where(Funnel.tenant_id == tenant_id).limit(1)
            )
            if found is None:
                continue
            await columns.warm(session, tenant_id, await _database(session))
        warmed += 1
    return warmed
