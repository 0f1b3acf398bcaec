"""MarginsResult: the estimates, their draws and the delta cross-check, as one Dataset.

A result is data. Diagnostics are computed here from what the Dataset holds; intervals
and tests are chosen here and computed by the routes in :mod:`.inference`; ``summary()``
only formats them. Also :func:`load`, which reads a result back from netCDF.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._validate import check_choice, check_level
from .algebra import ResultAlgebra
from .criteria import _ADJUST_CI, ADJUST_METHODS, CI_KINDS, HEADLINES, INTERVALS
from .diagnostics import (
    disagreement,
    endpoint_mcse,
    no_draws,
    studentized_draws,
    untrustworthy,
)
from .inference import (
    _FAMILYWISE,
    _adjusted_p,
    _delta_max_t,
    _describe,
    _draws_max_t,
    _half_tail,
    _per_comparison_alpha,
    _PercentileRoute,
    _Route,
    _sup_t_band,
    _sup_t_critical,
    _WaldRoute,
)


class MarginsResult(ResultAlgebra):
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
        """SD of each quantity's draws; NaN without draws (``method="delta", n_sims=0``)."""
        if self.n_draws < 2:
            return np.full(len(self.labels), np.nan)
        return self.draws.std(dim="draw", ddof=1).to_numpy()

    @property
    def df(self) -> np.ndarray | None:
        """Small-sample degrees of freedom per label (the Dataset's ``df``), or None.

        When present the delta route's intervals and p-values use Student's t with these
        df (Satterthwaite or Kenward–Roger for linear mixed models; ``attrs["df_method"]``).
        """
        return self._ds["df"].to_numpy() if "df" in self._ds else None

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
        """|SE_draws − SE_delta| / SE_delta (with df: against the t's SD); see
        :func:`.diagnostics.disagreement`."""
        return disagreement(self._ds, self.delta_std_err, self.draws_std_err)

    @property
    def noise(self) -> float:
        """Monte-Carlo relative error of an SE from S draws: 1/√(2(S−1)); NaN without."""
        return float(1.0 / np.sqrt(2.0 * (self.n_draws - 1))) if self.n_draws > 1 else np.nan

    def asymmetry(self, level: float | None = None) -> np.ndarray:
        """(upper − est) / (est − lower) of the percentile interval; 1 when symmetric."""
        if self.n_draws == 0:
            return np.full(len(self.labels), np.nan)
        lo, hi = self._percentile(level).T
        est = self.estimate
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(est - lo > 0, (hi - est) / (est - lo), np.nan)

    def _untrustworthy(self) -> np.ndarray:
        """Per label: κ above 0.3, or an SE disagreement beyond 3× Monte-Carlo noise."""
        return untrustworthy(self._ds, self.kappa, self.disagreement, self.noise)

    def delta_trustworthy(self) -> bool:
        """False when any label has κ > 0.3 or disagreement beyond 3× Monte-Carlo noise."""
        return not bool(np.any(self._untrustworthy()))

    def untrustworthy_labels(self) -> list[str]:
        return [lab for lab, bad in zip(self.labels, self._untrustworthy(), strict=True) if bad]

    def interval_mcse(self, level: float | None = None) -> np.ndarray:
        """Monte-Carlo SE of each interval endpoint, shape (label, 2); zero for delta."""
        if self.method == "delta":
            return np.zeros((len(self.labels), 2))
        lev = self.level if level is None else check_level(level)
        return endpoint_mcse(self.interval, self.draws.to_numpy(), self.draws_std_err, lev)

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
    # Every interval and its p-value come from one route (.inference, which says how), so
    # p < 1 − level exactly when the interval at that level excludes 0.
    def _route_kind(self, method: str | None, interval: str | None) -> tuple[str, str]:
        """(how, kind): the headline route and its interval kind ("wald" for the delta)."""
        how = self.method if method is None else check_choice("method", method, HEADLINES)
        if how == "delta":
            return how, "wald"
        kind = self.interval if interval is None else check_choice("interval", interval, INTERVALS)
        return how, kind

    def _route(self, how: str, kind: str) -> _Route:
        key = (how if how == "delta" else "draws", kind)
        if key[0] == "draws" and self.n_draws == 0:
            raise no_draws(f"method={how!r} (intervals and p-values from the draws)")
        cache: dict[tuple[str, str], _Route] = self.__dict__.setdefault("_routes", {})
        if key not in cache:
            if kind == "wald":
                cache[key] = _WaldRoute(self.estimate, self.delta_std_err, self.df)
            elif kind == "normal":
                cache[key] = _WaldRoute(self.estimate, self.draws_std_err)
            else:
                d = self.draws.transpose("draw", "label").to_numpy().astype(float)
                if kind == "basic":  # the basic interval is the percentile one of 2θ̂ − θ*
                    d = 2.0 * self.estimate - d
                elif kind == "studentized":
                    d = studentized_draws(self._ds, self.estimate, d)
                cache[key] = _PercentileRoute(d)
            cache[key].null = self.null
        return cache[key]

    @property
    def null(self) -> float:
        """The value p-values test: 1 for a ratio of two margins, otherwise 0 (differences,
        log ratios, log odds ratios, lifts and every other quantity)."""
        return 1.0 if self._ds.attrs.get("comparison") == "ratio" else 0.0

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
            return _delta_max_t(self._delta_cov())
        if self.n_draws == 0:
            raise no_draws(f"the sup-t band of method={method!r}")
        d = self.draws.transpose("draw", "label").to_numpy()
        return _draws_max_t(d, self.estimate, self.draws_std_err)

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
        se = self.delta_std_err if how == "delta" else self.draws_std_err
        return _sup_t_band(self._sorted_max_t(how), self.estimate, se, lev, self.null)

    def statistic(self) -> np.ndarray:
        se = self.std_err
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, (self.estimate - self.null) / se, np.nan)

    def p_value(
        self, method: str | None = None, interval: str | None = None, adjust: str | None = None
    ) -> np.ndarray:
        """Two-sided p-values for θ = 0 (θ = 1 for ``comparison="ratio"``: :attr:`null`),
        from the same route as :meth:`conf_int`.

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
        return _adjusted_p(self._route(how, kind).p(), adj)

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
        out = _describe(how, kind, adj, ci_kind, ci_level)
        if how == "delta" and self.df is not None and adj != "sup-t":
            method = self._ds.attrs.get("df_method", "small-sample")
            out["p_value"] = out["p_value"].replace("normal theory", f"t with {method} df")
        return out

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
        if self.df is not None:
            data["df"] = self.df
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
        if self.n_draws == 0:
            raise no_draws("to_inference_data()")
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


def load(path: str | os.PathLike[str]) -> MarginsResult:
    """Read a result written by :meth:`MarginsResult.to_netcdf`; no model is needed.

    From a loaded result one can change the level (:meth:`MarginsResult.with_level`),
    re-summarise and re-plot.
    """
    from .netcdf import read_netcdf

    return MarginsResult(read_netcdf(path))
