"""RFM scores and segments, lifecycle stages and core-customer flags for one tenant's customers.

Plain functions over numpy arrays (one entry per customer), no I/O. "Orders" here means
purchase days where the caller can count them (several orders on one day are one visit),
which is what the lifecycle rhythm needs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
ObjectArray = NDArray[np.object_]

NO_SCORE = 0  # the R, F and M score of a customer with no order

# The widely used 11-segment RFM map: R score against the mean of the F and M scores
# (e.g. Putler's "RFM analysis" segment table, reproduced in many store-analytics guides).
# It is usually published as overlapping score ranges read top to bottom ("Champions: R 4-5,
# FM 4-5; Loyal Customers: R 2-5, FM 3-5; ..."), in which some segments can never be reached;
# here it is written out as an explicit grid that keeps each segment where the ranges put it.
# Rows: R = 5 (bought most recently) down to 1; columns: FM = 1 .. 5, FM = floor((F + M) / 2).
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    #   FM=1               FM=2                  FM=3                  FM=4                 FM=5
    5: ("New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    3: ("About To Sleep", "About To Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"),
    1: ("Lost", "Hibernating", "At Risk", "Cannot Lose Them", "Cannot Lose Them"),
}

SEGMENTS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalist",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Cannot Lose Them",
    "Hibernating",
    "Lost",
)

STAGES = ("prospect", "new", "active", "at_risk", "churned", "reactivated")

TENURE_TOP_SHARE = 0.10


def _floats(values: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64).ravel()


def _quintile(values: NDArray[np.float64]) -> IntArray:
    """0..4 from the percent rank (rank - 1) / (n - 1), ties sharing their lowest rank, so a
    tie group always gets the lowest quintile any of its members reaches."""
    n = values.size
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    below = np.searchsorted(np.sort(values), values, side="left").astype(np.int64)
    return np.minimum((5 * below) // (n - 1), 4)


def rfm_scores(
    recency_days: ArrayLike, frequency: ArrayLike, monetary: ArrayLike
) -> tuple[IntArray, IntArray, IntArray]:
    """R, F and M scores 1-5: quintiles within the customers given (one tenant).

    Customers without an order (frequency <= 0, or no recency) get NO_SCORE (0) for all three
    and take no part in the ranking. Scores come from the percent rank, with ties sharing
    their lowest rank, so they are deterministic and every tie gets one score: for R, ranked
    from the most recent buyer, R = 5 - quintile (the most recent buyers always get 5); for F
    and M, ranked from the smallest, score = 1 + quintile (one-order customers always get
    F = 1). With one buyer, or when everyone has the same value, that is R = 5, F = M = 1.
    Missing or negative spend (refunds) is ranked as it is, missing as 0.
    """
    rec, freq, mon = _floats(recency_days), _floats(frequency), _floats(monetary)
    if not rec.shape == freq.shape == mon.shape:
        raise ValueError("recency_days, frequency and monetary must have the same length")
    buyers = np.isfinite(freq) & (freq > 0) & np.isfinite(rec) & (rec >= 0)
    mon = np.where(np.isfinite(mon), mon, 0.0)
    r = np.full(rec.shape, NO_SCORE, dtype=np.int64)
    f = r.copy()
    m = r.copy()
    r[buyers] = 5 - _quintile(rec[buyers])
    f[buyers] = 1 + _quintile(freq[buyers])
    m[buyers] = 1 + _quintile(mon[buyers])
    return r, f, m


def rfm_segment(r: ArrayLike, f: ArrayLike, m: ArrayLike) -> ObjectArray:
    """Segment names from the scores through SEGMENT_GRID; None for unscored customers."""
    ra, fa, ma = (np.asarray(v, dtype=np.int64).ravel() for v in (r, f, m))
    if not ra.shape == fa.shape == ma.shape:
        raise ValueError("r, f and m must have the same length")
    scored = (ra >= 1) & (ra <= 5) & (fa >= 1) & (fa <= 5) & (ma >= 1) & (ma <= 5)
    grid = np.array([SEGMENT_GRID[score] for score in (1, 2, 3, 4, 5)], dtype=object)
    out = np.full(ra.shape, None, dtype=object)
    fm = (fa + ma) // 2
    out[scored] = grid[ra[scored] - 1, fm[scored] - 1]
    return out


def typical_gap(
    order_count: ArrayLike,
    days_since_first: ArrayLike,
    days_since_last: ArrayLike,
    *,
    default_gap_days: float = 90.0,
) -> float:
    """The tenant's typical days between purchases: the median of its repeat buyers' own mean
    gaps; `default_gap_days` when nobody has bought on two different days."""
    n, first, last = _floats(order_count), _floats(days_since_first), _floats(days_since_last)
    span = first - last
    repeat = np.isfinite(span) & (n >= 2) & (span > 0)
    if not repeat.any():
        return float(default_gap_days)
    return float(np.median(span[repeat] / (n[repeat] - 1)))


def lifecycle_stage(
    order_count: ArrayLike,
    days_since_first: ArrayLike,
    days_since_last: ArrayLike,
    last_gap_days: ArrayLike,
    *,
    tenant_gap_days: float | None = None,
    at_risk_factor: float = 1.5,
    churn_factor: float = 3.0,
    default_gap_days: float = 90.0,
    min_gap_days: float = 1.0,
) -> ObjectArray:
    """Lifecycle stage per customer, judged against the customer's own purchase rhythm.

    Inputs per customer: `order_count` (purchase days), days since the first and the last
    purchase, and `last_gap_days` (days between the last two purchase days; ignored with
    fewer than two).

    - rhythm: the customer's mean gap between purchases, with the tenant's typical gap
      (`tenant_gap_days`, default `typical_gap(...)`) counted as one extra gap, so two orders
      a day apart do not start a three-day churn clock; one-purchase customers get the
      tenant's typical gap. Never below `min_gap_days`.
    - prospect: no purchase yet.
    - churned: days since the last purchase > churn_factor x rhythm (default 3x).
    - at_risk: days since the last purchase > at_risk_factor x rhythm (default 1.5x).
    - new: a single purchase day (or several purchases all on one day), not yet overdue
      (within 1.5x the typical gap).
    - reactivated: the last purchase ended a gap longer than churn_factor x the rhythm the
      customer had before it (i.e. they had churned and came back), and not overdue again.
    - active: everyone else.
    """
    n, first = _floats(order_count), _floats(days_since_first)
    last, last_gap = _floats(days_since_last), _floats(last_gap_days)
    if not n.shape == first.shape == last.shape == last_gap.shape:
        raise ValueError("all inputs must have the same length")
    buyer = np.isfinite(n) & (n >= 1) & np.isfinite(last) & (last >= 0)
    n = np.where(buyer, n, 0.0)
    last = np.where(buyer, last, 0.0)
    first = np.where(buyer & np.isfinite(first), np.maximum(first, last), last)
    span = first - last
    if tenant_gap_days is None:
        tenant_gap_days = typical_gap(n, first, last, default_gap_days=default_gap_days)
    g = max(float(tenant_gap_days), min_gap_days)

    repeat = buyer & (n >= 2) & (span > 0)
    rhythm = np.where(repeat, (span + g) / np.maximum(n, 1.0), g)
    rhythm = np.maximum(rhythm, min_gap_days)

    gap = np.where(repeat & np.isfinite(last_gap), np.clip(last_gap, 0.0, span), 0.0)
    before = span - gap  # days from the first purchase to the one before the last
    earlier = repeat & (n >= 3) & (before > 0)
    prior = np.where(earlier, (before + g) / np.maximum(n - 1, 1.0), g)
    prior = np.maximum(prior, min_gap_days)

    stage = np.full(n.shape, "active", dtype=object)
    stage[repeat & (gap > churn_factor * prior)] = "reactivated"
    stage[buyer & ~repeat] = "new"
    stage[buyer & (last > at_risk_factor * rhythm)] = "at_risk"
    stage[buyer & (last > churn_factor * rhythm)] = "churned"
    stage[~buyer] = "prospect"
    return stage


def core_flags(
    tenure_days: ArrayLike,
    referral_count: ArrayLike,
    total_spent: ArrayLike,
    order_count: ArrayLike,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Core customers: (longest tenure, referrer, above-average spender).

    - longest tenure: buyers in the top TENURE_TOP_SHARE (10%, at least one customer) by days
      since their first purchase, and longer than the median buyer, so when everyone started
      on the same day nobody stands out;
    - referrer: referred at least one customer (buyer or not);
    - above-average spender: buyers whose total spend exceeds the mean over buyers.
    """
    tenure, refs = _floats(tenure_days), _floats(referral_count)
    spent, n = _floats(total_spent), _floats(order_count)
    if not tenure.shape == refs.shape == spent.shape == n.shape:
        raise ValueError("all inputs must have the same length")
    buyer = np.isfinite(n) & (n > 0)

    longest = np.zeros(n.shape, dtype=bool)
    known = buyer & np.isfinite(tenure) & (tenure >= 0)
    if known.any():
        t = tenure[known]
        k = max(1, int(np.ceil(TENURE_TOP_SHARE * t.size)))
        cut = np.sort(t)[-k]
        longest[known] = (t >= cut) & (t > np.median(t))

    referrer = np.isfinite(refs) & (refs >= 1)

    above = np.zeros(n.shape, dtype=bool)
    spend_known = buyer & np.isfinite(spent)
    if spend_known.any():
        above[spend_known] = spent[spend_known] > spent[spend_known].mean()
    return longest, referrer, above
