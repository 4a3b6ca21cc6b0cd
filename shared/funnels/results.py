"""From each actor's progress to what a run shows: counts per step, conversion, drop-offs,
timings, a breakdown with significance tests, a trend. Pure functions, no I/O."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm

from shared.funnels import compute
from shared.funnels.compute import Order, Progress

UNIX_DAY_US = 86_400_000_000
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds (timestamptz_send)


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def z_test(x1: int, n1: int, x2: int, n2: int, alpha: float) -> dict[str, Any]:
    """Two-proportion z-test (pooled), two-sided: is x1/n1 different from x2/n2?"""
    if n1 == 0 or n2 == 0:
        return {"z": None, "p_value": None, "significant": False}
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return {"z": None, "p_value": None, "significant": False}
    z = (x1 / n1 - x2 / n2) / se
    p = float(2 * norm.sf(abs(z)))
    return {"z": round(z, 4), "p_value": p, "significant": p < alpha}


def steps_table(
    reached: np.ndarray, p: Progress | None, n: int, order: Order, labels: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    counts = compute.entered(reached, n)
    timing = compute.step_durations(p, n, order) if p is not None else None
    dropoffs = [0] + [counts[k - 1] - counts[k] for k in range(1, n)]
    lost = sum(dropoffs)
    worst = max(range(1, n), key=lambda k: dropoffs[k]) if lost else None
    rows = []
    for k in range(n):
        row = {
            "step": k + 1,
            **labels[k],
            "entered": counts[k],
            "conversion_from_previous": _rate(counts[k], counts[k - 1]) if k else 1.0,
            "conversion_from_start": _rate(counts[k], counts[0]),
            "dropoff": dropoffs[k],
            "dropoff_rate": _rate(dropoffs[k], counts[k - 1]) if k else 0.0,
            "dropoff_share": _rate(dropoffs[k], lost) if k else 0.0,
            "largest_dropoff": k == worst,
        }
        if timing is not None:
            row["time_from_previous"] = timing[k]
        rows.append(row)
    return rows


def summarize(
    p: Progress,
    n: int,
    order: Order,
    labels: list[dict[str, Any]],
    *,
    groups: list[tuple[str, np.ndarray]] | None = None,
    breakdown: dict[str, Any] | None = None,
    trend: str | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    counts = compute.entered(p.reached, n)
    out: dict[str, Any] = {
        "entered": counts[0],
        "converted": counts[-1],
        "conversion": _rate(counts[-1], counts[0]),
        "time_to_convert": compute.time_to_convert(p, n),
        "steps": steps_table(p.reached, p, n, order, labels),
    }
    if groups is not None:
        shown = [_group(p, n, order, labels, g, alpha) for g in groups]
        out["breakdown"] = {**(breakdown or {}), "alpha": alpha, "groups": shown}
    if trend:
        out["trend"] = {"by": trend, "periods": _trend(p, n, trend)}
    return out


def _group(
    p: Progress,
    n: int,
    order: Order,
    labels: list[dict[str, Any]],
    group: tuple[str, np.ndarray],
    alpha: float,
) -> dict[str, Any]:
    value, members = group
    mine = compute.entered(p.reached[members], n)
    rest = compute.entered(p.reached[~members], n)
    steps = steps_table(p.reached[members], None, n, order, labels)
    for k in range(1, n):
        steps[k]["vs_rest"] = {
            "rest_conversion_from_previous": _rate(rest[k], rest[k - 1]),
            **z_test(mine[k], mine[k - 1], rest[k], rest[k - 1], alpha),
        }
    return {
        "value": value,
        "entered": mine[0],
        "converted": mine[-1],
        "conversion": _rate(mine[-1], mine[0]),
        "vs_rest": {
            "rest_entered": rest[0],
            "rest_conversion": _rate(rest[-1], rest[0]),
            **z_test(mine[-1], mine[0], rest[-1], rest[0], alpha),
        },
        "steps": steps,
    }


def period_starts(unix_us: np.ndarray, by: str) -> np.ndarray:
    """The UTC day, ISO week (Monday) or month each time falls in, as datetime64[D]."""
    days = (unix_us // UNIX_DAY_US).astype("datetime64[D]")
    if by == "day":
        return days
    if by == "week":  # 1970-01-01 was a Thursday
        n = days.astype(np.int64)
        return (n - (n + 3) % 7).astype("datetime64[D]")
    return days.astype("datetime64[M]").astype("datetime64[D]")


def _trend(p: Progress, n: int, by: str) -> list[dict[str, Any]]:
    if len(p.actor) == 0:
        return []
    starts = period_starts(p.start + PG_EPOCH_US, by)
    keys, inverse = np.unique(starts, return_inverse=True)
    out = []
    for i, key in enumerate(keys):
        counts = compute.entered(p.reached[inverse == i], n)
        out.append({"period": str(key), "entered": counts[0], "converted": counts[-1],
                    "conversion": _rate(counts[-1], counts[0])})  # fmt: skip
    return out
