"""BG/NBD and Gamma-Gamma: the published CDNOW fits and holdout check, agreement with the
papers' closed forms, simulated recovery at 1M customers, and the awkward tenants.

The CDNOW sample (2,357 customers, 1/10 of CDNOW's first-quarter-1997 cohort) is read from
the `lifetimes` package's data files (a dev dependency; the package itself is not imported:
it is unmaintained and its helpers fail under pandas 3). Run with -s to see the tables."""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import ArrayLike
from scipy import special

from shared.analytics import models
from shared.analytics.models import BgNbdParams, GammaGammaParams

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL 2005, weeks
PUBLISHED_BGNBD_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie 2013 ("gamma" = v)

EPOCH = dt.date(1997, 1, 1)
CALIBRATION_END = (dt.date(1997, 9, 30) - EPOCH).days  # end of week 39
HOLDOUT_END = (dt.date(1998, 6, 30) - EPOCH).days  # end of week 78


def _lifetimes_datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "the CDNOW check needs the `lifetimes` package's data files: "
            "pip install lifetimes (a dev dependency of Portrait)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


@dataclass
class Summary:
    purchase_days: np.ndarray
    first: np.ndarray
    last: np.ndarray
    total: np.ndarray
    first_spend: np.ndarray


def summarise(
    customer: np.ndarray, day: np.ndarray, amount: np.ndarray, as_of: int, n: int
) -> Summary:
    """Per customer over the orders up to `as_of`: distinct purchase days, first and last
    purchase day, total spend and the first day's spend (same-day orders merged)."""
    keep = day <= as_of
    c, d, a = customer[keep], day[keep], amount[keep]
    order = np.lexsort((d, c))
    c, d, a = c[order], d[order], a[order]
    new_day = np.r_[True, (c[1:] != c[:-1]) | (d[1:] != d[:-1])]
    group = np.cumsum(new_day) - 1
    day_customer, day_value = c[new_day], d[new_day]
    day_spend = np.bincount(group, weights=a)
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first_spend = np.zeros(n)
    first[day_customer[::-1]] = day_value[::-1]
    first_spend[day_customer[::-1]] = day_spend[::-1]
    last[day_customer] = day_value
    return Summary(
        purchase_days=np.bincount(day_customer, minlength=n),
        first=first,
        last=last,
        total=np.bincount(day_customer, weights=day_spend, minlength=n),
        first_spend=first_spend,
    )


@dataclass
class Cdnow:
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    zbar: np.ndarray
    holdout: np.ndarray  # repeat purchase days in weeks 40-78
    first_day: np.ndarray
    customer: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    reference: np.ndarray  # the summary lifetimes ships: id, x, t_x, T, zbar


@pytest.fixture(scope="module")
def cdnow() -> Cdnow:
    root = _lifetimes_datasets()
    # CDNOW_sample.txt: master id, sample id (1..2357), yyyymmdd, CDs bought, dollars.
    rows = [line.split() for line in (root / "CDNOW_sample.txt").read_text().splitlines()]
    rows = [r for r in rows if r]
    customer = np.array([int(r[1]) - 1 for r in rows])
    day = np.array(
        [(dt.date(int(r[2][:4]), int(r[2][4:6]), int(r[2][6:])) - EPOCH).days for r in rows]
    )
    amount = np.array([float(r[4]) for r in rows])
    n = int(customer.max()) + 1
    assert n == 2357

    cal = summarise(customer, day, amount, CALIBRATION_END, n)
    full = summarise(customer, day, amount, HOLDOUT_END, n)
    x = cal.purchase_days - 1.0
    weeks = 7.0
    reference = np.loadtxt(
        root / "cdnow_customers_summary_with_transactions.csv", delimiter=",", skiprows=1
    )
    return Cdnow(
        x=x,
        t_x=(cal.last - cal.first) / weeks,
        T=(CALIBRATION_END - cal.first) / weeks,
        zbar=np.where(x > 0, (cal.total - cal.first_spend) / np.maximum(x, 1), 0.0),
        holdout=(full.purchase_days - cal.purchase_days).astype(float),
        first_day=cal.first,
        customer=customer,
        day=day,
        amount=amount,
        reference=reference,
    )


@pytest.fixture(scope="module")
def cdnow_fit(cdnow: Cdnow) -> models.BgNbdFit:
    return models.fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)


def _table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}\n{'':12}{'ours':>12}{'published':>12}")  # noqa: T201
    for name, ours, published in rows:
        print(f"{name:12}{ours:12.4f}{published:12.4f}")  # noqa: T201


def test_the_cdnow_sample_is_the_master_files_history_of_2357_customers() -> None:
    root = _lifetimes_datasets()
    master = [line.split() for line in (root / "CDNOW_master.txt").read_text().splitlines()[1:]]
    sample = [line.split() for line in (root / "CDNOW_sample.txt").read_text().splitlines()]
    sampled = {row[0] for row in sample if row}
    assert len({row[0] for row in master if row}) == 23_570
    assert len(sampled) == 2_357
    in_master = sorted(tuple(row[:4]) for row in master if row and row[0] in sampled)
    in_sample = sorted((row[0], *row[2:5]) for row in sample if row)
    assert in_master == in_sample


def test_cdnow_calibration_summary_matches_the_published_one(cdnow: Cdnow) -> None:
    ref = cdnow.reference
    assert np.array_equal(cdnow.x, ref[:, 1])
    # the published file rounds to two decimals
    assert np.abs(cdnow.t_x - ref[:, 2]).max() < 0.0051
    assert np.abs(cdnow.T - ref[:, 3]).max() < 0.0051
    assert np.abs(cdnow.zbar - ref[:, 4]).max() < 0.0051
    assert int((cdnow.x > 0).sum()) == 946


def test_bgnbd_reproduces_the_published_cdnow_parameters(
    cdnow: Cdnow, cdnow_fit: models.BgNbdFit
) -> None:
    fit = cdnow_fit
    ours = {"r": fit.params.r, "alpha": fit.params.alpha, "a": fit.params.a, "b": fit.params.b}
    _table(
        "BG/NBD on CDNOW, 39-week calibration, time in weeks",
        [(k, ours[k], v) for k, v in PUBLISHED_BGNBD.items()]
        + [("log-lik", fit.log_likelihood, PUBLISHED_BGNBD_LL)],
    )
    assert fit.converged
    assert fit.usable
    assert fit.method == "mle"
    assert fit.n == 2357
    assert fit.n_repeat == 946
    for name, published in PUBLISHED_BGNBD.items():
        assert ours[name] == pytest.approx(published, rel=0.005), name
    assert fit.log_likelihood == pytest.approx(PUBLISHED_BGNBD_LL, abs=0.1)


def test_bgnbd_holdout_predictions_track_actual_repeat_purchases(
    cdnow: Cdnow, cdnow_fit: models.BgNbdFit
) -> None:
    params = cdnow_fit.params
    holdout_weeks = 39.0
    expected = models.expected_purchases(params, holdout_weeks, cdnow.x, cdnow.t_x, cdnow.T)
    actual = cdnow.holdout

    # Cumulative repeat purchases over all 78 weeks (the paper's tracking plot): each
    # customer's expected purchases since their first purchase.
    age_end = (HOLDOUT_END - cdnow.first_day) / 7.0
    model_cal = models.expected_purchases_new(params, cdnow.T).sum()
    model_total = models.expected_purchases_new(params, age_end).sum()
    actual_cal, actual_total = cdnow.x.sum(), cdnow.x.sum() + actual.sum()

    groups = [*range(7), 7]
    by_group = []
    for g in groups:
        sel = cdnow.x == g if g < 7 else cdnow.x >= 7
        by_group.append((g, int(sel.sum()), actual[sel].mean(), expected[sel].mean()))

    totals = [
        ("calibration, weeks 1-39", model_cal, actual_cal),
        ("cumulative, weeks 1-78", model_total, actual_total),
        ("holdout (unconditional)", model_total - model_cal, actual.sum()),
        ("holdout (conditional on history)", expected.sum(), actual.sum()),
    ]
    lines = ["", "CDNOW holdout (weeks 40-78), repeat purchase days"]
    lines.append(f"{'':34}{'model':>10}{'actual':>10}")
    lines += [f"{name:34}{model:10.1f}{act:10.0f}" for name, model, act in totals]
    lines.append(f"{'x in calibration':18}{'customers':>10}{'actual':>10}{'model':>10}")
    for g, count, act, exp in by_group:
        lines.append(f"{g if g < 7 else '7+':<18}{count:10d}{act:10.3f}{exp:10.3f}")
    print("\n".join(lines))  # noqa: T201

    # The model fits the calibration period and tracks the cumulative curve to within a few
    # percent at week 78. The holdout period alone comes out about 11% below the actual with
    # these (the published) parameters, most of it from customers with one or two repeat
    # purchases in the calibration period.
    assert model_cal == pytest.approx(actual_cal, rel=0.03)
    assert model_total == pytest.approx(actual_total, rel=0.05)
    assert expected.sum() == pytest.approx(actual.sum(), rel=0.15)
    assert (model_total - model_cal) == pytest.approx(actual.sum(), rel=0.15)
    # Conditional expectations rank customers as their holdout purchases do.
    act_means = np.array([a for *_, a, _ in by_group])
    exp_means = np.array([e for *_, e in by_group])
    assert np.all(np.diff(exp_means) > 0)
    assert np.corrcoef(act_means, exp_means)[0, 1] > 0.98
    assert np.corrcoef(actual, expected)[0, 1] > 0.5


def _closed_form_conditional(
    p: BgNbdParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """FHL 2005's conditional expectation with scipy's 2F1, where that is accurate."""
    t, x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (t, x, t_x, T))
    r, al, a, b = p.r, p.alpha, p.a, p.b
    z = t / (al + T + t)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((al + T) / (al + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    alive = 1 / (1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ((al + T) / (al + t_x)) ** (r + x))
    return np.asarray(head * body * alive)


def test_predictions_agree_with_the_papers_closed_forms(
    cdnow: Cdnow, cdnow_fit: models.BgNbdFit
) -> None:
    params = cdnow_fit.params  # a < 1, where the closed form's 1/(a - 1) changes sign
    ours = models.expected_purchases(params, 39.0, cdnow.x, cdnow.t_x, cdnow.T)
    closed = _closed_form_conditional(params, 39.0, cdnow.x, cdnow.t_x, cdnow.T)
    np.testing.assert_allclose(ours, closed, rtol=1e-8)

    t = np.array([1.0, 13.0, 39.0, 78.0, 520.0])
    zeros = np.zeros_like(t)
    np.testing.assert_allclose(
        models.expected_purchases_new(params, t),
        _closed_form_conditional(params, t, zeros, zeros, zeros),
        rtol=1e-8,
    )

    # a + b = 1: the closed form's 2F1 has c = 0 there (NaN for x = 0), ours is continuous
    x0, t0, T0 = np.array([0.0, 0.0, 2.0]), np.array([0.0, 0.0, 4.0]), np.array([1.0, 6.0, 6.0])
    at_edge = models.expected_purchases(BgNbdParams(0.7, 3.0, 0.5, 0.5), 10.0, x0, t0, T0)
    around = [
        _closed_form_conditional(BgNbdParams(0.7, 3.0, 0.5, 0.5 + h), 10.0, x0, t0, T0)
        for h in (-1e-6, 1e-6)
    ]
    np.testing.assert_allclose(at_edge, (around[0] + around[1]) / 2, rtol=1e-6)

    # Far beyond the customer's observed time (t >> alpha + T): the quadrature switches to
    # panels; a > 1 and a < 1.
    for fast in (BgNbdParams(2.0, 0.3, 1.7, 4.0), BgNbdParams(0.4, 0.05, 0.6, 1.5)):
        x = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
        t_x = np.array([0.0, 0.0, 0.5, 1.0, 2.0])
        T = np.array([0.0, 0.2, 1.0, 2.0, 3.0])
        np.testing.assert_allclose(
            models.expected_purchases(fast, 365.0, x, t_x, T),
            _closed_form_conditional(fast, 365.0, x, t_x, T),
            rtol=1e-7,
        )

    # prob_alive: FHL 2005's expression, directly
    p = params
    x, t_x, T = cdnow.x, cdnow.t_x, cdnow.T
    direct = np.where(
        x > 0,
        1
        / (1 + p.a / (p.b + np.maximum(x, 1) - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x)),
        1.0,
    )
    np.testing.assert_allclose(models.prob_alive(p, x, t_x, T), direct, rtol=1e-12)


def test_heavy_buyers_get_finite_predictions_where_the_closed_form_overflows() -> None:
    params = BgNbdParams(r=0.8, alpha=20.0, a=0.9, b=3.0)
    x = np.array([1000.0, 2000.0])
    t_x, T = np.array([1090.0, 1095.0]), np.array([1095.0, 1095.0])
    got = models.expected_purchases(params, 1095.0, x, t_x, T)
    assert np.all(np.isfinite(got))
    # about their own rate (x per T days) over the same span again, less dropout
    assert np.all((got > 0.5 * x) & (got < 1.1 * x))


def test_gamma_gamma_reproduces_the_published_cdnow_parameters(cdnow: Cdnow) -> None:
    fit = models.fit_gamma_gamma(cdnow.x, cdnow.zbar)
    ours = {"p": fit.params.p, "q": fit.params.q, "v": fit.params.v}
    _table(
        "Gamma-Gamma on CDNOW, 946 repeat buyers' mean repeat spend",
        [(k, ours[k], v) for k, v in PUBLISHED_GG.items()],
    )
    assert fit.converged
    assert fit.usable
    assert fit.n == 946
    for name, published in PUBLISHED_GG.items():
        assert ours[name] == pytest.approx(published, rel=0.01), name
    # the model's mean spend per purchase, p v / (q - 1), sits near the repeat buyers' own
    model_mean = fit.params.p * fit.params.v / (fit.params.q - 1)
    assert model_mean == pytest.approx(cdnow.zbar[cdnow.x > 0].mean(), rel=0.05)


def test_bgnbd_fit_does_not_depend_on_the_time_unit(cdnow: Cdnow) -> None:
    weeks = models.fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)
    days = models.fit_bgnbd(cdnow.x, cdnow.t_x * 7, cdnow.T * 7)
    assert days.params.alpha == pytest.approx(weeks.params.alpha * 7, rel=1e-5)
    for name in ("r", "a", "b"):
        assert getattr(days.params, name) == pytest.approx(getattr(weeks.params, name), rel=1e-5)
    np.testing.assert_allclose(
        models.expected_purchases(days.params, 91.0, cdnow.x, cdnow.t_x * 7, cdnow.T * 7),
        models.expected_purchases(weeks.params, 13.0, cdnow.x, cdnow.t_x, cdnow.T),
        rtol=1e-5,
    )


def test_weights_count_as_repeated_customers(cdnow: Cdnow) -> None:
    rows = np.arange(300)
    weights = (rows % 4 + 1).astype(float)
    weighted = models.fit_bgnbd(
        cdnow.x[rows], cdnow.t_x[rows], cdnow.T[rows], weights=weights
    ).params
    expanded = np.repeat(rows, weights.astype(int))
    plain = models.fit_bgnbd(cdnow.x[expanded], cdnow.t_x[expanded], cdnow.T[expanded]).params
    for name in ("r", "alpha", "a", "b"):
        assert getattr(weighted, name) == pytest.approx(getattr(plain, name), rel=1e-5)


def simulate_bgnbd(
    n: int, params: BgNbdParams, horizon_days: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers acquired uniformly over `horizon_days`, observed in whole days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    T = rng.integers(1, horizon_days + 1, n).astype(float)
    would_buy = rng.poisson(lam * T)  # purchases in (0, T] if the customer never left
    leaves_after = rng.geometric(p)  # leaves right after this repeat purchase
    x = np.minimum(would_buy, leaves_after)
    # the x-th of `would_buy` uniform purchase times in (0, T]
    share = rng.beta(np.maximum(x, 1), np.maximum(would_buy - x + 1, 1))
    t_x = np.where(x > 0, np.round(T * share), 0.0)
    return x.astype(float), t_x, T


def test_a_million_customers_fit_in_seconds_and_recover_the_parameters() -> None:
    truth = BgNbdParams(r=0.5, alpha=60.0, a=0.8, b=3.0)  # alpha in days
    x, t_x, T = simulate_bgnbd(1_000_000, truth, horizon_days=730, seed=7)
    start = time.perf_counter()
    fit = models.fit_bgnbd(x, t_x, T)
    fitted = time.perf_counter() - start
    start = time.perf_counter()
    expected = models.expected_purchases(fit.params, 90.0, x, t_x, T)
    value = models.clv(
        fit.params,
        GammaGammaParams(6.0, 4.0, 15.0),
        x,
        t_x,
        T,
        np.full(x.size, 20.0),
        horizon_periods=365.0,
        discount_rate_per_period=0.10 / 365,
    )
    predicted = time.perf_counter() - start
    print(  # noqa: T201
        f"\n1M customers: fit {fitted:.2f} s, 90-day expectation + 1-year CLV {predicted:.2f} s;"
        f" fitted {fit.params} (truth {truth})"
    )
    assert fit.usable
    assert fit.method == "mle"
    assert fitted < 30.0  # ~3 s on the 2-core dev machine
    assert np.all(np.isfinite(expected))
    assert np.all(np.isfinite(value))
    assert fit.params.r == pytest.approx(truth.r, rel=0.03)
    assert fit.params.alpha == pytest.approx(truth.alpha, rel=0.03)
    # a and b are the least determined pair; their ratio (mean dropout) is tight
    assert fit.params.a == pytest.approx(truth.a, rel=0.08)
    assert fit.params.b == pytest.approx(truth.b, rel=0.08)
    dropout = fit.params.a / (fit.params.a + fit.params.b)
    assert dropout == pytest.approx(truth.a / (truth.a + truth.b), rel=0.03)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(3)
    truth = GammaGammaParams(p=4.0, q=5.0, v=120.0)
    n = 20_000
    x = rng.integers(1, 15, n).astype(float)
    nu = rng.gamma(truth.q, 1 / truth.v, n)
    # the mean of x Gamma(p, nu) spends is Gamma(p x, nu x)
    zbar = rng.gamma(truth.p * x, 1 / (nu * x))
    fit = models.fit_gamma_gamma(x, zbar)
    assert fit.usable
    assert fit.params.p == pytest.approx(truth.p, rel=0.08)
    assert fit.params.q == pytest.approx(truth.q, rel=0.1)
    assert fit.params.v == pytest.approx(truth.v, rel=0.12)


def test_expected_spend_moves_from_the_store_mean_to_the_customers_own() -> None:
    params = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    store_mean = params.p * params.v / (params.q - 1)
    spend = models.expected_spend(params, [0, 1, 10, 1000], [0.0, 100.0, 100.0, 100.0])
    assert spend[0] == pytest.approx(store_mean)
    assert store_mean < spend[1] < spend[2] < spend[3] < 100.0
    assert spend[3] == pytest.approx(100.0, rel=0.01)
    # refunds: a negative mean counts as nothing spent
    refund = models.expected_spend(params, [2], [-40.0])
    assert refund[0] == pytest.approx(params.p * params.v / (2 * params.p + params.q - 1))


def test_clv_is_spend_times_expected_purchases_and_discounting_lowers_it(
    cdnow: Cdnow, cdnow_fit: models.BgNbdFit
) -> None:
    gg = models.fit_gamma_gamma(cdnow.x, cdnow.zbar).params
    x, t_x, T, z = cdnow.x, cdnow.t_x, cdnow.T, cdnow.zbar
    plain = models.clv(cdnow_fit.params, gg, x, t_x, T, z, horizon_periods=52.0)
    direct = models.expected_spend(gg, x, z) * models.expected_purchases(
        cdnow_fit.params, 52.0, x, t_x, T
    )
    np.testing.assert_allclose(plain, direct, rtol=1e-9)
    discounted = models.clv(
        cdnow_fit.params, gg, x, t_x, T, z, horizon_periods=52.0, discount_rate_per_period=0.002
    )
    assert np.all(discounted < plain)
    assert np.all(discounted > 0.85 * plain)
    assert np.all(models.clv(cdnow_fit.params, gg, x, t_x, T, z, horizon_periods=0.0) == 0)


def test_churn_risk_is_high_for_long_gone_one_time_buyers(cdnow_fit: models.BgNbdFit) -> None:
    params = cdnow_fit.params
    # one-time buyers: bought last week, a year ago; a regular buyer who stopped; one who didn't
    x = np.array([0.0, 0.0, 10.0, 10.0])
    t_x = np.array([0.0, 0.0, 10.0, 52.0])
    T = np.array([1.0, 52.0, 52.0, 52.0])
    risk = models.churn_risk(params, x, t_x, T, horizon=13.0)
    assert np.all((risk >= 0) & (risk <= 1))
    assert risk[1] > risk[0]
    assert risk[2] > 0.9 > 0.3 > risk[3]
    alive = models.prob_alive(params, x, t_x, T)
    assert alive[0] == alive[1] == 1.0  # BG/NBD: no dropout before the first repeat purchase
    assert alive[2] < 0.1 < 0.9 < alive[3]


AWKWARD_TENANTS = {
    "three customers": ([0, 2, 5], [0, 30, 100], [10, 60, 200], [0, 40.0, 25.0]),
    "one customer": ([1], [5], [10], [30.0]),
    "everyone bought once": ([0] * 60, [0] * 60, list(range(1, 61)), [0.0] * 60),
    "all orders on one day": ([0] * 5, [0] * 5, [0] * 5, [0.0] * 5),
    "repeat orders all on day one": ([1] * 40, [1] * 40, [1] * 40, [20.0] * 40),
    "zero spend": ([0, 1, 2, 3] * 10, [0, 5, 8, 9] * 10, [10] * 40, [0.0] * 40),
    "refunds only": ([0, 1, 2] * 12, [0, 3, 7] * 12, [9] * 36, [-15.0, -10.0, -5.0] * 12),
    "ten years observed": ([0, 3, 40] * 20, [0, 3000, 3600] * 20, [3650] * 60, [50.0] * 60),
}


@pytest.mark.parametrize("name", AWKWARD_TENANTS)
def test_awkward_tenants_get_finite_answers(name: str) -> None:
    x, t_x, T, spend = (np.asarray(v, dtype=float) for v in AWKWARD_TENANTS[name])
    fit = models.fit_bgnbd(x, t_x, T)
    gg = models.fit_gamma_gamma(x, spend, fallback_mean=42.0)
    params = [fit.params.r, fit.params.alpha, fit.params.a, fit.params.b]
    assert all(np.isfinite(v) and v > 0 for v in params)
    assert np.isfinite(fit.log_likelihood)
    outputs = {
        "prob_alive": models.prob_alive(fit.params, x, t_x, T),
        "expected": models.expected_purchases(fit.params, 90.0, x, t_x, T),
        "churn": models.churn_risk(fit.params, x, t_x, T, horizon=90.0),
        "spend": models.expected_spend(gg.params, x, spend),
        "clv": models.clv(
            fit.params,
            gg.params,
            x,
            t_x,
            T,
            spend,
            horizon_periods=365.0,
            discount_rate_per_period=0.0003,
        ),  # fmt: skip
        "new": models.expected_purchases_new(fit.params, [0.0, 30.0, 365.0]),
    }
    for key, values in outputs.items():
        assert np.all(np.isfinite(values)), key
        assert np.all(values >= 0), key
    assert np.all(outputs["prob_alive"] <= 1)
    assert np.all(outputs["churn"] <= 1)
    if fit.n < models.MIN_CUSTOMERS or fit.n_repeat < models.MIN_REPEAT_BUYERS:
        assert not fit.usable
        assert fit.reason
    if gg.method == "fallback":
        assert not gg.usable
        assert gg.reason


def test_thin_tenants_fall_back_to_the_shrunk_fit() -> None:
    fit = models.fit_bgnbd([0, 2, 5], [0, 30, 100], [10, 60, 200])
    assert fit.method == "map"
    assert not fit.usable
    assert "3 customers" in (fit.reason or "")
    # the store's pooled repeat rate (7 repeat purchases in 270 customer-days) sets the level
    expected = models.expected_purchases(fit.params, 90.0, [0], [0], [10])[0]
    assert 0.5 < expected < 2 * 90 * 7 / 270

    nobody_returns = models.fit_bgnbd([0] * 500, [0] * 500, np.arange(500) % 300 + 1)
    assert not nobody_returns.usable
    assert models.expected_purchases(nobody_returns.params, 90.0, [0], [0], [30])[0] < 0.01

    nothing_observed = models.fit_bgnbd([0, 0], [0, 0], [0, 0])
    assert nothing_observed.method == "prior"
    assert not nothing_observed.usable
    assert models.expected_purchases(nothing_observed.params, 90.0, [0], [0], [0])[0] < 1e-6


def test_gamma_gamma_falls_back_to_shrinking_towards_the_store_mean() -> None:
    fit = models.fit_gamma_gamma([0, 1, 3], [0.0, 30.0, 50.0], fallback_mean=40.0)
    assert fit.method == "fallback"
    assert not fit.usable
    spend = models.expected_spend(fit.params, [0, 1, 3], [0.0, 30.0, 50.0])
    np.testing.assert_allclose(spend, [40.0, (40 + 30) / 2, (40 + 3 * 50) / 4])
    no_spend = models.fit_gamma_gamma([0, 0], [0.0, 0.0])
    assert np.all(models.expected_spend(no_spend.params, [0, 0], [0.0, 0.0]) == 0)


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [([1.0], [5.0], [3.0]), ([np.nan], [0.0], [1.0]), ([-1.0], [0.0], [1.0]), ([1, 2], [1], [2])],
)
def test_malformed_summaries_are_refused(x: list[float], t_x: list[float], T: list[float]) -> None:
    with pytest.raises(ValueError, match="x|t_x|T"):
        models.fit_bgnbd(x, t_x, T)


def test_predictions_refuse_malformed_input(cdnow_fit: models.BgNbdFit) -> None:
    params = cdnow_fit.params
    with pytest.raises(ValueError, match="t_x"):
        models.prob_alive(params, [1], [5], [3])
    with pytest.raises(ValueError, match="horizon"):
        models.expected_purchases(params, float("nan"), [1], [1], [3])
    gg = GammaGammaParams(6.0, 4.0, 15.0)
    with pytest.raises(ValueError, match="horizon_periods"):
        models.clv(params, gg, [1], [1], [3], [10.0], horizon_periods=float("inf"))
