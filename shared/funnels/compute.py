"""The funnel itself: plain functions over numpy arrays, no I/O (the job loads and stores).

Semantics (the README repeats them; tests/test_funnel_reference.py checks them against a
per-customer walk):

- An *actor* is what is counted: a customer (an anonymous visitor's events count for the
  customer once the visitor is identified, as everywhere in Portrait: ingestion moves them),
  an anonymous visitor not (yet) identified, or, when counting sessions, one session of one
  of those.
- Events are taken in time order; events with the same `occurred_at` are taken in the order
  Portrait stored them (event id). Arrival order plays no other part.
- An *attempt* starts at an event matching the first step (`ordered`, `strict`) or any step
  (`any`) that occurred inside the date range. Each attempt has `window` time from its start.
- `ordered`: from the start, step k+1 is the earliest event matching it after the event
  matched for step k (greedy earliest match; other events may come between).
- `strict`: step k+1 must be the very next *funnel event* (an event matching any step)
  after the one matched for step k; anything else ends the attempt.
- `any`: step k counts once events matching steps 1..k all occur at or after the start and
  within the window, in any order (one event may satisfy several steps).
- A later step must lie within the window: its time minus the start's time <= window.
- Exclusion: an exclusion event strictly between two matched steps (for `any`: between the
  start and the step) ends the attempt before the later of them; the steps before it count.
- An actor's progress is the best over all their attempts (most steps reached; ties go to
  the earliest attempt, whose times and entry event the timings and breakdowns use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Order = Literal["ordered", "strict", "any"]
EXCLUSION_BIT = 1 << 30


@dataclass
class Events:
    """The funnel's events, one entry per event; `mask` has bit k set when the event matches
    step k, and EXCLUSION_BIT when it matches an exclusion."""

    actor: np.ndarray  # int64 key
    ts: np.ndarray  # int64 microseconds
    seq: np.ndarray  # int64 tie-break (event id)
    mask: np.ndarray  # int64
    code: np.ndarray  # int64 breakdown code on the event (or per actor), or empty for none

    def __len__(self) -> int:
        return len(self.actor)

    def sorted(self) -> Events:
        order = sort_order(self.actor, self.ts, self.seq)
        return Events(*(a[order] for a in (self.actor, self.ts, self.seq, self.mask, self.code)))


def sort_order(actor: np.ndarray, ts: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """The order by (actor, ts, seq). Sort by actor once; then, with the actor's rank in the
    high bits and the time in the low bits of one key (when both fit in 64 bits), a stable
    sort of that nearly sorted key (runs of one actor: cheap for timsort) orders each actor's
    events by time; the rare runs of equal (actor, time) are put in seq order. Else a
    three-key lexsort."""
    n = len(actor)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    by_actor = np.argsort(actor)
    a = actor[by_actor]
    rank = np.empty(n, dtype=np.uint64)
    rank[0] = 0
    np.cumsum(a[1:] != a[:-1], out=rank[1:])
    t = ts - ts.min()
    ts_bits = int(t.max()).bit_length()
    if ts_bits + int(rank[-1]).bit_length() > 64:
        return np.lexsort((seq, ts, actor))
    packed = (rank << np.uint64(ts_bits)) | t[by_actor].astype(np.uint64)
    within = np.argsort(packed, kind="stable")
    order = by_actor[within]
    key = packed[within]
    tied = np.flatnonzero(key[1:] == key[:-1])
    if len(tied):
        at = np.unique(np.r_[tied, tied + 1])  # positions inside runs of equal keys
        sub = order[at]
        order[at] = sub[np.lexsort((seq[sub], key[at]))]
    return order


@dataclass
class Progress:
    """One entry per actor who started an attempt (sorted by actor key)."""

    actor: np.ndarray  # int64 key
    reached: np.ndarray  # int64: steps reached, 1..n
    times: np.ndarray  # (actors, steps) int64 microseconds, -1 where not reached
    entry: np.ndarray  # int64 index into the sorted events: the best attempt's start
    start: np.ndarray  # int64 microseconds: that start's time
    code: np.ndarray  # breakdown code at the entry


def run(
    ev: Events,
    n_steps: int,
    order: Order,
    window_us: int,
    start_us: int,
    end_us: int,
    *,
    presorted: bool = False,
) -> Progress:
    """Each actor's best progress. `ev` is sorted by (actor, ts, seq) unless `presorted` is
    False, in which case it is sorted here."""
    if not presorted:
        ev = ev.sorted()
    actor, ts, mask = ev.actor, ev.ts, ev.mask
    excluded = (mask & EXCLUSION_BIT) != 0
    excl_cum = np.cumsum(excluded, dtype=np.int64) if excluded.any() else None
    step_mask = mask & ((1 << n_steps) - 1)
    in_range = (ts >= start_us) & (ts < end_us)
    if order == "any":
        starts = np.flatnonzero((step_mask != 0) & in_range)
    else:
        starts = np.flatnonzero(((step_mask & 1) != 0) & in_range)
    m = len(starts)
    times = np.full((m, n_steps), -1, dtype=np.int64)
    reached = np.zeros(m, dtype=np.int64)
    if m:
        positions = [np.flatnonzero((step_mask >> k) & 1) for k in range(n_steps)]
        if order == "any":
            _any(starts, positions, actor, ts, excl_cum, window_us, times, reached)
        else:
            funnel = np.flatnonzero(step_mask != 0) if order == "strict" else None
            _sequential(
                starts, positions, funnel, step_mask, actor, ts, excl_cum, window_us, times, reached
            )
    return _best(actor, ts, starts, reached, times, ev.code)


def _between_clear(excl_cum: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """No exclusion event strictly between positions a and b (a <= b)."""
    if excl_cum is None:
        return np.ones(len(a), dtype=bool)
    inner = np.where(b > a, excl_cum[np.maximum(b - 1, 0)] - excl_cum[a], 0)
    return np.asarray(inner == 0)


def _sequential(
    starts: np.ndarray,
    positions: list[np.ndarray],
    funnel: np.ndarray | None,
    step_mask: np.ndarray,
    actor: np.ndarray,
    ts: np.ndarray,
    excl_cum: np.ndarray | None,
    window_us: int,
    times: np.ndarray,
    reached: np.ndarray,
) -> None:
    start_actor, start_ts = actor[starts], ts[starts]
    times[:, 0] = start_ts
    reached[:] = 1
    cur = starts.copy()
    alive = np.ones(len(starts), dtype=bool)
    rank = None
    if funnel is not None:
        rank = np.full(len(actor), -1, dtype=np.int64)
        rank[funnel] = np.arange(len(funnel))
    for k in range(1, len(positions)):
        if funnel is not None and rank is not None:
            idx = rank[cur] + 1
            ok = idx < len(funnel)
            nxt = funnel[np.minimum(idx, len(funnel) - 1)] if len(funnel) else cur
            ok &= ((step_mask[nxt] >> k) & 1) != 0
        else:
            pk = positions[k]
            if len(pk) == 0:
                break
            idx = np.searchsorted(pk, cur, side="right")
            ok = idx < len(pk)
            nxt = pk[np.minimum(idx, len(pk) - 1)]
        ok &= alive & (actor[nxt] == start_actor) & (ts[nxt] - start_ts <= window_us)
        ok &= _between_clear(excl_cum, cur, nxt)
        alive = ok
        if not alive.any():
            break
        times[alive, k] = ts[nxt[alive]]
        reached += alive
        cur = np.where(alive, nxt, cur)


def _any(
    starts: np.ndarray,
    positions: list[np.ndarray],
    actor: np.ndarray,
    ts: np.ndarray,
    excl_cum: np.ndarray | None,
    window_us: int,
    times: np.ndarray,
    reached: np.ndarray,
) -> None:
    start_actor, start_ts = actor[starts], ts[starts]
    alive = np.ones(len(starts), dtype=bool)
    for k, pk in enumerate(positions):
        if len(pk) == 0:
            break
        idx = np.searchsorted(pk, starts, side="left")
        ok = idx < len(pk)
        nxt = pk[np.minimum(idx, len(pk) - 1)]
        ok &= alive & (actor[nxt] == start_actor) & (ts[nxt] - start_ts <= window_us)
        ok &= _between_clear(excl_cum, starts, nxt)
        alive = ok
        if not alive.any():
            break
        times[alive, k] = ts[nxt[alive]]
        reached += alive


def _best(
    actor: np.ndarray,
    ts: np.ndarray,
    starts: np.ndarray,
    reached: np.ndarray,
    times: np.ndarray,
    code: np.ndarray,
) -> Progress:
    if len(starts) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Progress(empty, empty, times, empty, empty, empty)
    a = actor[starts]
    first = np.r_[0, np.flatnonzero(a[1:] != a[:-1]) + 1]
    group = np.cumsum(np.r_[0, (a[1:] != a[:-1]).astype(np.int64)])
    best = np.maximum.reduceat(reached, first)
    # The earliest attempt with the best progress: attempts are in time order within an actor.
    candidates = np.where(reached == best[group], np.arange(len(starts)), len(starts))
    pick = np.minimum.reduceat(candidates, first)
    entry = starts[pick]
    keep = best > 0  # `any`: an attempt may start at a later step and reach none
    return Progress(
        a[first][keep],
        best[keep],
        times[pick][keep],
        entry[keep],
        ts[entry][keep],
        code[entry][keep] if len(code) == len(actor) else entry[keep] * 0,
    )


# --- summaries ---------------------------------------------------------------------------------


def entered(reached: np.ndarray, n_steps: int) -> list[int]:
    """How many actors reached each step."""
    counts = np.bincount(reached, minlength=n_steps + 1)
    return [int(x) for x in counts[::-1].cumsum()[::-1][1 : n_steps + 1]]


def step_durations(p: Progress, n_steps: int, order: Order) -> list[dict[str, float | None]]:
    """Median and 90th percentile of the seconds between consecutive steps (for `any`, from
    the start to each step), over the actors who reached the later step."""
    out: list[dict[str, float | None]] = [{"median_s": None, "p90_s": None}]
    for k in range(1, n_steps):
        done = p.reached > k
        if order == "any":
            gaps = p.times[done, k] - p.start[done]
        else:
            gaps = p.times[done, k] - p.times[done, k - 1]
        out.append(_quantiles(gaps))
    return out


def time_to_convert(p: Progress, n_steps: int) -> dict[str, float | None]:
    done = p.reached >= n_steps
    last = p.times[done].max(axis=1) if done.any() else np.zeros(0, dtype=np.int64)
    return _quantiles(last - p.start[done])


def _quantiles(gaps_us: np.ndarray) -> dict[str, float | None]:
    if len(gaps_us) == 0:
        return {"median_s": None, "p90_s": None}
    q = np.percentile(gaps_us / 1e6, [50, 90])
    return {"median_s": round(float(q[0]), 3), "p90_s": round(float(q[1]), 3)}
