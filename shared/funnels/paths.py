"""Journeys: the most common sequences of events after a start event (or before an end
event), N events deep, shaped for a Sankey diagram (nodes and links), rare branches grouped.

Per actor (customer, anonymous visitor, or session), the journey is anchored at their first
`start_event` in the date range and followed by their next N events (or, for `end_event`,
their first `end_event` in the range and the N events before it). Repeats of one event in a
row count once unless `collapse_repeats` is off. At each depth an event keeps its own node
only if it is among the `max_branches` most common there and reaches `min_share` of all
journeys; the rest share the node `(other)`. A journey shorter than N ends in `(end)`
(`(start)` when looking back).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.funnels import repository
from shared.funnels.schemas import PathsRequest
from shared.jobs.runner import JobKind, JobRun

RUN = "paths.run"
OTHER, END, START = "(other)", "(end)", "(start)"


def journeys(
    actors: Sequence[str], names: Sequence[str], anchor: str, steps: int, *, before: bool,
    collapse: bool, anchor_ok: Sequence[bool],
) -> list[tuple[str, ...]]:  # fmt: skip
    """One journey per actor. Events come sorted by (actor, time, id); `anchor_ok` says
    which events may anchor (inside the date range)."""
    out: list[tuple[str, ...]] = []
    i, n = 0, len(actors)
    while i < n:
        j = i
        while j < n and actors[j] == actors[i]:
            j += 1
        seq = list(names[i:j])
        ok = anchor_ok[i:j]
        at = next((k for k, name in enumerate(seq) if name == anchor and ok[k]), None)
        if at is not None:
            if before:
                out.append(tuple(reversed(_take(list(reversed(seq[: at + 1])), steps, collapse))))
            else:
                out.append(tuple(_take(seq[at:], steps, collapse)))
        i = j
    return out


def _take(seq: list[str], steps: int, collapse: bool) -> list[str]:
    """The anchor and the next `steps` events (repeats collapsed if asked)."""
    taken = [seq[0]]
    for name in seq[1:]:
        if len(taken) > steps:
            break
        if collapse and name == taken[-1]:
            continue
        taken.append(name)
    return taken[: steps + 1]


def sankey(
    paths: list[tuple[str, ...]], steps: int, *, before: bool, max_branches: int,
    min_share: float,
) -> dict[str, Any]:  # fmt: skip
    total = len(paths)
    # Pad so every journey has steps + 1 places: (end) after, (start) before.
    filler = START if before else END
    padded = []
    for p in paths:
        missing = steps + 1 - len(p)
        padded.append((filler,) * missing + p if before else p + (filler,) * missing)
    grouped = []
    kept: list[set[str]] = []
    for d in range(steps + 1):
        counts = Counter(p[d] for p in padded)
        top = [name for name, c in counts.most_common() if name != filler]
        keep = {n for n in top[:max_branches] if counts[n] >= min_share * total}
        keep.add(filler)
        kept.append(keep)
    for p in padded:
        grouped.append(tuple(name if name in kept[d] else OTHER for d, name in enumerate(p)))
    # Once a journey has ended (or not yet started) it stays so: one (end) node per depth.
    offset = -steps if before else 0
    nodes: Counter[tuple[int, str]] = Counter()
    links: Counter[tuple[tuple[int, str], tuple[int, str]]] = Counter()
    for p in grouped:
        for d, name in enumerate(p):
            nodes[(d + offset, name)] += 1
        for d in range(steps):
            links[((d + offset, p[d]), (d + 1 + offset, p[d + 1]))] += 1
    node_list = [
        {"id": f"{d}:{name}", "depth": d, "event": name, "count": c}
        for (d, name), c in sorted(nodes.items(), key=lambda x: (x[0][0], -x[1], x[0][1]))
    ]
    link_list = [
        {"source": f"{a[0]}:{a[1]}", "target": f"{b[0]}:{b[1]}", "value": c}
        for (a, b), c in sorted(links.items(), key=lambda x: (x[0][0][0], -x[1], x[0]))
        if not (a[1] == filler and b[1] == filler)
    ]
    top_paths = Counter(tuple(n for n in p if n != filler) for p in grouped).most_common(20)
    return {
        "journeys": total,
        "nodes": node_list,
        "links": link_list,
        "top_paths": [
            {"events": list(p), "count": c, "share": round(c / total, 6)} for p, c in top_paths
        ],  # fmt: skip
    }


async def compute(
    session: AsyncSession, tenant_id: uuid.UUID, req: PathsRequest, now: datetime
) -> dict[str, Any]:
    r = req.date_range
    if r.last_days is not None:
        from datetime import timedelta

        start, end = now - timedelta(days=r.last_days), now
    else:
        assert r.from_ is not None
        assert r.to is not None
        start, end = r.from_, r.to
    before = req.end_event is not None
    anchor = req.end_event if before else req.start_event
    assert anchor is not None
    actors, names, times = await repository.journey_events(
        session, tenant_id, start, end, sessions=req.count == "sessions"
    )
    anchor_ok = [start <= t < end for t in times]
    paths = journeys(actors, names, anchor, req.steps, before=before,
                     collapse=req.collapse_repeats, anchor_ok=anchor_ok)  # fmt: skip
    out = sankey(paths, req.steps, before=before, max_branches=req.max_branches,
                 min_share=req.min_share)  # fmt: skip
    return {"anchor": {"end_event" if before else "start_event": anchor}, "steps": req.steps,
            "unit": req.count, "date_range": {"from": start.isoformat(), "to": end.isoformat()},
            **out}  # fmt: skip


async def run_job(run: JobRun) -> dict[str, Any]:
    req = PathsRequest.model_validate(run.params["request"])
    created = datetime.fromisoformat(run.params["requested_at"]).astimezone(UTC)
    return await compute(run.session, run.tenant_id, req, created)


RUN_KIND = JobKind(RUN, run_job, timeout_s=900, max_tries=3)
