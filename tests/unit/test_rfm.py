"""RFM quintile scores and segments, lifecycle stages from each customer's own rhythm, and the
core-customer flags."""

from __future__ import annotations

import numpy as np
import pytest

from shared.analytics import rfm


def test_scores_are_quintiles_within_the_tenant() -> None:
    days = np.arange(10.0)  # 0 = bought today
    r, f, m = rfm.rfm_scores(days, np.arange(1, 11), np.arange(10.0, 110.0, 10.0))
    assert r.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert f.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert m.tolist() == f.tolist()


def test_each_quintile_holds_a_fifth_of_a_large_tenant() -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    r, f, m = rfm.rfm_scores(rng.uniform(0, 400, n), np.ones(n), rng.lognormal(3, 1, n))
    for scores in (r, m):
        assert np.bincount(scores, minlength=6)[1:].tolist() == [2000] * 5


def test_ties_share_one_score_deterministically() -> None:
    orders = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 5])
    _, f, _ = rfm.rfm_scores(np.zeros(10), orders, np.ones(10))
    # one-order customers always get F = 1, however many of them there are
    assert f.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    shuffled = np.random.default_rng(1).permutation(10)
    _, f_again, _ = rfm.rfm_scores(np.zeros(10), orders[shuffled], np.ones(10))
    assert f_again.tolist() == f[shuffled].tolist()

    # the most recent buyers always get R = 5
    r, _, _ = rfm.rfm_scores([0, 0, 0, 0, 0, 0, 0, 40, 80, 120], np.ones(10), np.ones(10))
    assert r.tolist() == [5] * 7 + [2, 1, 1]


def test_all_equal_values_and_tiny_tenants() -> None:
    r, f, m = rfm.rfm_scores([3, 3, 3], [1, 1, 1], [20.0, 20.0, 20.0])
    assert (r.tolist(), f.tolist(), m.tolist()) == ([5] * 3, [1] * 3, [1] * 3)
    assert rfm.rfm_segment(r, f, m).tolist() == ["New Customers"] * 3

    r, f, m = rfm.rfm_scores([30, 10, 20], [1, 3, 2], [10.0, 30.0, 20.0])
    assert (r.tolist(), f.tolist(), m.tolist()) == ([1, 5, 3], [1, 5, 3], [1, 5, 3])

    r, f, m = rfm.rfm_scores([12], [4], [99.0])
    assert (r.tolist(), f.tolist(), m.tolist()) == ([5], [1], [1])

    r, f, m = rfm.rfm_scores([], [], [])
    assert r.size == f.size == m.size == 0


def test_customers_without_orders_are_unscored_and_do_not_move_the_others() -> None:
    days = np.array([5.0, -1.0, 50.0, np.nan, 20.0])
    orders = np.array([2, 0, 1, 0, 4])
    spent = np.array([50.0, 0.0, 10.0, 0.0, 300.0])
    r, f, m = rfm.rfm_scores(days, orders, spent)
    assert [r[1], f[1], m[1], r[3], f[3], m[3]] == [rfm.NO_SCORE] * 6
    buyers = [0, 2, 4]
    alone = rfm.rfm_scores(days[buyers], orders[buyers], spent[buyers])
    assert r[buyers].tolist() == alone[0].tolist()
    assert f[buyers].tolist() == alone[1].tolist()
    assert m[buyers].tolist() == alone[2].tolist()
    segments = rfm.rfm_segment(r, f, m)
    assert segments[1] is None
    assert segments[3] is None
    assert all(isinstance(s, str) for s in segments[buyers])


def test_refund_only_customers_rank_lowest_on_monetary() -> None:
    _, _, m = rfm.rfm_scores([1, 2, 3], [1, 1, 1], [-30.0, np.nan, 80.0])
    assert m.tolist() == [1, 3, 5]  # missing counts as 0, between the refund and the buyer


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 5), "Champions"),
        ((4, 4, 5), "Champions"),
        ((3, 5, 4), "Loyal Customers"),
        ((5, 2, 3), "Potential Loyalist"),
        ((4, 3, 3), "Potential Loyalist"),
        ((5, 1, 1), "New Customers"),
        ((5, 1, 2), "New Customers"),
        ((4, 1, 1), "Promising"),
        ((3, 3, 3), "Need Attention"),
        ((3, 1, 2), "About To Sleep"),
        ((3, 2, 2), "About To Sleep"),
        ((2, 3, 4), "At Risk"),
        ((1, 3, 3), "At Risk"),
        ((2, 5, 5), "Cannot Lose Them"),
        ((1, 4, 5), "Cannot Lose Them"),
        ((2, 1, 1), "Hibernating"),
        ((1, 2, 2), "Hibernating"),
        ((1, 1, 1), "Lost"),
        ((0, 0, 0), None),
    ],
)
def test_segment_map(scores: tuple[int, int, int], segment: str | None) -> None:
    r, f, m = scores
    assert rfm.rfm_segment([r], [f], [m]).tolist() == [segment]


def test_the_grid_uses_every_segment_and_nothing_else() -> None:
    used = {name for row in rfm.SEGMENT_GRID.values() for name in row}
    assert used == set(rfm.SEGMENTS)
    assert len(rfm.SEGMENTS) == 11
    assert sorted(rfm.SEGMENT_GRID) == [1, 2, 3, 4, 5]


# Hand-made customers, the tenant's typical gap fixed at 30 days:
# (purchase days, days since first, days since last, last gap) -> stage
LIFECYCLE = {
    "no order yet": ((0, -1, -1, 0), "prospect"),
    "first order ten days ago": ((1, 10, 10, 0), "new"),
    "three orders, all on one day": ((3, 12, 12, 0), "new"),
    "one order, two months ago": ((1, 60, 60, 0), "at_risk"),
    "one order, long ago": ((1, 200, 200, 0), "churned"),
    "monthly buyer, on time": ((10, 270, 5, 30), "active"),
    "monthly buyer, 50 days quiet": ((10, 300, 50, 25), "at_risk"),
    "monthly buyer, 150 days quiet": ((10, 400, 150, 30), "churned"),
    "back after ten months away": ((6, 400, 3, 300), "reactivated"),
    "back, then bought again": ((7, 410, 3, 10), "active"),
    "weekly buyer, three weeks quiet": ((20, 140, 21, 7), "at_risk"),
    "yearly buyer, ten months quiet": ((4, 1100, 300, 260), "active"),
}


def test_lifecycle_stages_follow_each_customers_rhythm() -> None:
    names = list(LIFECYCLE)
    columns = np.array([LIFECYCLE[k][0] for k in names], dtype=float).T
    stages = rfm.lifecycle_stage(*columns, tenant_gap_days=30.0)
    assert dict(zip(names, stages.tolist(), strict=True)) == {k: v[1] for k, v in LIFECYCLE.items()}
    assert set(stages.tolist()) == set(rfm.STAGES)


def test_rhythm_is_shrunk_towards_the_tenant_for_few_gaps() -> None:
    # two orders a day apart, a week ago: with one gap of 1 day alone that would be churned
    stage = rfm.lifecycle_stage([2], [8], [7], [1], tenant_gap_days=30.0)
    assert stage.tolist() == ["active"]


def test_tenant_gap_defaults_to_the_median_of_repeat_buyers_gaps() -> None:
    n = np.array([1, 3, 5, 2, 0])
    first = np.array([5, 40, 200, 90, -1])
    last = np.array([5, 0, 0, 30, -1])
    assert rfm.typical_gap(n, first, last) == pytest.approx(50.0)  # gaps 20, 50, 60
    assert rfm.typical_gap([1, 1], [3, 9], [3, 9], default_gap_days=45.0) == 45.0
    stages = rfm.lifecycle_stage(n, first, last, [0, 20, 50, 60, 0])
    assert stages.tolist() == ["new", "active", "active", "active", "prospect"]


def test_lifecycle_handles_everyone_buying_once_on_one_day() -> None:
    stages = rfm.lifecycle_stage([1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0])
    assert stages.tolist() == ["new"] * 3
    assert rfm.lifecycle_stage([], [], [], []).size == 0


def test_core_flags() -> None:
    tenure = np.array([-1, 10, 20, 30, 400, 5, 15, 25, 35, 45, 55])
    referrals = np.array([2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    spent = np.array([0.0, 10, 20, 30, 200, 5, 15, 25, 35, 45, 55])
    orders = np.array([0, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1])
    longest, referrer, above = rfm.core_flags(tenure, referrals, spent, orders)
    assert np.flatnonzero(longest).tolist() == [4]  # top 10% of 10 buyers: one
    assert np.flatnonzero(referrer).tolist() == [0, 2]  # a referrer need not have bought
    assert np.flatnonzero(above).tolist() == [4, 9, 10]  # mean over buyers is 44


def test_core_flags_on_tiny_and_flat_tenants() -> None:
    longest, _, above = rfm.core_flags([10, 20, 30], [0, 0, 0], [5.0, 5.0, 50.0], [1, 1, 2])
    assert longest.tolist() == [False, False, True]
    assert above.tolist() == [False, False, True]
    longest, _, above = rfm.core_flags([0, 0, 0], [0, 0, 0], [9.0, 9.0, 9.0], [1, 1, 1])
    assert not longest.any()
    assert not above.any()
    longest, referrer, above = rfm.core_flags([], [], [], [])
    assert longest.size == referrer.size == above.size == 0
