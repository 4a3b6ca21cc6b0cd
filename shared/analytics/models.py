"""Predicted customer value: the BG/NBD model of repeat purchasing and dropout, and the
Gamma-Gamma model of spend per purchase, fitted by maximum likelihood.

Written from the papers: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way:
An Alternative to the Pareto/NBD Model", Marketing Science 24(2); Fader, Hardie & Lee (2005),
"RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", JMR 42(4); Fader & Hardie
(2013), "The Gamma-Gamma Model of Monetary Value".

Inputs per customer, as in the papers:
- `x`: repeat purchases, i.e. distinct purchase *days* after the first one (orders placed on
  the same day are one purchase; counting orders instead distorts the rate);
- `t_x`: time from the first to the last purchase; `T`: time from the first purchase to the
  end of the observation period (`as_of`);
- `monetary_mean`: mean spend per *repeat* purchase day (the first purchase is left out, as in
  the Gamma-Gamma papers).

Time is unit-free here: give every time (t_x, T, horizons) in one unit and read `alpha` and
the predictions in that unit. Portrait passes days; the CDNOW check in the tests uses weeks
to compare with the published figures.

Plain functions over numpy arrays, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special
from scipy.linalg import eigh_tridiagonal

FloatArray = NDArray[np.float64]

# Below these, a tenant's own data cannot pin the four BG/NBD parameters down (or the three
# Gamma-Gamma ones); the fit is then shrunk towards a generic store and flagged not usable.
MIN_CUSTOMERS = 30
MIN_REPEAT_BUYERS = 10
MIN_SPEND_CUSTOMERS = 10

# The shrunk ("map") BG/NBD fit: a log-normal prior on each parameter, centred on the shape
# of the published CDNOW fit (heterogeneity r, dropout a/b) with the purchase rate taken from
# the tenant's own pooled repeat rate, one e-fold wide. It only matters when data are thin.
_PRIOR_R, _PRIOR_A, _PRIOR_B = 0.25, 0.8, 2.5
_PRIOR_SD = 1.0
_LOG_BOUND = math.log(1e6)  # parameters (in rescaled time) are kept in [1e-6, 1e6]
_EDGE = 1e-3  # a log-parameter this close to a bound counts as "ran to the bound"

_GAUSS_NODES = 48  # Gauss-Jacobi nodes over p ~ Beta(a, b + x)
_EASY_K = 4.0  # beyond t / (alpha + T) = 4 the integrand has a kink near p = 0: use panels
_PANELS = 24
_PANEL_U, _PANEL_W = np.polynomial.legendre.leggauss(16)
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """Purchase rate lambda ~ Gamma(shape r, rate alpha); dropout after each repeat purchase
    with probability p ~ Beta(a, b). `alpha` is in the caller's time unit."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class BgNbdFit:
    """A fitted BG/NBD model.

    `method` is "mle" (plain maximum likelihood) or "map" (shrunk towards the generic prior:
    used when the data are too thin, or when the maximum likelihood ran off to a parameter
    bound, e.g. no sign of dropout at all). `usable` is False when the tenant's data cannot
    support the model; the parameters are then still finite and the predictions are sensible
    but lean on the prior: show them as rough. `reason` says why, or is None.
    `log_likelihood` is in the caller's time unit (comparable with published values).
    """

    params: BgNbdParams
    log_likelihood: float
    converged: bool
    usable: bool
    method: str
    reason: str | None
    n: int
    n_repeat: int


@dataclass(frozen=True)
class _BgNbdData:
    ux: FloatArray  # distinct x values
    xi: NDArray[np.intp]  # per row: index into ux
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    wx: FloatArray  # total weight per distinct x


def _as_float(name: str, values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has missing or infinite values")
    return arr


def _check_summary(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    xa, ta, Ta = _as_float("x", x), _as_float("t_x", t_x), _as_float("T", T)
    if not xa.shape == ta.shape == Ta.shape:
        raise ValueError("x, t_x and T must have the same length")
    w = np.ones_like(xa) if weights is None else _as_float("weights", weights)
    if w.shape != xa.shape:
        raise ValueError("weights must have the same length as x")
    if np.any(xa < 0) or np.any(ta < 0) or np.any(Ta < 0) or np.any(w < 0):
        raise ValueError("x, t_x, T and weights must not be negative (pass buyers only)")
    if np.any(ta > Ta * (1 + 1e-9) + 1e-9):
        raise ValueError("t_x must not exceed T")
    ta = np.where(xa > 0, np.minimum(ta, Ta), 0.0)  # t_x means nothing without a repeat
    return xa, ta, Ta, w


def _unique_rows(*cols: FloatArray) -> tuple[list[FloatArray], NDArray[np.intp]]:
    """Distinct rows of the given columns (sorted, first column slowest) and, per input row,
    the index of its distinct row. lexsort is several times faster than np.unique(axis=0)."""
    n = cols[0].size
    if n == 0:
        return [c.copy() for c in cols], np.zeros(0, dtype=np.intp)
    order = np.lexsort(cols[::-1])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in cols:
        s = c[order]
        change[1:] |= s[1:] != s[:-1]
    group = np.cumsum(change) - 1
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = group
    first = order[change]
    return [c[first] for c in cols], inverse


def _compress_bgnbd(x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _BgNbdData:
    (ux_rows, ut, uT), inv = _unique_rows(x, t_x, T)
    uw = np.bincount(inv, weights=w, minlength=ux_rows.size).astype(np.float64)
    keep = uw > 0
    ux_rows, ut, uT, uw = ux_rows[keep], ut[keep], uT[keep], uw[keep]
    ux, xi = np.unique(ux_rows, return_inverse=True)
    wx = np.bincount(xi, weights=uw, minlength=ux.size).astype(np.float64)
    return _BgNbdData(ux=ux, xi=xi, x=ux_rows, t_x=ut, T=uT, w=uw, wx=wx)


def _bgnbd_loglik(theta: FloatArray, d: _BgNbdData) -> tuple[float, FloatArray]:
    """Weighted log-likelihood (FHL 2005, in a log-sum-exp form) and its gradient with
    respect to the log-parameters. Terms that depend on x alone are computed once per
    distinct x and meet the rows through per-x sums, which keeps the work per row small."""
    r, al, a, b = np.exp(theta)
    ux = d.ux
    pos = ux > 0
    xb = np.where(pos, ux, 1.0)  # keeps b + x - 1 positive where it is not used
    bl1 = special.betaln(a, b + ux)
    bl2 = np.where(pos, special.betaln(a + 1, b + xb - 1), -np.inf)
    psi_abx = special.digamma(a + b + ux)

    log_at, log_atx = np.log(al + d.T), np.log(al + d.t_x)
    rx = r + d.x
    u1 = bl1[d.xi] - rx * log_at  # still alive at T
    u2 = bl2[d.xi] - rx * log_atx  # dropped out right after the last purchase
    diff = u2 - u1
    s2 = special.expit(diff)  # share of the likelihood from "dropped out"
    with np.errstate(divide="ignore", invalid="ignore"):
        # log(1 + exp(diff)), from s2 without a second transcendental pass
        softplus = np.where(diff > 0, diff - np.log(s2), -np.log1p(-s2))
    lse = u1 + softplus  # log(exp(u1) + exp(u2))
    ws2 = d.w * s2
    ws1 = d.w - ws2
    Wx = d.wx
    S2 = np.bincount(d.xi, weights=ws2, minlength=ux.size)
    S1 = Wx - S2

    psi_a, psi_b, psi_ab = special.digamma(a), special.digamma(b), special.digamma(a + b)
    psi_r = special.digamma(r)
    W = float(Wx.sum())
    common = -special.gammaln(r) + r * math.log(al) - special.betaln(a, b)
    total = float(Wx @ special.gammaln(r + ux)) + float(d.w @ lse) + W * common

    d_r = (
        float(Wx @ special.digamma(r + ux))
        - float(ws1 @ log_at)
        - float(ws2 @ log_atx)
        + W * (math.log(al) - psi_r)
    )
    d_al = (
        W * r / al
        - float((ws1 * rx) @ (1.0 / (al + d.T)))
        - float((ws2 * rx) @ (1.0 / (al + d.t_x)))
    )
    d_a = float(S1 @ (psi_a - psi_abx) + S2 @ (special.digamma(a + 1) - psi_abx)) - W * (
        psi_a - psi_ab
    )
    psi_bx1 = np.where(pos, special.digamma(b + xb - 1), 0.0)
    d_b = float(S1 @ (special.digamma(b + ux) - psi_abx) + S2 @ (psi_bx1 - psi_abx)) - W * (
        psi_b - psi_ab
    )
    return total, np.array([r * d_r, al * d_al, a * d_a, b * d_b])


def _minimise(
    objective: Callable[[FloatArray], tuple[float, FloatArray]], starts: list[FloatArray]
) -> Any:
    """L-BFGS-B from each start in turn, until one converges inside the bounds; the best."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(starts[0])
    best = None
    for start in starts:
        if best is not None and _converged(best) and not _at_bound(best.x):
            break
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            res = optimize.minimize(
                objective,
                np.clip(start, -_LOG_BOUND, _LOG_BOUND),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
            )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    return best


def _converged(res: Any) -> bool:
    if res is None or not np.isfinite(res.fun) or not np.all(np.isfinite(res.x)):
        return False
    # L-BFGS-B may stop on "abnormal termination in line search" at the optimum, when the
    # objective cannot be lowered within machine precision; a flat gradient is what counts.
    return bool(res.success) or float(np.max(np.abs(res.jac))) < 1e-5


def _at_bound(theta: FloatArray) -> bool:
    return bool(np.any(np.abs(theta) > _LOG_BOUND - _EDGE))


def fit_bgnbd(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
) -> BgNbdFit:
    """Fit BG/NBD by maximum likelihood (L-BFGS-B on the log-parameters, analytic gradient).

    Customers are grouped into distinct (x, t_x, T) rows with counts as weights, so the cost
    follows the number of distinct rows, not of customers. `weights` multiplies customers
    (e.g. to fit on an already-grouped table). Time is rescaled by the mean T inside, so the
    optimiser works on numbers near 1 whatever the unit.

    When the data cannot support the model (fewer than MIN_CUSTOMERS customers or fewer than
    MIN_REPEAT_BUYERS repeat buyers), or the likelihood runs off to a bound, the parameters
    come from the shrunk fit (`method="map"`): the likelihood times a weak log-normal prior
    whose purchase rate is the tenant's pooled repeat rate. With three customers that gives
    roughly "everyone buys at the store's average rate, with typical dropout"; with nobody
    ever repeating it gives rates near zero. If nobody has been observed for any time at all
    (every T = 0) there is nothing to learn: the fit predicts no purchases.
    """
    xa, ta, Ta, w = _check_summary(x, t_x, T, weights)
    n = int(round(float(w.sum())))
    n_repeat = int(round(float(w[xa > 0].sum())))
    total_T = float(w @ Ta)
    if n == 0 or total_T <= 0:
        params = BgNbdParams(_PRIOR_R, _PRIOR_R * 1e12, _PRIOR_A, _PRIOR_B)
        why = "no customers" if n == 0 else "no customer has been observed for any time yet"
        return BgNbdFit(params, 0.0, False, False, "prior", why, n, n_repeat)

    scale = total_T / float(w.sum())
    data = _compress_bgnbd(xa, ta / scale, Ta / scale, w)
    repeats = float(w @ xa)
    rate = (repeats + 1.0) / (total_T / scale)  # pooled repeat rate, with one pseudo-purchase
    prior = np.log([_PRIOR_R, _PRIOR_R / rate, _PRIOR_A, _PRIOR_B])
    W = float(w.sum())

    def nll(theta: FloatArray) -> tuple[float, FloatArray]:
        ll, g = _bgnbd_loglik(theta, data)
        return -ll / W, -g / W

    def to_result(theta: FloatArray) -> tuple[BgNbdParams, float]:
        ll, _ = _bgnbd_loglik(theta, data)
        r, al, a, b = np.exp(theta)
        # Back to the caller's unit: alpha scales with time, the density of t_x by 1/scale.
        return BgNbdParams(float(r), float(al * scale), float(a), float(b)), float(
            ll - repeats * math.log(scale)
        )

    thin = []
    if n < MIN_CUSTOMERS:
        thin.append(f"{n} customers (at least {MIN_CUSTOMERS} needed)")
    if n_repeat < MIN_REPEAT_BUYERS:
        thin.append(f"{n_repeat} repeat buyers (at least {MIN_REPEAT_BUYERS} needed)")

    reason: str | None
    if not thin:
        res = _minimise(nll, [prior, np.zeros(4)])
        if _converged(res) and not _at_bound(res.x):
            params, ll = to_result(res.x)
            return BgNbdFit(params, ll, True, True, "mle", None, n, n_repeat)
        reason = (
            "maximum likelihood ran to a parameter bound; shrunk fit used"
            if _converged(res)
            else "maximum likelihood did not converge; shrunk fit used"
        )
    else:
        reason = "too little data: " + ", ".join(thin)

    def penalised(theta: FloatArray) -> tuple[float, FloatArray]:
        f, g = nll(theta)
        dev = (theta - prior) / _PRIOR_SD**2
        return f + 0.5 * float(dev @ (theta - prior)) / W, g + dev / W

    res = _minimise(penalised, [prior])
    ok = _converged(res)
    theta = res.x if res is not None and np.all(np.isfinite(res.x)) else prior
    params, ll = to_result(theta)
    return BgNbdFit(params, ll, ok, ok and not thin, "map", reason, n, n_repeat)


def prob_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(customer still active at T | x, t_x, T) (FHL 2005, in a logistic form).

    Under BG/NBD a customer can only drop out right after a repeat purchase, so anyone with
    x = 0 is "alive" with probability 1; see `churn_risk` for a measure that is meaningful
    for one-time buyers too."""
    xa, ta, Ta, shape = _prepare(x, t_x, T)
    return _prob_alive(params, xa, ta, Ta).reshape(shape)


def _prob_alive(params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    r, al, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds_dead = (
            math.log(a)
            - np.log(np.maximum(b + x - 1, 1e-300))
            + (r + x) * (np.log(al + T) - np.log(al + t_x))
        )
    return np.where(x > 0, special.expit(-log_odds_dead), 1.0).astype(np.float64)


def _beta_gauss(a: float, c: float, n: int) -> tuple[FloatArray, FloatArray]:
    """Gauss quadrature for the Beta(a, c) distribution on [0, 1] (Golub-Welsch on the Jacobi
    recurrence; weights sum to 1). scipy's roots_jacobi overflows for large c."""
    al, be = c - 1.0, a - 1.0
    k = np.arange(n, dtype=np.float64)
    s = 2 * k + al + be
    with np.errstate(divide="ignore", invalid="ignore"):
        diag = (be**2 - al**2) / (s * (s + 2))
    diag[0] = (be - al) / (al + be + 2)
    m = k[1:]
    s1 = 2 * m + al + be
    with np.errstate(divide="ignore", invalid="ignore"):
        off2 = 4 * m * (m + al) * (m + be) * (m + al + be) / ((s1 - 1) * s1**2 * (s1 + 1))
    # the first one, with the common factor (1 + al + be) cancelled (it is 0 when a + c = 1)
    off2[0] = 4 * (1 + al) * (1 + be) / ((2 + al + be) ** 2 * (3 + al + be))
    off = np.sqrt(off2)
    u, vec = eigh_tridiagonal(diag, off)
    w = vec[0] ** 2
    return np.clip((1 + u) / 2, 1e-300, 1.0), w / w.sum()


def _f(p: FloatArray, k: FloatArray, m: float) -> FloatArray:
    """E[purchases in the next t | alive, p] averaged over lambda's posterior, per k = t/(alpha+T):
    (1 - (1 + p k)^-m) / p."""
    return np.asarray(-np.expm1(-m * np.log1p(p * k)) / p, dtype=np.float64)


def _panels(k: FloatArray, m: float, a: float, c: float) -> FloatArray:
    """The same expectation as the Gauss-Jacobi sum, for large k where (1 + p k)^-m changes
    over p ~ 1/(k m), far below where Beta(a, c) puts its nodes. [0, p_lo] is done exactly
    (f is flat there: m k times the Beta mass), [p_lo, 1/2] in geometric panels of
    Gauss-Legendre, [1/2, 1] by Gauss-Jacobi with the (1 - p)^(c-1) weight."""
    lbeta = float(special.betaln(a, c))
    p_lo = 1e-8 / ((m + 1) * k)
    first = m * k * special.betainc(a, c, p_lo)
    frac = np.arange(_PANELS + 1) / _PANELS
    edges = p_lo[:, None] * (0.5 / p_lo[:, None]) ** frac
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    p = (lo + hi) / 2 + (hi - lo) / 2 * _PANEL_U
    w = (hi - lo) / 2 * _PANEL_W
    dens = np.exp((a - 1) * np.log(p) + (c - 1) * np.log1p(-p) - lbeta)
    mid = np.sum(w * dens * _f(p, k[:, None, None], m), axis=(1, 2))
    s, ws = _beta_gauss(c, 1.0, 24)
    q = 1 - s / 2
    g = q ** (a - 1) * _f(q[None, :], k[:, None], m)
    last = math.exp(-c * math.log(2) - lbeta - math.log(c)) * (g @ ws)
    return np.asarray(first + mid + last, dtype=np.float64)


def _expected_if_alive(params: BgNbdParams, t: float, ux: FloatArray, uT: FloatArray) -> FloatArray:
    """E[purchases in (T, T + t] | alive at T, x] for distinct (x, T) rows sorted by x.

    Given alive at T, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x); given both,
    E[N(t)] = (1 - exp(-lambda p t)) / p. The lambda average is closed-form, the p average is
    done by quadrature. That equals FHL's hypergeometric (2F1) expression for every a,
    including a <= 1 and a near 1 where the closed form cancels, and never overflows for
    heavy buyers (large x), where 2F1 does."""
    out = np.zeros(ux.size)
    if t <= 0 or ux.size == 0:
        return out
    r, al, a, b = params.r, params.alpha, params.a, params.b
    k_all = t / (al + uT)
    bounds = np.flatnonzero(np.r_[True, ux[1:] != ux[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        x = float(ux[lo])
        m, c = r + x, b + x
        k = k_all[lo:hi]
        easy = k <= _EASY_K
        seg = out[lo:hi]
        if easy.any():
            p, w = _beta_gauss(a, c, _GAUSS_NODES)
            idx = np.flatnonzero(easy)
            for s in range(0, idx.size, _CHUNK):
                part = idx[s : s + _CHUNK]
                seg[part] = _f(p[None, :], k[part, None], m) @ w
        hard = np.flatnonzero(~easy)
        for s in range(0, hard.size, _CHUNK // 8):
            part = hard[s : s + _CHUNK // 8]
            seg[part] = _panels(k[part], m, a, c)
    return out


def _horizon(t: float) -> float:
    """A prediction horizon: finite, and nothing happens in a negative one."""
    if not math.isfinite(t):
        raise ValueError("the horizon must be a finite number")
    return max(float(t), 0.0)


def _prepare(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, ...]]:
    xa, ta, Ta = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    shape = xa.shape
    xf, tf, Tf, _ = _check_summary(xa.ravel(), ta.ravel(), Ta.ravel(), None)
    return xf, tf, Tf, shape


def expected_purchases(
    params: BgNbdParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected repeat purchases in the next `t` time units, given each customer's history
    (FHL 2005): P(alive) times the expectation if alive."""
    xf, tf, Tf, shape = _prepare(x, t_x, T)
    (ux, uT), inv = _unique_rows(xf, Tf)
    if_alive = _expected_if_alive(params, _horizon(t), ux, uT)[inv]
    return (_prob_alive(params, xf, tf, Tf) * if_alive).reshape(shape)


def expected_purchases_new(params: BgNbdParams, t: ArrayLike) -> FloatArray:
    """Expected repeat purchases by a newly acquired customer within `t` of the first purchase
    (FHL 2005). Summed over each customer's time since acquisition, this draws the
    cumulative tracking curve of the paper's holdout check."""
    ts = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(ts)):
        raise ValueError("t has missing or infinite values")
    flat = ts.ravel()
    ut, inv = np.unique(flat, return_inverse=True)
    zero = np.zeros(1)
    vals = np.array([_expected_if_alive(params, float(v), zero, zero)[0] for v in ut])
    return vals[inv].reshape(ts.shape) if ut.size else np.zeros(ts.shape)


def churn_risk(
    params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, horizon: float
) -> FloatArray:
    """Probability of no purchase within the next `horizon` time units.

    1 - P(alive) would be the textbook measure, but BG/NBD gives one-time buyers P(alive) = 1
    however long ago they bought, which reads as "no risk" for the biggest group at risk.
    The chance of no purchase in the horizon uses the same model and is meaningful for
    everyone: P(dead) + P(alive) * ((alpha + T) / (alpha + T + horizon))^(r + x)."""
    xf, tf, Tf, shape = _prepare(x, t_x, T)
    alive = _prob_alive(params, xf, tf, Tf)
    quiet = np.exp(-(params.r + xf) * np.log1p(_horizon(horizon) / (params.alpha + Tf)))
    return np.clip(1.0 - alive + alive * quiet, 0.0, 1.0).reshape(shape)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGammaParams:
    """Spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v) across customers (v is the paper's
    gamma). The mean spend of a new customer is p v / (q - 1), finite only for q > 1."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma model. `method` is "mle" or "fallback"; the fallback (too few
    repeat buyers with spend, no convergence, or q <= 1 so the mean spend is infinite) is
    p = 1, q = 2, v = the mean spend: each customer's expected spend is then their own mean
    and the store's mean averaged as if the store's mean were one more purchase,
    (mean + x * own mean) / (x + 1)."""

    params: GammaGammaParams
    log_likelihood: float
    converged: bool
    usable: bool
    method: str
    reason: str | None
    n: int


def _gg_loglik(
    theta: FloatArray,
    ux: FloatArray,
    xi: NDArray[np.intp],
    x: FloatArray,
    z: FloatArray,
    log_z: FloatArray,
    w: FloatArray,
) -> tuple[float, FloatArray]:
    """Weighted log-likelihood of the mean spends (Fader & Hardie 2013) and its
    gradient with respect to the log-parameters."""
    p, q, v = np.exp(theta)
    px = p * ux
    g_term = special.gammaln(px + q) - special.gammaln(px)
    psi_pxq, psi_px = special.digamma(px + q), special.digamma(px)
    log_vxz = np.log(v + x * z)
    pxr = p * x
    ll = (
        g_term[xi]
        - special.gammaln(q)
        + q * math.log(v)
        + (pxr - 1) * log_z
        + pxr * np.log(x)
        - (pxr + q) * log_vxz
    )
    d_p = x * (psi_pxq[xi] - psi_px[xi] + log_z + np.log(x) - log_vxz)
    d_q = psi_pxq[xi] - special.digamma(q) + math.log(v) - log_vxz
    d_v = q / v - (pxr + q) / (v + x * z)
    grad = np.array([p * float(w @ d_p), q * float(w @ d_q), v * float(w @ d_v)])
    return float(w @ ll), grad


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary_mean: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    fallback_mean: float | None = None,
) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on repeat buyers.

    Only customers with frequency (repeat purchases) > 0 and a positive, finite mean spend
    enter, as the model requires; pass everyone, the filtering is done here. Spend is
    rescaled by its mean inside, so the optimiser works on numbers near 1 whatever the
    currency. `fallback_mean` (e.g. the store's mean order value) sets the fallback's mean
    spend when fewer than MIN_SPEND_CUSTOMERS repeat buyers have a spend; otherwise their
    mean is used, and 0 when there is none.
    """
    xa = np.asarray(frequency, dtype=np.float64).ravel()
    za = np.asarray(monetary_mean, dtype=np.float64).ravel()
    if xa.shape != za.shape:
        raise ValueError("frequency and monetary_mean must have the same length")
    w = np.ones_like(xa) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != xa.shape:
        raise ValueError("weights must have the same length as frequency")
    keep = np.isfinite(xa) & np.isfinite(za) & np.isfinite(w) & (xa > 0) & (za > 0) & (w > 0)
    x, z, w = xa[keep], za[keep], w[keep]
    n = int(round(float(w.sum())))
    W = float(w.sum())
    mean = float(w @ z) / W if W > 0 else 0.0

    def fallback(reason: str, usable_mean: float) -> GammaGammaFit:
        m = fallback_mean if fallback_mean is not None and fallback_mean > 0 else usable_mean
        params = GammaGammaParams(1.0, 2.0, max(m, 0.0))
        return GammaGammaFit(params, 0.0, False, False, "fallback", reason, n)

    if n < MIN_SPEND_CUSTOMERS:
        return fallback(
            f"{n} repeat buyers with spend (at least {MIN_SPEND_CUSTOMERS} needed)", mean
        )

    zs = z / mean
    (ux_rows, uz), inv = _unique_rows(x, zs)
    uw = np.bincount(inv, weights=w, minlength=ux_rows.size).astype(np.float64)
    ux, xi = np.unique(ux_rows, return_inverse=True)
    log_z = np.log(uz)

    def nll(theta: FloatArray) -> tuple[float, FloatArray]:
        ll, g = _gg_loglik(theta, ux, xi, ux_rows, uz, log_z, uw)
        return -ll / W, -g / W

    # Start where the population mean p v / (q - 1) equals the (rescaled) mean spend.
    res = _minimise(nll, [np.log([2.0, 3.0, 1.0]), np.log([1.0, 2.0, 1.0])])
    if not _converged(res) or _at_bound(res.x):
        return fallback("maximum likelihood did not settle inside the bounds", mean)
    p, q, v = np.exp(res.x)
    if q <= 1.0 + 1e-6:
        return fallback("q <= 1: mean spend per purchase is not finite", mean)
    ll = -res.fun * W - W * math.log(mean)  # density of the mean spend in the caller's unit
    params = GammaGammaParams(float(p), float(q), float(v * mean))
    return GammaGammaFit(params, float(ll), True, True, "mle", None, n)


def expected_spend(
    params: GammaGammaParams, frequency: ArrayLike, monetary_mean: ArrayLike
) -> FloatArray:
    """Expected spend per future purchase (Fader & Hardie 2013): a weighted average of
    the store's mean p v / (q - 1) and the customer's own mean repeat spend, the weight on the
    own mean growing with the number of repeat purchases. One-time buyers get the store's
    mean. Negative or missing own means (refunds) count as 0."""
    if params.q <= 1:
        raise ValueError("Gamma-Gamma q must exceed 1 for a finite expected spend")
    xa, za = np.broadcast_arrays(
        np.asarray(frequency, dtype=np.float64), np.asarray(monetary_mean, dtype=np.float64)
    )
    x = np.where(np.isfinite(xa), np.maximum(xa, 0.0), 0.0)
    z = np.where(np.isfinite(za), np.maximum(za, 0.0), 0.0)
    z = np.where(x > 0, z, 0.0)
    p, q, v = params.p, params.q, params.v
    return np.asarray(p * (v + x * z) / (p * x + q - 1), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Lifetime value
# --------------------------------------------------------------------------------------------


def clv(
    bgnbd: BgNbdParams,
    gg: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    monetary_mean: ArrayLike,
    *,
    horizon_periods: float,
    discount_rate_per_period: float = 0.0,
    step: float | None = None,
) -> FloatArray:
    """Predicted value over the next `horizon_periods`: expected spend per purchase times the
    expected purchases in each step of length `step` (default: a twelfth of the horizon),
    each step discounted by (1 + discount_rate_per_period) ** -(end of the step).

    Periods are the caller's time unit (Portrait: days, so a 10% yearly rate is about
    0.000261 per day). With no discounting this is spend x purchases over the horizon."""
    if not (math.isfinite(horizon_periods) and horizon_periods >= 0):
        raise ValueError("horizon_periods must be a number >= 0")
    if not (math.isfinite(discount_rate_per_period) and discount_rate_per_period > -1):
        raise ValueError("discount_rate_per_period must be a number > -1")
    xf, tf, Tf, shape = _prepare(x, t_x, T)
    spend = expected_spend(gg, xf, np.broadcast_to(np.asarray(monetary_mean), shape).ravel())
    if horizon_periods == 0:
        return np.zeros(shape)
    size = float(step) if step is not None and math.isfinite(step) and step > 0 else 0.0
    size = size or horizon_periods / 12
    ends = np.append(np.arange(size, horizon_periods, size), horizon_periods)
    (ux, uT), inv = _unique_rows(xf, Tf)
    total = np.zeros(ux.size)
    before = np.zeros(ux.size)
    log_disc = math.log1p(discount_rate_per_period)
    for end in ends:
        upto = _expected_if_alive(bgnbd, float(end), ux, uT)
        total += (upto - before) * math.exp(-log_disc * float(end))
        before = upto
    value = spend * _prob_alive(bgnbd, xf, tf, Tf) * total[inv]
    return value.reshape(shape)
