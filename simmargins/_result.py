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

from ._validate import check_choice, check_level

HEADLINES = ("simulation", "delta", "bootstrap")
INTERVALS = ("percentile", "normal", "basic")
TRUST_KAPPA = 0.3  # above this relative curvature the delta method is suspect (DESIGN.md)
TRUST_NOISE_MULTIPLE = 3.0  # disagreement beyond this many MC noise levels is real
ADJUST_METHODS = (
    "none",
    "bonferroni",
    "sidak",
    "holm-sidak",
    "holm",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
    "sup-t",
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
    def _percentile(self, level: float | None) -> np.ndarray:
        lev = self.level if level is None else check_level(level)
        a = (1.0 - lev) / 2.0
        q = self.draws.quantile([a, 1.0 - a], dim="draw").transpose("label", "quantile")
        return q.to_numpy()

    def _wald(self, se: np.ndarray, level: float | None) -> np.ndarray:
        lev = self.level if level is None else check_level(level)
        z = float(special.ndtri(0.5 + lev / 2.0))
        est = self.estimate
        return np.column_stack([est - z * se, est + z * se])

    @property
    def interval(self) -> str:
        return str(self._ds.attrs.get("interval", "percentile"))

    def conf_int(
        self,
        level: float | None = None,
        method: str | None = None,
        interval: str | None = None,
        kind: str = "pointwise",
    ) -> np.ndarray:
        """Intervals of shape (label, 2).

        Delta: Wald. Draws: ``interval`` (default: the session's) is ``"percentile"``
        (quantiles of the draws), ``"normal"`` (estimate ± z·SD of the draws) or
        ``"basic"`` (2·estimate − the opposite quantiles). ``kind="simultaneous"`` gives
        sup-t bands, estimate ± c·SE with c the ``level`` quantile of max over labels of
        |draw − estimate| / SE, so all labels are covered jointly.
        """
        how = self.method if method is None else check_choice("method", method, HEADLINES)
        check_choice("kind", kind, ("pointwise", "simultaneous"))
        if kind == "simultaneous":
            crit = self.sup_t_critical(level, method=how)
            se = self.delta_std_err if how == "delta" else self.draws_std_err
            est = self.estimate
            return np.column_stack([est - crit * se, est + crit * se])
        if how == "delta":
            return self._wald(self.delta_std_err, level)
        kind_ = self.interval if interval is None else check_choice("interval", interval, INTERVALS)
        if kind_ == "normal":
            return self._wald(self.draws_std_err, level)
        q = self._percentile(level)
        if kind_ == "basic":
            est = self.estimate
            return np.column_stack([2 * est - q[:, 1], 2 * est - q[:, 0]])
        return q

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

    def sup_t_critical(self, level: float | None = None, method: str | None = None) -> float:
        """The sup-t critical value c at ``level`` (≥ the pointwise normal quantile)."""
        lev = self.level if level is None else check_level(level)
        how = self.method if method is None else method
        t = self._max_t(how)
        return float(np.quantile(t, lev, method="higher"))

    def statistic(self) -> np.ndarray:
        se = self.std_err
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, self.estimate / se, np.nan)

    def p_value(self) -> np.ndarray:
        """Two-sided normal p-values; adjusted when the result came from :meth:`adjust`."""
        raw = np.asarray(2.0 * special.ndtr(-np.abs(self.statistic())))
        how = self._ds.attrs.get("p_adjust", "none")
        if how == "none":
            return raw
        if how == "sup-t":
            t = self._max_t(self.method)
            return np.asarray([np.mean(t >= abs(z)) for z in self.statistic()])
        from statsmodels.stats.multitest import multipletests

        return np.asarray(multipletests(raw, method=how)[1])

    def adjust(self, method: str = "holm") -> MarginsResult:
        """The same result with p-values adjusted for multiple comparisons.

        ``method`` is any of statsmodels' ``multipletests`` methods (``"holm"``,
        ``"bonferroni"``, ``"fdr_bh"``, ...) or ``"sup-t"`` (simultaneous p-values from the
        draws' max-|t| distribution, matching ``conf_int(kind="simultaneous")``).
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
        """One row per label: grid columns, then estimate, headline inference, diagnostics."""
        ci = self.conf_int()
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
        return pd.DataFrame(data)

    def to_dataset(self) -> xr.Dataset:
        """The underlying Dataset (a copy), with provenance attributes."""
        return self._ds.copy()

    def to_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write the result (draws, estimates, delta SEs, labels, grid, provenance) to netCDF.

        The file is written to a temporary name and renamed into place when complete.
        Read it back with :func:`simmargins.load`.
        """
        from ._io import write_netcdf

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
        from ._summary import format_summary

        return format_summary(self)

    def __repr__(self) -> str:
        return self.summary()


def load(path: str | os.PathLike[str]) -> MarginsResult:
    """Read a result written by :meth:`MarginsResult.to_netcdf`; no model is needed.

    From a loaded result one can change the level (:meth:`MarginsResult.with_level`),
    re-summarise and re-plot.
    """
    from ._io import read_netcdf

    return MarginsResult(read_netcdf(path))
