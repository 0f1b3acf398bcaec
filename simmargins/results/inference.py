"""Inference routes of a MarginsResult: intervals, their p-values, sup-t and adjustments.

A route gives a two-sided interval at half-tail ``a`` = α/2 for every label (Wald,
``estimate ± z·SE``; or percentile, quantiles of the draws) and the p-value it implies:
twice the largest half-tail at which its interval still contains 0, found by bisection
over the floats (see docs/design.md, "Which p-value each route reports"), so p < 1 − level
exactly when the interval at that level excludes 0, ties and rounding included. Beside
the routes: the Monte-Carlo error of a quantile of the draws; the sup-t (max-|t|)
statistic, its critical value, band and p-values; Bonferroni/Šidák and ``multipletests``
adjustments with their per-comparison level; and the words that say which is in use.

Pure numpy/scipy on arrays: :class:`~simmargins.results.result.MarginsResult` chooses the
route and the arrays, this module computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

# -- routes: an interval as a function of the half-tail a = α/2, and the p-value it implies --
_HALF_BITS = int(np.float64(0.5).view(np.int64))
_ONE_BITS = int(np.float64(1.0).view(np.int64))


def _half_tail(level: float, labels: list[str]) -> np.ndarray:
    return np.full(len(labels), (1.0 - level) / 2.0)


class _Route:
    """A route's two-sided interval at half-tail ``a`` (one value per label)."""

    _p: np.ndarray | None = None
    size: int  # the number of labels
    null: float = 0.0  # the value the p-values test (1 for a ratio of margins)

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def p(self) -> np.ndarray:
        if self._p is None:
            self._p = _route_p(self)
        return self._p


class _WaldRoute(_Route):
    """estimate ± z·SE with z = −Φ⁻¹(a): the delta method, or the draws' ``"normal"`` kind.

    With ``df`` (one per label; ``inf`` for normal theory) the quantile is Student's t,
    z = −t_df⁻¹(a): small-sample (Satterthwaite, Kenward–Roger) intervals and p-values.
    """

    def __init__(self, estimate: np.ndarray, se: np.ndarray, df: np.ndarray | None = None) -> None:
        self.est = np.asarray(estimate, dtype=float)
        self.se = np.asarray(se, dtype=float)
        self.size = self.est.size
        self.df = (
            None if df is None else np.broadcast_to(np.asarray(df, dtype=float), self.est.shape)
        )

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", over="ignore"):
            z = -special.ndtri(a)
            if self.df is not None:  # t where df is finite (stdtrit is inexact far out at
                # inf df, and gives +inf, not −inf, at a = 0)
                t = np.where(a > 0, -special.stdtrit(self.df, a), np.inf)
                z = np.where(np.isinf(self.df), z, t)
            half = np.where(self.se > 0, z * self.se, np.where(self.se == 0, 0.0, np.nan))
        return self.est - half, self.est + half


def _sorted_columns(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column sorted ascending (NaN last) and its count of non-NaN values."""
    return np.sort(d, axis=0), np.sum(~np.isnan(d), axis=0)


def _quantile(xs: np.ndarray, n: np.ndarray, a: np.ndarray) -> np.ndarray:
    """numpy's default ("linear") quantile at ``a`` ≤ 0.5 of each sorted column.

    Virtual index h = a·(n − 1), value x₍ₖ₎ + (h − k)·(x₍ₖ₊₁₎ − x₍ₖ₎) with k = ⌊h⌋. Whether
    it is ≤ 0 changes once, monotonically, as a grows — which the p-value relies on.
    """
    if xs.shape[0] == 0:
        return np.full(xs.shape[1], np.nan)
    cols = np.arange(xs.shape[1])
    last = np.maximum(n - 1, 0)
    h = a * last
    k = np.minimum(np.floor(h), np.maximum(n - 2, 0)).astype(np.intp)
    g = h - k
    lo = xs[k, cols]
    hi = xs[np.minimum(k + 1, last), cols]
    with np.errstate(invalid="ignore"):
        q = lo + g * (hi - lo)
    return np.where(n > 0, q, np.nan)


def _quantile_mcse(draws: np.ndarray, lev: float) -> np.ndarray:
    """Monte-Carlo SE of the (1 ∓ lev)/2 quantiles of ``draws`` (draw, label): (label, 2).

    The p-quantile of S draws has rank S·p ± √(S·p(1−p)) at one binomial SD, so half the
    spread between those order statistics estimates its SE.
    """
    sorted_draws = np.sort(draws, axis=0)
    s = sorted_draws.shape[0]
    out = np.empty((sorted_draws.shape[1], 2))
    for col, p in enumerate(((1 - lev) / 2, (1 + lev) / 2)):
        half = np.sqrt(s * p * (1 - p))
        lo = int(np.clip(np.floor(s * p - half), 0, s - 1))
        hi = int(np.clip(np.ceil(s * p + half), 0, s - 1))
        out[:, col] = (sorted_draws[hi] - sorted_draws[lo]) / 2.0
    return out


class _PercentileRoute(_Route):
    """Quantiles a and 1 − a of the draws; the upper one as −(the a quantile of −draws)."""

    def __init__(self, draws: np.ndarray) -> None:  # (draw, label)
        self._up = _sorted_columns(draws)
        self._down = _sorted_columns(-draws)
        self.size = draws.shape[1]

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _quantile(*self._up, a), -_quantile(*self._down, a)


def _route_p(route: _Route) -> np.ndarray:
    """p = 2·a*, a* the largest float half-tail at which the route's interval contains the
    null value (0, or 1 for a ratio; written as 0 below).

    The interval shrinks as a grows, so "contains 0" holds on [0, a*] and the bisection
    over the bit patterns of non-negative floats (ordered like the floats) finds a* to
    the last bit: the interval at level L, half-tail (1 − L)/2, excludes 0 exactly when
    (1 − L)/2 > a*, i.e. 1 − L > p. p = 0 when no interval contains 0, 1 when all do.
    """
    size = route.size

    def contains(bits: np.ndarray) -> np.ndarray:
        lo, hi = route.interval(bits.view(np.float64))
        return np.asarray((lo <= route.null) & (hi >= route.null))

    lo = np.zeros(size, np.int64)
    hi = np.full(size, _HALF_BITS, np.int64)
    everywhere = contains(hi.copy())
    lo[everywhere] = _HALF_BITS
    somewhere = contains(np.zeros(size, np.int64))
    active = somewhere & ~everywhere
    while True:
        gap = active & (hi - lo > 1)
        if not gap.any():
            break
        mid = lo + (hi - lo) // 2
        inside = contains(mid)
        lo = np.where(gap & inside, mid, lo)
        hi = np.where(gap & ~inside, mid, hi)
    p = np.where(somewhere, 2.0 * lo.view(np.float64), 0.0)
    mid_lo, mid_hi = route.interval(np.full(size, 0.25))
    return np.where(np.isnan(mid_lo) | np.isnan(mid_hi), np.nan, p)


# Bonferroni and Šidák as statsmodels' multipletests computes them (checked in the tests)
_FAMILYWISE = {
    "bonferroni": lambda p, m: np.minimum(p * float(m), 1.0),
    "sidak": lambda p, m: -np.expm1(m * np.log1p(-p)),
}


def _per_comparison_alpha(method: str, alpha: float, m: int) -> float:
    """α′: the smallest float p with adjusted(p) ≥ α, so adjusted(p) < α ⇔ p < α′ exactly.

    ≈ α/m for Bonferroni and 1 − (1 − α)^(1/m) for Šidák; the route's interval at level
    1 − α′ then excludes 0 exactly when the adjusted p-value is below α.
    """
    if m < 1:
        return alpha
    f = _FAMILYWISE[method]
    lo, hi = 0, _ONE_BITS  # adjusted(0) = 0 < α ≤ adjusted(1) = 1
    with np.errstate(divide="ignore"):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            p = np.array([mid], np.int64).view(np.float64)
            if f(p, m)[0] < alpha:
                lo = mid
            else:
                hi = mid
    return float(np.array([hi], np.int64).view(np.float64)[0])


def _sup_t_critical(t_sorted: np.ndarray, alpha: float) -> float:
    """T₍ₙ₋₁₋ₖ₎ with K the largest k such that k/n < α (k/n rounded as the p-values are)."""
    n = t_sorted.size
    if n == 0:
        return float("nan")
    k = int(np.count_nonzero(np.arange(n + 1) / n < alpha)) - 1
    return float(t_sorted[n - 1 - k])


# -- sup-t: the max-|t| statistic, its critical value, band and simultaneous p-values ------
def _delta_max_t(cov: np.ndarray) -> np.ndarray:
    """max over labels of |z| for draws of the delta method's joint normal N(0, corr).

    The correlation comes from ``cov`` (G V̂ Gᵀ); the draws use a fixed seed so the
    critical value is a property of the result, not of the call.
    """
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    keep = sd > 0
    corr = cov[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])
    rng = np.random.default_rng(20_240_601)
    vals, vecs = np.linalg.eigh(corr)
    root = vecs * np.sqrt(np.clip(vals, 0, None))
    z = rng.standard_normal((20_000, int(keep.sum()))) @ root.T
    return np.asarray(np.abs(z).max(axis=1))


def _draws_max_t(draws: np.ndarray, estimate: np.ndarray, se: np.ndarray) -> np.ndarray:
    """max over labels of |θ* − θ̂| / SE for each draw of ``draws`` (dims draw, label)."""
    keep = se > 0
    return np.asarray(np.abs((draws[:, keep] - estimate[keep]) / se[keep]).max(axis=1))


def _sup_t_band(
    t_sorted: np.ndarray, est: np.ndarray, se: np.ndarray, lev: float, null: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The sup-t band at ``lev`` and the simultaneous p-values for θ = ``null``, from one
    max-|t| sample."""
    half = _sup_t_critical(t_sorted, 1.0 - lev) * se
    band = np.column_stack([est - half, est + half])
    p = np.full(len(est), np.nan)
    n = t_sorted.size
    for j in np.flatnonzero(np.isfinite(est) & np.isfinite(se) & (n > 0)):
        # share of draws with T·SE ≥ |est| (T·SE rounded as the band's half-width is)
        scaled = t_sorted * se[j]
        p[j] = (n - int(np.searchsorted(scaled, abs(est[j] - null), side="left"))) / n
    return band, p


# -- adjustments and what the table reports ----------------------------------------------
def _adjusted_p(raw: np.ndarray, adj: str) -> np.ndarray:
    """``raw`` p-values adjusted by ``adj`` (not ``"sup-t"``); NaN ones stay NaN."""
    if adj == "none":
        return raw
    ok = np.isfinite(raw)
    out = np.full_like(raw, np.nan)
    m = int(ok.sum())
    if adj in _FAMILYWISE:
        with np.errstate(divide="ignore"):  # Šidák at p = 1: log1p(−1) = −inf, p_adj = 1
            out[ok] = _FAMILYWISE[adj](raw[ok], m)
    elif m:
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(raw[ok], method=adj)[1]
    return out


def _describe(how: str, kind: str, adj: str, ci_kind: str, ci_level: float) -> dict[str, Any]:
    """The words of :meth:`MarginsResult.inference` for a route, adjustment and interval."""
    p_route = {
        "wald": "normal theory (delta SE)",
        "normal": "normal theory (SD of the draws)",
        "percentile": "draws (percentile)",
        "basic": "draws (basic, reflected percentile)",
        "studentized": "draws (studentized, bootstrap-t)",
    }[kind]
    p_how = {"none": p_route, "sup-t": "sup-t (max-|t| of the draws)"}.get(
        adj, f"{adj}-adjusted {p_route}"
    )
    if how == "delta" and adj == "sup-t":
        p_how = "sup-t (max-|z| of the delta method's joint normal)"
    name = "Wald" if kind == "wald" else kind
    ci = {
        "pointwise": f"{name} interval",
        "simultaneous": "sup-t simultaneous band",
        "bonferroni": f"{name} interval at the Bonferroni level",
        "sidak": f"{name} interval at the Šidák level",
        "none": "none",
    }[ci_kind]
    return {
        "route": how,
        "interval": kind,
        "p_value": p_how,
        "adjust": adj,
        "ci": ci,
        "ci_level": float(ci_level),
    }
