"""MarginsResult: the estimates, their draws and the delta cross-check, as one Dataset.

A result is data. Intervals, tests and diagnostics are computed here from what the
Dataset holds; ``summary()`` only formats them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from .._validate import check_choice, check_level
from .criteria import (
    _ADJUST_CI,
    ADJUST_METHODS,
    CI_KINDS,
    HEADLINES,
    INTERVALS,
    TRUST_KAPPA,
    TRUST_NOISE_MULTIPLE,
)


class MarginsResult:
    """Point estimates with simulation (or bootstrap) draws and delta-method inference.

    Parameters
    ----------
    dataset : xarray.Dataset
        Holds ``estimate``, ``delta_std_err``, ``kappa`` (dim ``label``) and ``draws``
        (dims ``draw, label``); grid columns are coordinates along ``label``; provenance
        (method, level, seed, n_sims, model class, formula, versions) is in ``attrs``.
    """

    def __init__(self, dataset: xr.Dataset) -> None:
        self._ds = dataset

    # -- raw pieces ---------------------------------------------------------------------
    @property
    def draws(self) -> xr.DataArray:
        """The draws of each quantity, dims ``(draw, label)``."""
        return self._ds["draws"]

    @property
    def labels(self) -> list[str]:
        return [str(v) for v in self._ds["label"].values]

    @property
    def method(self) -> str:
        return str(self._ds.attrs["method"])

    @property
    def level(self) -> float:
        return float(self._ds.attrs["level"])

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._ds.attrs)

    @property
    def grid_columns(self) -> list[str]:
        return [str(c) for c in self._ds.attrs.get("grid_columns", [])]

    @property
    def estimate(self) -> np.ndarray:
        """μ(β̂): the quantity at the estimated coefficients (not the draws' mean)."""
        return self._ds["estimate"].to_numpy()

    @property
    def delta_std_err(self) -> np.ndarray:
        return self._ds["delta_std_err"].to_numpy()

    @property
    def draws_std_err(self) -> np.ndarray:
        return self.draws.std(dim="draw", ddof=1).to_numpy()

    @property
    def kappa(self) -> np.ndarray:
        return self._ds["kappa"].to_numpy()

    @property
    def n_draws(self) -> int:
        return int(self._ds.sizes["draw"])

    @property
    def std_err(self) -> np.ndarray:
        """The headline standard error: delta or draws, as ``method`` says."""
        return self.delta_std_err if self.method == "delta" else self.draws_std_err

    # -- diagnostics ----------------------------------------------------------------------
    @property
    def disagreement(self) -> np.ndarray:
        """|SE_draws − SE_delta| / SE_delta, never divided by the estimate."""
        d = self.delta_std_err
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, np.abs(self.draws_std_err - d) / d, np.nan)

    @property
    def noise(self) -> float:
        """Monte-Carlo relative error of an SE from S draws: 1/√(2(S−1))."""
        return float(1.0 / np.sqrt(2.0 * (self.n_draws - 1)))

    def asymmetry(self, level: float | None = None) -> np.ndarray:
        """(upper − est) / (est − lower) of the percentile interval; 1 when symmetric."""
        lo, hi = self._percentile(level).T
        est = self.estimate
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(est - lo > 0, (hi - est) / (est - lo), np.nan)

    def _untrustworthy(self) -> np.ndarray:
        """Per label: κ above 0.3, or an SE disagreement beyond 3× Monte-Carlo noise.

        With simulation draws a quantity that is linear in β (κ exactly zero) has an exact
        delta SE, so its disagreement is Monte-Carlo noise by construction and is not held
        against the delta method; bootstrap draws are compared whatever κ is.
        """
        dis = np.nan_to_num(self.disagreement)
        beyond = dis > TRUST_NOISE_MULTIPLE * self.noise
        if self._ds.attrs.get("draws_kind", "simulation") == "simulation":
            beyond &= self.kappa > 0
        return np.asarray((self.kappa > TRUST_KAPPA) | beyond)

    def delta_trustworthy(self) -> bool:
        """False when any label has κ > 0.3 or disagreement beyond 3× Monte-Carlo noise."""
        return not bool(np.any(self._untrustworthy()))

    def untrustworthy_labels(self) -> list[str]:
        return [lab for lab, bad in zip(self.labels, self._untrustworthy(), strict=True) if bad]

    def interval_mcse(self, level: float | None = None) -> np.ndarray:
        """Monte-Carlo standard error of each percentile-interval endpoint, shape (label, 2).

        Distribution-free, from order statistics: the p-quantile of S draws has rank
        S·p ± √(S·p(1−p)) at one binomial SD, so half the spread between those order
        statistics estimates its SE. Zero for the delta headline, which has no MC error.
        """
        if self.method == "delta":
            return np.zeros((len(self.labels), 2))
        if self.interval == "normal":
            # est ± z·SD: the endpoints move with the SD, whose relative MC error is 1/√(2(S−1))
            lev = self.level if level is None else check_level(level)
            z = float(special.ndtri(0.5 + lev / 2.0))
            err = z * self.draws_std_err * self.noise
            return np.column_stack([err, err])
        lev = self.level if level is None else check_level(level)
        sorted_draws = np.sort(self.draws.to_numpy(), axis=0)
        s = sorted_draws.shape[0]
        out = np.empty((sorted_draws.shape[1], 2))
        for col, p in enumerate(((1 - lev) / 2, (1 + lev) / 2)):
            half = np.sqrt(s * p * (1 - p))
            lo = int(np.clip(np.floor(s * p - half), 0, s - 1))
            hi = int(np.clip(np.ceil(s * p + half), 0, s - 1))
            out[:, col] = (sorted_draws[hi] - sorted_draws[lo]) / 2.0
        return out

    def diagnostics(self) -> pd.DataFrame:
        """Per label: κ, disagreement and its noise level, asymmetry, endpoint MC errors."""
        mcse = self.interval_mcse()
        return pd.DataFrame(
            {
                "label": self.labels,
                "kappa": self.kappa,
                "disagreement": self.disagreement,
                "mc_noise": self.noise,
                "asymmetry": self.asymmetry(),
                "ci_lower_mcse": mcse[:, 0],
                "ci_upper_mcse": mcse[:, 1],
                "delta_trustworthy": ~self._untrustworthy(),
            }
        )

    # -- inference ------------------------------------------------------------------------
    # Every interval and its p-value come from one route (see docs/design.md, "Which p-value
    # each route reports"): the p-value is twice the largest half-tail a at which the route's
    # own interval still contains 0, found by bisection over the floats, so p < 1 − level
    # exactly when the interval at that level excludes 0, ties and rounding included.
    def _route_kind(self, method: str | None, interval: str | None) -> tuple[str, str]:
        """(how, kind): the headline route and its interval kind ("wald" for the delta)."""
        how = self.method if method is None else check_choice("method", method, HEADLINES)
        if how == "delta":
            return how, "wald"
        kind = self.interval if interval is None else check_choice("interval", interval, INTERVALS)
        return how, kind

    def _route(self, how: str, kind: str) -> _Route:
        key = (how if how == "delta" else "draws", kind)
        cache: dict[tuple[str, str], _Route] = self.__dict__.setdefault("_routes", {})
        if key not in cache:
            if kind == "wald":
                cache[key] = _WaldRoute(self.estimate, self.delta_std_err)
            elif kind == "normal":
                cache[key] = _WaldRoute(self.estimate, self.draws_std_err)
            else:
                d = self.draws.transpose("draw", "label").to_numpy().astype(float)
                if kind == "basic":  # the basic interval is the percentile one of 2θ̂ − θ*
                    d = 2.0 * self.estimate - d
                cache[key] = _PercentileRoute(d)
        return cache[key]

    def _percentile(self, level: float | None) -> np.ndarray:
        lev = self.level if level is None else check_level(level)
        lo, hi = self._route("simulation", "percentile").interval(_half_tail(lev, self.labels))
        return np.column_stack([lo, hi])

    @property
    def interval(self) -> str:
        return str(self._ds.attrs.get("interval", "percentile"))

    @property
    def p_adjust(self) -> str:
        """The multiple-comparison adjustment of the headline (``"none"`` unless adjusted)."""
        return str(self._ds.attrs.get("p_adjust", "none"))

    def conf_int(
        self,
        level: float | None = None,
        method: str | None = None,
        interval: str | None = None,
        kind: str = "pointwise",
    ) -> np.ndarray:
        """Intervals of shape (label, 2).

        Delta: Wald. Draws: ``interval`` (default: the session's) is ``"percentile"``
        (quantiles of the draws, numpy's default linear rule), ``"normal"`` (estimate ± z·SD
        of the draws) or ``"basic"`` (2·estimate − the opposite quantiles).

        ``kind``: ``"pointwise"`` (default); ``"simultaneous"``, the sup-t band, estimate ±
        c·SE with c from the max over labels of |draw − estimate| / SE, so that all labels
        are covered jointly; ``"bonferroni"`` / ``"sidak"``, the same route's intervals at
        the per-comparison level 1 − α/m (resp. (1 − α)^(1/m)) for m labels; ``"adjusted"``,
        whichever of these the result's :meth:`adjust` method calls for (the table's
        interval) — NaN for methods that have no interval (Holm, FDR, ...).
        """
        how, ikind = self._route_kind(method, interval)
        kind = check_choice("kind", kind, CI_KINDS)
        lev = self.level if level is None else check_level(level)
        if kind == "adjusted":
            kind = _ADJUST_CI.get(self.p_adjust, "none")
            if kind == "none":
                return np.full((len(self.labels), 2), np.nan)
        if kind == "simultaneous":
            return self._sup_t(how, lev)[0]
        route = self._route(how, ikind)
        if kind == "pointwise":
            a = _half_tail(lev, self.labels)
        else:
            alpha = _per_comparison_alpha(kind, 1.0 - lev, self._n_tests(how, ikind))
            a = np.full(len(self.labels), alpha / 2.0)
        lo, hi = route.interval(a)
        return np.column_stack([lo, hi])

    def _n_tests(self, how: str, kind: str) -> int:
        """m: the labels with a p-value (a label without one is not a comparison)."""
        return int(np.sum(np.isfinite(self._route(how, kind).p())))

    def _max_t(self, method: str) -> np.ndarray:
        """max over labels of |θ − θ̂| / SE for each draw (the sup-t statistic's draws)."""
        if method == "delta":
            # the delta method's joint normal: correlation from G V̂ Gᵀ, drawn with a fixed
            # seed so the critical value is a property of the result, not of the call
            cov = self._delta_cov()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            keep = sd > 0
            corr = cov[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])
            rng = np.random.default_rng(20_240_601)
            vals, vecs = np.linalg.eigh(corr)
            root = vecs * np.sqrt(np.clip(vals, 0, None))
            z = rng.standard_normal((20_000, int(keep.sum()))) @ root.T
            return np.asarray(np.abs(z).max(axis=1))
        d = self.draws.transpose("draw", "label").to_numpy()
        se = self.draws_std_err
        keep = se > 0
        return np.asarray(np.abs((d[:, keep] - self.estimate[keep]) / se[keep]).max(axis=1))

    def _delta_cov(self) -> np.ndarray:
        G = self._ds["gradient"].to_numpy()
        return np.asarray(G @ self._ds["coef_cov"].to_numpy() @ G.T)

    def _sorted_max_t(self, how: str) -> np.ndarray:
        key = "delta" if how == "delta" else "draws"
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_max_t_sorted", {})
        if key not in cache:
            t = self._max_t(how)
            cache[key] = np.sort(t[np.isfinite(t)])
        return cache[key]

    def sup_t_critical(self, level: float | None = None, method: str | None = None) -> float:
        """The sup-t critical value c at ``level`` (≥ the pointwise normal quantile).

        c is the smallest max-|t| draw T such that fewer than a share 1 − level of the
        max-|t| draws exceed it; the band estimate ± c·SE then excludes 0 exactly when the
        sup-t p-value, the share of max-|t| draws at or above |estimate| / SE, is below
        1 − level.
        """
        lev = self.level if level is None else check_level(level)
        how = self.method if method is None else check_choice("method", method, HEADLINES)
        return _sup_t_critical(self._sorted_max_t(how), 1.0 - lev)

    def _sup_t(self, how: str, lev: float) -> tuple[np.ndarray, np.ndarray]:
        """The sup-t band at ``lev`` and the simultaneous p-values, from one max-|t| sample."""
        t = self._sorted_max_t(how)
        se = self.delta_std_err if how == "delta" else self.draws_std_err
        est = self.estimate
        half = _sup_t_critical(t, 1.0 - lev) * se
        band = np.column_stack([est - half, est + half])
        p = np.full(len(est), np.nan)
        n = t.size
        for j in np.flatnonzero(np.isfinite(est) & np.isfinite(se) & (n > 0)):
            # share of draws with T·SE ≥ |est| (T·SE rounded as the band's half-width is)
            scaled = t * se[j]
            p[j] = (n - int(np.searchsorted(scaled, abs(est[j]), side="left"))) / n
        return band, p

    def statistic(self) -> np.ndarray:
        se = self.std_err
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, self.estimate / se, np.nan)

    def p_value(
        self, method: str | None = None, interval: str | None = None, adjust: str | None = None
    ) -> np.ndarray:
        """Two-sided p-values for θ = 0, from the same route as :meth:`conf_int`.

        Delta and ``"normal"`` intervals: normal theory, 2·Φ(−|estimate| / SE).
        ``"percentile"``: from the draws, twice the smaller share of draws on either side
        of 0 as the percentile interval's quantile rule counts it — the smallest α at which
        the (1 − α) percentile interval contains 0. ``"basic"``: the same for the reflected
        draws 2·estimate − draw. So p < 1 − level exactly when the interval excludes 0.

        ``adjust`` (default: the result's, see :meth:`adjust`): ``"sup-t"`` gives the share
        of max-|t| draws at or above |estimate| / SE (matching the simultaneous band);
        other methods apply statsmodels' ``multipletests`` to the route's p-values.
        """
        how, kind = self._route_kind(method, interval)
        adj = self.p_adjust if adjust is None else check_choice("adjust", adjust, ADJUST_METHODS)
        if adj == "sup-t":
            return self._sup_t(how, self.level)[1]
        raw = self._route(how, kind).p()
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

    def inference(self) -> dict[str, Any]:
        """What the table's p-values and intervals are: route, interval kind, adjustment.

        Keys: ``route`` (simulation, bootstrap or delta), ``interval`` (percentile, basic,
        normal or wald), ``p_value`` (how the p-value is computed), ``adjust``, ``ci`` (the
        interval the table shows, or ``"none"``) and ``ci_level`` (its per-row level: the
        result's level, the per-comparison level for Bonferroni/Šidák, NaN when none).
        """
        how, kind = self._route_kind(None, None)
        adj = self.p_adjust
        ci_kind = _ADJUST_CI.get(adj, "none")
        ci_level = self.level
        if ci_kind in _FAMILYWISE:
            alpha = _per_comparison_alpha(ci_kind, 1.0 - self.level, self._n_tests(how, kind))
            ci_level = 1.0 - alpha
        elif ci_kind == "none":
            ci_level = float("nan")
        p_route = {
            "wald": "normal theory (delta SE)",
            "normal": "normal theory (SD of the draws)",
            "percentile": "draws (percentile)",
            "basic": "draws (basic, reflected percentile)",
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

    def adjust(self, method: str = "holm") -> MarginsResult:
        """The same result with p-values — and intervals — adjusted for multiple comparisons.

        ``method`` is any of statsmodels' ``multipletests`` methods (``"holm"``,
        ``"bonferroni"``, ``"fdr_bh"``, ...) or ``"sup-t"``. The table's intervals follow:
        ``"sup-t"`` shows the simultaneous band (``conf_int(kind="simultaneous")``) beside
        p-values from the same max-|t| distribution; ``"bonferroni"`` and ``"sidak"`` show
        the route's intervals at the per-comparison level; methods without an interval
        (Holm, Hochberg, Hommel, FDR) show none (NaN) rather than unadjusted ones.
        """
        check_choice("method", method, ADJUST_METHODS)
        ds = self._ds.copy()
        ds.attrs = {**ds.attrs, "p_adjust": method}
        return MarginsResult(ds)

    def with_level(self, level: float) -> MarginsResult:
        """The same result reported at another confidence level."""
        ds = self._ds.copy()
        ds.attrs = {**ds.attrs, "level": check_level(level)}
        return MarginsResult(ds)

    # -- views ----------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per label: grid columns, then estimate, headline inference, diagnostics.

        ``p_value``, ``ci_lower`` and ``ci_upper`` come from one route and one adjustment
        (:meth:`p_value`, ``conf_int(kind="adjusted")``); ``frame.attrs`` says which
        (:meth:`inference`). The interval columns are NaN when the adjustment has none.
        """
        ci = self.conf_int(kind="adjusted")
        data: dict[str, Any] = {}
        for col in self.grid_columns:
            data[col] = self._ds[col].to_numpy()
        data.update(
            label=self.labels,
            estimate=self.estimate,
            std_err=self.std_err,
            statistic=self.statistic(),
            p_value=self.p_value(),
            ci_lower=ci[:, 0],
            ci_upper=ci[:, 1],
            delta_std_err=self.delta_std_err,
            draws_std_err=self.draws_std_err,
            kappa=self.kappa,
            disagreement=self.disagreement,
        )
        frame = pd.DataFrame(data)
        frame.attrs.update(self.inference())
        return frame

    def to_dataset(self) -> xr.Dataset:
        """The underlying Dataset (a copy), with provenance attributes."""
        return self._ds.copy()

    def to_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write the result (draws, estimates, delta SEs, labels, grid, provenance) to netCDF.

        The file is written to a temporary name and renamed into place when complete.
        Read it back with :func:`simmargins.load`.
        """
        from .netcdf import write_netcdf

        return write_netcdf(self._ds, path)

    def to_inference_data(self) -> Any:
        """An arviz InferenceData whose posterior group holds the draws (one chain).

        The variable is named after the quantity (``predict``, ``dydx``, ``contrasts``...)
        with dimension ``label``, so ``az.summary`` and ``az.plot_posterior`` work on it.
        """
        with warnings.catch_warnings():
            # arviz 0.2x announces its 1.x refactor on import: not actionable for our users
            warnings.filterwarnings("ignore", "\nArviZ is undergoing", FutureWarning)
            import arviz as az

        name = str(self._ds.attrs.get("quantity", "margins"))
        draws = self.draws.transpose("draw", "label").to_numpy()[None, :, :]
        return az.from_dict(
            posterior={name: draws},
            coords={"label": self.labels},
            dims={name: ["label"]},
            attrs={k: v for k, v in self._ds.attrs.items() if isinstance(v, (str, int, float))},
        )

    def summary(self) -> str:
        """The text table: estimates, inference, then n, κ, disagreement, draws and seed."""
        from .summary import format_summary

        return format_summary(self)

    def __repr__(self) -> str:
        return self.summary()


# -- routes: an interval as a function of the half-tail a = α/2, and the p-value it implies --
_HALF_BITS = int(np.float64(0.5).view(np.int64))
_ONE_BITS = int(np.float64(1.0).view(np.int64))


def _half_tail(level: float, labels: list[str]) -> np.ndarray:
    return np.full(len(labels), (1.0 - level) / 2.0)


class _Route:
    """A route's two-sided interval at half-tail ``a`` (one value per label)."""

    _p: np.ndarray | None = None
    size: int  # the number of labels

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def p(self) -> np.ndarray:
        if self._p is None:
            self._p = _route_p(self)
        return self._p


class _WaldRoute(_Route):
    """estimate ± z·SE with z = −Φ⁻¹(a): the delta method, or the draws' ``"normal"`` kind."""

    def __init__(self, estimate: np.ndarray, se: np.ndarray) -> None:
        self.est = np.asarray(estimate, dtype=float)
        self.se = np.asarray(se, dtype=float)
        self.size = self.est.size

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", over="ignore"):
            z = -special.ndtri(a)
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


class _PercentileRoute(_Route):
    """Quantiles a and 1 − a of the draws; the upper one as −(the a quantile of −draws)."""

    def __init__(self, draws: np.ndarray) -> None:  # (draw, label)
        self._up = _sorted_columns(draws)
        self._down = _sorted_columns(-draws)
        self.size = draws.shape[1]

    def interval(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _quantile(*self._up, a), -_quantile(*self._down, a)


def _route_p(route: _Route) -> np.ndarray:
    """p = 2·a*, a* the largest float half-tail at which the route's interval contains 0.

    The interval shrinks as a grows, so "contains 0" holds on [0, a*] and the bisection
    over the bit patterns of non-negative floats (ordered like the floats) finds a* to
    the last bit: the interval at level L, half-tail (1 − L)/2, excludes 0 exactly when
    (1 − L)/2 > a*, i.e. 1 − L > p. p = 0 when no interval contains 0, 1 when all do.
    """
    size = route.size

    def contains(bits: np.ndarray) -> np.ndarray:
        lo, hi = route.interval(bits.view(np.float64))
        return np.asarray((lo <= 0) & (hi >= 0))

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


def load(path: str | os.PathLike[str]) -> MarginsResult:
    """Read a result written by :meth:`MarginsResult.to_netcdf`; no model is needed.

    From a loaded result one can change the level (:meth:`MarginsResult.with_level`),
    re-summarise and re-plot.
    """
    from .netcdf import read_netcdf

    return MarginsResult(read_netcdf(path))
