"""Hypothesis tests on a result: H0: Rθ = r (one restriction, or several jointly), equality
of quantities, and equivalence (TOST). Every test is computed by both routes — the delta
method and the draws — and reports the result's headline route as ``p_value``.

One restriction (a row of R): the routes of :mod:`.inference` applied to Rθ − r, so the
p-value is the one the result's table would show for that combination — delta: Wald,
2·Φ(−|z|); draws: the result's interval kind (percentile by default: where the percentile
interval reaches r). Several restrictions jointly (q rows):

* delta: W = (Rθ̂ − r)ᵀ C⁺ (Rθ̂ − r), C = R G V̂ Gᵀ Rᵀ, against χ² with rank(C) degrees
  of freedom (statsmodels' ``wald_test(..., use_f=False)`` for a linear model);
* draws (percentile and basic kinds): the share of draws c⁽ᵈ⁾ of Rθ whose Mahalanobis
  distance from the draws' mean c̄, with the draws' covariance S, is at least that of r:
  p = #{d : (c⁽ᵈ⁾ − c̄)ᵀS⁺(c⁽ᵈ⁾ − c̄) ≥ (r − c̄)ᵀS⁺(r − c̄)} / n_draws. It is the smallest α at
  which r lies outside the elliptical region holding a share 1 − α of the draws (the
  region's shape from S, its size from the draws' own distances, not from χ²); basic
  reflects the draws (2Rθ̂ − c⁽ᵈ⁾) first. ``normal``: W with S in place of C, against χ².

Equivalence, H0: Rθ ≤ lo or Rθ ≥ hi against lo < Rθ < hi, per restriction: two one-sided
tests with p = max(p_lo, p_hi), p_lo the largest half-tail a at which the route's lower
limit is still ≤ lo (for the delta route Φ((lo − Rθ̂)/SE)), p_hi the same for the upper
limit and hi. So p < α exactly when the route's interval at level 1 − 2α lies inside
(lo, hi): the usual TOST–interval duality, with the percentile interval for the draws.
Several restrictions: all must be equivalent (intersection–union), p = the largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import suggest
from .combination import as_stack, describe_row, linear
from .inference import _PercentileRoute, _Route, _WaldRoute

if TYPE_CHECKING:
    from .result import MarginsResult

_ONE_BITS = int(np.float64(1.0).view(np.int64))


# -- what is tested: R and r ----------------------------------------------------------------
def _position(labels: list[str], item: Any, arg: str) -> int:
    if isinstance(item, str):
        if item not in labels:
            raise MarginsValueError(
                f"{arg}: unknown label {item!r}; the result's labels are {labels}"
                + suggest(item, labels)
            )
        return labels.index(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        n = len(labels)
        if not -n <= int(item) < n:
            raise MarginsValueError(f"{arg}: position {item} is out of range for {n} labels")
        return int(item) % n
    raise MarginsTypeError(f"{arg}: expected a label (str) or a position (int), got {item!r}")


def _weights_matrix(labels: list[str], cols: list[int], weights: Any) -> np.ndarray:
    """R (q, n labels) from ``weights``: a dict, a list of dicts, a Series, a DataFrame
    (columns are labels) or an array over ``cols`` (the named quantities, or all)."""
    n = len(labels)

    def from_mapping(m: Any) -> np.ndarray:
        row = np.zeros(n)
        for key, w in dict(m).items():
            row[_position(labels, key, "weights")] = float(w)
        return row

    if isinstance(weights, dict) or isinstance(weights, pd.Series):
        R = from_mapping(weights)[None, :]
    elif isinstance(weights, pd.DataFrame):
        R = np.vstack([from_mapping(row) for _, row in weights.iterrows()])
    elif isinstance(weights, (list, tuple)) and weights and isinstance(weights[0], dict):
        R = np.vstack([from_mapping(m) for m in weights])
    else:
        try:
            W = np.atleast_2d(np.asarray(weights, dtype=float))
        except (TypeError, ValueError):
            raise MarginsTypeError(
                "weights: expected numbers (a vector or a matrix over the labels), a dict "
                f"label → weight, or a DataFrame with label columns; got {weights!r}"
            ) from None
        if W.ndim != 2 or W.shape[1] != len(cols):
            raise MarginsValueError(
                f"weights: expected {len(cols)} weights per row (one per "
                f"{'named quantity' if len(cols) != n else 'label'}), got shape "
                f"{np.shape(weights)}"
            )
        R = np.zeros((W.shape[0], n))
        R[:, cols] = W
    if not np.all(np.isfinite(R)) or not np.any(R != 0, axis=1).all():
        raise MarginsValueError("weights: every row needs finite weights, not all zero")
    return R


def restrictions(
    labels: list[str], quantities: Sequence[Any], equal: bool, weights: Any
) -> np.ndarray:
    """R over the result's labels for what :meth:`MarginsResult.test` was asked."""
    if len(quantities) == 1 and isinstance(quantities[0], (list, tuple)):
        quantities = list(quantities[0])
    cols = [_position(labels, q, "quantities") for q in quantities]
    if len(set(cols)) != len(cols):
        raise MarginsValueError(f"quantities: a quantity is named twice in {list(quantities)}")
    if not cols:
        cols = list(range(len(labels)))
    if not isinstance(equal, bool):
        raise MarginsTypeError(f"equal: expected True or False, got {equal!r}")
    if equal and weights is not None:
        raise MarginsValueError("equal: give either equal=True or weights=, not both")
    if weights is not None:
        return _weights_matrix(labels, cols, weights)
    if equal:
        if len(cols) < 2:
            raise MarginsValueError(
                f"equal: needs at least two quantities to compare, got {len(cols)}"
            )
        R = np.zeros((len(cols) - 1, len(labels)))
        for i, c in enumerate(cols[1:]):
            R[i, cols[0]], R[i, c] = 1.0, -1.0
        return R
    R = np.zeros((len(cols), len(labels)))
    R[np.arange(len(cols)), cols] = 1.0
    return R


def _null_value(value: Any, q: int) -> np.ndarray:
    try:
        r = np.asarray(0.0 if value is None else value, dtype=float)
    except (TypeError, ValueError):
        raise MarginsTypeError(
            f"value: expected a number or one per restriction, got {value!r}"
        ) from None
    r = np.broadcast_to(r, (q,)).copy() if r.ndim == 0 or r.shape == (1,) else r
    if r.shape != (q,) or not np.all(np.isfinite(r)):
        raise MarginsValueError(
            f"value: expected one finite number or {q} (one per restriction), got {value!r}"
        )
    return r


def _bounds(equivalence: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in equivalence)
    except (TypeError, ValueError):
        raise MarginsTypeError(
            f"equivalence: expected a pair (lo, hi) of numbers, got {equivalence!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise MarginsValueError(
            f"equivalence: the bounds must be finite with lo < hi, got ({lo:g}, {hi:g})"
        )
    return lo, hi


# -- the routes --------------------------------------------------------------------------------
def _largest_a(pred: Any, size: int) -> np.ndarray:
    """Per row, the largest float a in [0, 1] with pred(a) true (pred true, then false, as a
    grows); 0 when false at a = 0. Bisection over the floats' bit patterns."""
    lo = np.zeros(size, np.int64)
    hi = np.full(size, _ONE_BITS, np.int64)
    at_one = pred(np.ones(size))
    lo[at_one] = _ONE_BITS
    live = pred(np.zeros(size)) & ~at_one
    while np.any(gap := live & (hi - lo > 1)):
        mid = lo + (hi - lo) // 2
        ok = pred(mid.view(np.float64))
        lo = np.where(gap & ok, mid, lo)
        hi = np.where(gap & ~ok, mid, hi)
    return np.where(live | at_one, lo.view(np.float64), 0.0)


def _one_sided(route: _Route, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(p_lo, p_hi) of the TOST: half-tails at which the interval's limits pass the bounds."""
    with np.errstate(invalid="ignore"):
        p_lo = _largest_a(lambda a: route.interval(a)[0] <= lo, route.size)
        p_hi = _largest_a(lambda a: route.interval(a)[1] >= hi, route.size)
    return p_lo, p_hi


def _pinv_rank(C: np.ndarray) -> tuple[np.ndarray, int]:
    vals, vecs = np.linalg.eigh((C + C.T) / 2.0)
    keep = vals > max(vals.max(initial=0.0), 0.0) * C.shape[0] * 1e-12
    inv = (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
    return inv, int(keep.sum())


def _mahalanobis(x: np.ndarray, inv: np.ndarray) -> np.ndarray:
    return np.einsum("...i,ij,...j->...", x, inv, x)


def _route(kind: str, est: np.ndarray, draws: np.ndarray, se: np.ndarray, df: Any = None) -> _Route:
    if kind == "wald":
        return _WaldRoute(est, se, df)
    if kind == "normal":
        return _WaldRoute(est, draws.std(axis=0, ddof=1))
    return _PercentileRoute(2.0 * est - draws if kind == "basic" else draws)


# -- the result of a test --------------------------------------------------------------------
@dataclass
class HypothesisTest:
    """A test of H0: Rθ = r (or of equivalence, lo < Rθ < hi) by both routes.

    ``combination`` is Rθ as a :class:`MarginsResult` (its own intervals and diagnostics);
    ``p_value`` is the headline route's joint p-value (``p_delta`` or ``p_draws``);
    ``row_p_delta`` / ``row_p_draws`` test each restriction on its own (unadjusted).
    """

    hypotheses: list[str]
    combination: MarginsResult
    value: np.ndarray
    kind: str  # "wald" or "equivalence"
    route: str  # the headline: "delta", "simulation" or "bootstrap"
    interval: str  # the draws' interval kind
    statistic: float  # delta: z for one restriction, the Wald χ² for several
    df: int
    p_delta: float
    p_draws: float
    draws_statistic: float  # draws: the null's Mahalanobis distance² (joint), else z from SD
    row_p_delta: np.ndarray
    row_p_draws: np.ndarray
    bounds: tuple[float, float] | None = None
    one_sided: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def p_value(self) -> float:
        return self.p_delta if self.route == "delta" else self.p_draws

    @property
    def estimate(self) -> np.ndarray:
        return self.combination.estimate

    def describe(self) -> dict[str, str]:
        """In words: what is tested and how each route computes its p-value."""
        q = len(self.hypotheses)
        if self.kind == "equivalence":
            lo, hi = self.bounds or (np.nan, np.nan)
            draws = f"{self.interval} interval of the draws at level 1 − 2α inside the bounds"
            if self.interval in ("normal",):
                draws = "normal theory with the SD of the draws"
            what = f"equivalence (TOST): {lo:g} < Rθ < {hi:g}"
            if q > 1:
                what += "; all restrictions (intersection–union, p = the largest)"
            return {"test": what, "delta": "normal theory, max of the one-sided p", "draws": draws}
        if q == 1:
            draws = {
                "percentile": "where the percentile interval reaches the null value",
                "basic": "where the basic interval reaches the null value",
                "normal": "normal theory with the SD of the draws",
            }[self.interval]
            return {"test": "Wald, one restriction", "delta": "2·Φ(−|z|), delta SE", "draws": draws}
        draws = "share of draws at least as far from their mean as the null (Mahalanobis)"
        if self.interval == "normal":
            draws = f"χ²({self.df}) with the draws' covariance"
        return {
            "test": f"Wald, {q} restrictions jointly",
            "delta": f"χ²({self.df}) with the delta covariance G V̂ Gᵀ",
            "draws": draws,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per restriction (its own test), then for several a ``joint`` row."""
        res = self.combination
        data: dict[str, Any] = {
            "hypothesis": list(self.hypotheses),
            "estimate": res.estimate,
            "value": self.value,
            "delta_std_err": res.delta_std_err,
            "draws_std_err": res.draws_std_err,
            "p_delta": self.row_p_delta,
            "p_draws": self.row_p_draws,
        }
        if self.kind == "equivalence":
            data.update({k: v for k, v in self.one_sided.items()})
        frame = pd.DataFrame(data)
        if len(self.hypotheses) > 1:
            joint = {"hypothesis": "joint", "p_delta": self.p_delta, "p_draws": self.p_draws}
            frame = pd.concat([frame, pd.DataFrame([joint])], ignore_index=True)
        frame["p_value"] = frame["p_delta" if self.route == "delta" else "p_draws"]
        frame.attrs.update(self.describe(), route=self.route, statistic=self.statistic)
        return frame

    def summary(self) -> str:
        from .hypotheses_summary import format_test

        return format_test(self)

    def __repr__(self) -> str:
        return self.summary()


def hypothesis_test(
    res: MarginsResult,
    quantities: Sequence[Any],
    equal: bool = False,
    weights: Any = None,
    value: Any = None,
    equivalence: Any = None,
) -> HypothesisTest:
    """The test :meth:`MarginsResult.test` describes; see this module for the routes."""
    R = restrictions(res.labels, quantities, equal, weights)
    if equivalence is not None and value is not None:
        raise MarginsValueError(
            "value: not used with equivalence= (the bounds say where Rθ must lie)"
        )
    r = _null_value(value, R.shape[0])
    st = as_stack([res], "result")
    comb = linear(st, R)
    est, se = comb.estimate, comb.delta_std_err
    draws = comb.draws.transpose("draw", "label").to_numpy()
    # a combination's replicate SEs are not recorded, so a studentized result's draws
    # route tests with the percentile rule (what describe() then says)
    interval = "percentile" if res.interval == "studentized" else res.interval
    eq = [f"{h} = {v:g}" for h, v in zip(comb.labels, r, strict=True)]
    df_rows = _row_df(res, R)
    if equivalence is not None:
        lo, hi = _bounds(equivalence)
        sides: dict[str, np.ndarray] = {}
        row_p = {}
        for name, k in (("delta", "wald"), ("draws", interval)):
            p_lo, p_hi = _one_sided(_route(k, est, draws, se, df_rows), lo, hi)
            if name == "draws" and draws.shape[0] == 0:  # the delta method alone
                p_lo = p_hi = np.full(len(est), np.nan)
            sides[f"p_lower_{name}"], sides[f"p_upper_{name}"] = p_lo, p_hi
            row_p[name] = np.maximum(p_lo, p_hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.min([(est - lo) / se, (hi - est) / se], axis=0)
        return HypothesisTest(
            hypotheses=comb.labels, combination=comb, value=np.full(len(est), np.nan),
            kind="equivalence", route=res.method, interval=interval,
            statistic=float(np.min(z)), df=len(est),
            p_delta=float(np.max(row_p["delta"])), p_draws=float(np.max(row_p["draws"])),
            draws_statistic=float("nan"), row_p_delta=row_p["delta"],
            row_p_draws=row_p["draws"], bounds=(lo, hi), one_sided=sides,
        )  # fmt: skip
    row_p_delta = _route("wald", est - r, draws - r, se, df_rows).p()
    row_p_draws = _route(interval, est - r, draws - r, se).p()
    d = est - r
    if len(est) == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            stat, df = float(d[0] / se[0]), 1
            sd = float(draws[:, 0].std(ddof=1)) if draws.shape[0] >= 2 else float("nan")
            dstat = float(d[0] / sd)
        p_delta, p_draws = float(row_p_delta[0]), float(row_p_draws[0])
    else:
        G = comb._ds["gradient"].to_numpy()
        C = G @ comb._ds["coef_cov"].to_numpy() @ G.T
        inv, df = _pinv_rank(C)
        stat = float(_mahalanobis(d, inv))
        p_delta = float(special.chdtrc(df, stat)) if df else float("nan")
        p_draws, dstat = _joint_draws(interval, est, draws, r)
    return HypothesisTest(
        hypotheses=eq, combination=comb, value=r, kind="wald", route=res.method,
        interval=interval, statistic=stat, df=df, p_delta=p_delta, p_draws=p_draws,
        draws_statistic=dstat, row_p_delta=row_p_delta, row_p_draws=row_p_draws,
    )  # fmt: skip


def _row_df(res: MarginsResult, R: np.ndarray) -> np.ndarray | None:
    """Small-sample df of each restriction for the delta route: a restriction on one
    quantity keeps that quantity's df (as its table row does); a combination of several
    has none known here, so normal theory (inf). None when the result has no df."""
    df = res.df
    if df is None:
        return None
    single = np.count_nonzero(R, axis=1) == 1
    return np.where(single, df[np.argmax(R != 0, axis=1)], np.inf)


def _joint_draws(
    interval: str, est: np.ndarray, draws: np.ndarray, r: np.ndarray
) -> tuple[float, float]:
    """(p, statistic) of the draws' joint test (see the module docstring)."""
    keep = np.all(np.isfinite(draws), axis=1)
    c = draws[keep]
    if interval == "basic":
        c = 2.0 * est - c
    if c.shape[0] < 2:
        return float("nan"), float("nan")
    inv, rank = _pinv_rank(np.cov(c, rowvar=False))
    if interval == "normal":
        stat = float(_mahalanobis(est - r, inv))
        return (float(special.chdtrc(rank, stat)) if rank else float("nan")), stat
    centre = c.mean(axis=0)
    dist = _mahalanobis(c - centre, inv)
    stat = float(_mahalanobis(r - centre, inv))
    return float(np.mean(dist >= stat)), stat


__all__ = ["HypothesisTest", "describe_row", "hypothesis_test", "restrictions"]
