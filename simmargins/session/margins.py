"""Margins: the session that validates once, draws once and answers many questions.

Every quantity is a weight matrix W over scenario margins μ_s (a prediction is W = I, a
numeric AME is ±1/2ε over a pair of perturbed scenarios, a contrast is the user's W), so
one evaluation path serves all three verbs and gives delta and draws side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import (
    check_choice,
    check_count,
    check_level,
    check_seed,
    check_variable,
    make_rng,
)
from ..adapters import ModelAdapter
from ..adapters._base import check_finite_fit
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import COMPARISONS, ELASTICITIES
from ..engine.links import IDENTITY_LINK, InverseLink
from ..engine.scenarios import Scenario, grid, scenario_label
from ..resampling.bootstrap import REFIT_ROUTES
from ..resampling.draws import cov_factor, simulate_coefficients
from ..resampling.problem import BootstrapDraws
from ..results.criteria import INTERVALS
from ..results.result import MarginsResult
from .arguments import (
    check_adapter,
    check_at,
    check_cluster,
    check_contrasts,
    check_df,
    check_fraction,
    check_n_jobs,
    check_n_sims,
    check_random_effects,
    check_varies,
    check_weights,
)
from .checks import warn_if_not_converged
from .coefficients import BootstrapSettings, bootstrap_coefficients, check_bootstrap
from .comparisons import check_dydx_atexog, check_factor_comparison, evaluate
from .elasticities import elasticities
from .partitions import is_partitioned, partitioned_population
from .population import Population, balanced_grid, population_from_frame
from .requests import Request, dydx_request, shift_request

SCALES = ("linear", "response")
METHODS = ("simulation", "delta", "bootstrap")


class Margins:
    """Predictive margins, average marginal effects and contrasts of a fitted model.

    Parameters
    ----------
    fit : statsmodels results
        A fitted MixedLM, OLS/WLS/GLS, GLM (every family and link statsmodels ships),
        Logit, Probit, Poisson or NegativeBinomial model (``adapters.supported_models()``
        lists them), from a formula or from arrays (then pass ``training_data``).
        Non-finite estimates are refused; a fit statsmodels reports as not converged
        warns (``ConvergenceWarning``).
    scale : {"linear", "response"}
        ``"linear"``: the linear predictor X·β (+offset); ``"response"``: h(X·β + offset).
    at : {"overall", "mean", "median", "balanced"} or dict
        Where the other covariates sit: each observed row then average (``"overall"``),
        the design's column means (``"mean"``), every variable at its median and every
        factor at its mode, offset and exposure too (``"median"``), emmeans' reference
        grid (``"balanced"``: each combination of the factors' levels once, with equal
        weight, numeric covariates, offset and exposure at their means), or values fixed
        for all rows (a dict; ``"mean"``, ``"median"`` or ``"mode"`` as a value take that
        summary of the variable over the fit's rows).
    method : {"simulation", "delta", "bootstrap"}
        Which inference is the headline: draws from N(β̂, V̂), the delta method, or
        bootstrap refits. The delta method is always computed alongside.
    n_sims : int, optional
        Number of coefficient draws from N(β̂, V̂); 1000 by default. With
        ``method="delta"`` the default is ``0``: the delta method alone, no draws and no
        cross-check (draws-based fields are NaN); give ``n_sims`` to have the simulation
        cross-check (κ's companion, the delta-vs-sim disagreement) computed as well.
    level : float
        Confidence level of the intervals, in (0, 1).
    seed : int, numpy Generator or None
        Seed of the draws and of the bootstrap resamples; the same seed gives the same
        draws whatever ``n_jobs`` is.
    weights : str or array-like, optional
        Analysis weights for averaging over rows: a column of the data or N numbers.
        By default a GLM's ``freq_weights`` are used (each row counts as many times as it
        stands for, as Stata does with fweights) and otherwise rows count equally; the
        result's ``weights`` attribute says which, and which of the fit's weights were
        not used.
    adapter : ModelAdapter, optional
        An adapter built by hand; by default the one for the fit's model class.
    n_boot : int
        Bootstrap replicates (``method="bootstrap"``).
    n_jobs : int, optional
        Parallel bootstrap workers (joblib; -1 for all cores). Results do not depend on it.
    cluster : str, optional
        Column whose clusters an OLS/GLM/discrete bootstrap resamples (MixedLM resamples
        its own groups).
    interval : {"percentile", "normal", "basic", "studentized"}
        Interval kind of the draws' intervals (``"studentized"``, the bootstrap-t: with
        ``bootstrap="parametric"`` only).
    progress : bool, optional
        Show a progress bar during bootstrap refits (default: only on a terminal).
    warm_start : bool
        Start each bootstrap refit from the original estimates.
    boot_warn_fail, boot_max_fail : float
        Fractions of failed replicates above which the bootstrap warns, resp. raises.
    refit : {"auto", "fast", "statsmodels"}
        Bootstrap refits: ``"auto"`` refits Gaussian MixedLMs with one grouping factor and
        no variance components exactly from per-group sufficient statistics, and other
        models with statsmodels; ``"fast"`` insists (the refits raise, naming the reason,
        when the model does not qualify); ``"statsmodels"`` always refits with statsmodels.
        The route taken is recorded in the result's ``refit_route*`` attributes.
    bootstrap : {"cluster", "parametric"}
        What a bootstrap replicate is: clusters (or rows) resampled with replacement, or
        (``"parametric"``, Gaussian MixedLM only) responses simulated from the fitted model,
        y* = Xβ̂ + Zu* + e*, as lme4's ``bootMer`` does; warns when Ψ̂ is singular.
    df : {"asymptotic", "satterthwaite", "kenward-roger"}
        Degrees of freedom of a linear mixed model's margins, AMEs and contrasts:
        normal theory (default), Satterthwaite (REML or ML fits, as lmerTest) or
        Kenward–Roger (REML fits, as pbkrtest; also adjusts the covariance). Delta
        intervals and p-values then use t with each quantity's df, and simulation draws
        are scaled to the matching t; ``to_frame()`` gains a ``df`` column.
    training_data : pandas.DataFrame, optional
        The rows an array-interface fit (``sm.Logit(y, X).fit()``) was fitted on, with
        columns named like ``X``'s; formula fits recover their rows themselves.
    random_effects : {"zero", "blup", "new", "integrate"}, optional
        A MixedLM's random effects at zero (the population average; its default) or at each
        row's cluster's BLUPs (``"blup"``, covariance from the mixed-model equations; ``by=``
        the group column: one result per cluster). ``"new"``: a new cluster, whose random
        effects are drawn from N(0, Ψ̂): the estimates are the population average, and SEs
        and intervals add z̄Ψ̂z̄ᵀ (a prediction interval for the new cluster's mean; the
        residual σ̂² is in the result's ``residual_variance`` attribute). For
        a BinomialBayesMixedGLM / PoissonBayesMixedGLM, ``"integrate"`` (its default) gives
        population-averaged margins E_u[h(xβ + zu)], the random effects integrated over
        their fitted distribution (``"zero"``: conditional on u = 0; ``"blup"``: at each
        row's cluster's posterior mean).

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.formula.api as smf
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"x": rng.normal(size=200), "t": rng.integers(0, 2, 200)})
    >>> df["y"] = 1.0 + 0.5 * df["x"] + 2.0 * df["t"] + rng.normal(size=200)
    >>> m = Margins.linear_scale(smf.ols("y ~ x + t", df).fit(), seed=0)
    >>> res = m.dydx("x")
    >>> bool(np.isclose(res.estimate[0], m.adapter.params[1]))
    True
    """

    def __init__(
        self,
        fit: Any,
        scale: str = "response",
        at: str | Mapping[str, Any] = "overall",
        method: str = "simulation",
        n_sims: int | None = None,
        level: float = 0.95,
        seed: Any = None,
        weights: str | Sequence[float] | np.ndarray | None = None,
        adapter: ModelAdapter | None = None,
        *,
        n_boot: int = 200,
        n_jobs: int | None = None,
        cluster: str | None = None,
        interval: str = "percentile",
        progress: bool | None = None,
        warm_start: bool = True,
        boot_warn_fail: float = 0.05,
        boot_max_fail: float = 0.25,
        refit: str = "auto",
        training_data: pd.DataFrame | None = None,
        df: str = "asymptotic",
        random_effects: str | None = None,
        bootstrap: str = "cluster",
    ) -> None:
        self.scale = check_choice("scale", scale, SCALES)
        self.method = check_choice("method", method, METHODS)
        self.n_sims = check_n_sims(n_sims, self.method)
        self.n_boot = check_count("n_boot", n_boot, 2)
        self.level = check_level(level)
        self.seed = check_seed(seed)
        self.interval = check_choice("interval", interval, INTERVALS)
        self.n_jobs = check_n_jobs(n_jobs)
        self.progress = progress
        self.warm_start = bool(warm_start)
        self.refit = check_choice("refit", refit, REFIT_ROUTES)  # bootstrap refit route
        self.boot_warn_fail = check_fraction("boot_warn_fail", boot_warn_fail)
        self.boot_max_fail = check_fraction("boot_max_fail", boot_max_fail)
        self._boot: BootstrapDraws | None = None
        self.adapter: ModelAdapter = check_adapter(fit, adapter, training_data)
        self.random_effects, self.adapter = check_random_effects(
            self.adapter, random_effects, self.method, df, at)  # fmt: skip
        self.bootstrap = check_bootstrap(self.adapter, bootstrap, self.method, self.interval)
        check_finite_fit(self.adapter)
        warn_if_not_converged(self.adapter)
        self._cf = CounterfactualData(
            self.adapter.data, self.adapter.variables, self.adapter.design, self.adapter.offset
        )
        self._weights, self.weights_source = check_weights(self.adapter, weights)
        self.at_kind, base = check_at(self._cf, at, self._weights)
        self._cf.base_values = base
        self.at = at
        self._grid = balanced_grid(self._cf, self._weights) if at == "balanced" else None
        self.cluster = check_cluster(self.adapter, cluster)
        self.df_method, self._df_cov = check_df(self.adapter, df, self.method)
        self._coef_draws: xr.DataArray | None = None
        self._factor: np.ndarray | None = None

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def linear_scale(cls, fit: Any, **kwargs: Any) -> Margins:
        """A session on the linear-predictor scale, X·β (+offset)."""
        return cls(fit, scale="linear", **kwargs)

    @classmethod
    def response_scale(cls, fit: Any, **kwargs: Any) -> Margins:
        """A session on the response scale, h(X·β + offset)."""
        return cls(fit, scale="response", **kwargs)

    # -- draws ------------------------------------------------------------------------------
    @property
    def coefficient_draws(self) -> xr.DataArray:
        """The session's coefficient draws, dims ``(draw, coef)``; made once, then reused.

        Simulation draws come from N(β̂, V̂); with ``method="bootstrap"`` they are the
        fixed effects of the converged bootstrap refits, with per-replicate
        ``converged``, ``optimizer`` and ``seed`` coordinates.
        """
        if self._coef_draws is None:
            if self.method == "bootstrap":
                self._coef_draws = self._bootstrap_draws()
            else:
                self._coef_draws = simulate_coefficients(
                    self.adapter.params,
                    self.cov_factor,
                    self.n_sims,
                    make_rng(self.seed),
                    self.adapter.coef_names,
                )
        return self._coef_draws

    def _bootstrap_draws(self) -> xr.DataArray:
        draws, self._boot = bootstrap_coefficients(
            self.adapter,
            BootstrapSettings(
                self.n_boot,
                self.seed,
                self.n_jobs,
                self.progress,
                self.warm_start,
                self.boot_warn_fail,
                self.boot_max_fail,
                self.refit,
                self.cluster,
                self.bootstrap,
            ),
        )
        return draws

    @property
    def bootstrap_record(self) -> BootstrapDraws | None:
        """The bootstrap's replicate records (route, failures, where it ran), once drawn."""
        return self._boot

    @property
    def coef_cov(self) -> np.ndarray:
        """V̂ of the fixed effects as the session uses it: the adapter's, or with
        ``df="satterthwaite"``/``"kenward-roger"`` lme4's (XᵀV⁻¹X)⁻¹ resp. the
        Kenward–Roger adjusted covariance."""
        return self.adapter.cov if self._df_cov is None else self._df_cov

    @property
    def cov_factor(self) -> np.ndarray:
        """A factor L with L Lᵀ = V̂, computed once."""
        if self._factor is None:
            self._factor = cov_factor(self.coef_cov)
        return self._factor

    @property
    def at_values(self) -> dict[str, Any]:
        """The values ``at`` fixes for every row, summaries resolved (``{}``: none)."""
        return dict(self._cf.base_values)

    # -- verbs ------------------------------------------------------------------------------
    def predict(
        self,
        atexog: Mapping[str, Any] | None = None,
        by: str | Sequence[str] | None = None,
        *,
        newdata: pd.DataFrame | None = None,
        weights: str | Sequence[float] | np.ndarray | None = None,
    ) -> MarginsResult:
        """Predictive margins, one per combination of the values in ``atexog``.

        ``predict()`` alone is the average prediction over the observed rows; ``by``
        averages within each subgroup of the data's ``by`` column(s) instead.

        Every verb takes ``newdata=``: a population frame to average over instead of the
        fit's rows (post-stratification), with ``weights=`` a column of it or one number
        per row. Its columns are checked against the fit's formula (missing columns,
        unseen levels, wrong types); a model fitted with an offset or exposure needs an
        ``offset`` / ``exposure`` column unless ``at`` fixes it.
        """
        pop = self._population(newdata, weights)
        if atexog is None:
            scenarios: list[Scenario] = [{}]
        else:
            pop.cf.check_values("atexog", atexog)
            scenarios = grid(atexog)
        settings = [Setting(tuple(s.items())) for s in scenarios]
        labels = [scenario_label(s) for s in scenarios]
        cols = list(atexog) if atexog else []
        coords = {c: [s[c] for s in scenarios] for c in cols}
        W = np.eye(len(settings))
        return evaluate(self, pop, settings, W, labels, coords, "predict", by)

    def dydx(
        self,
        variables: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        slope: str = "dydx",
        *,
        atexog: Mapping[str, Any] | None = None,
        comparison: str = "difference",
        newdata: pd.DataFrame | None = None,
        weights: str | Sequence[float] | np.ndarray | None = None,
    ) -> MarginsResult:
        """Average marginal effects (or elasticities) of one or more variables.

        Numeric variables get a central finite-difference derivative (float64, integer
        columns cast first); categorical ones (strings, categories, bools, ``C()``) give
        each level minus the reference level. ``slope`` picks the derivative's form for
        numeric variables: ``"dydx"`` (∂y/∂x), ``"eyex"`` (∂y/∂x·x/y), ``"eydx"``
        (∂y/∂x/y) or ``"dyex"`` (∂y/∂x·x), each averaged over rows.

        ``atexog`` holds other variables at each combination of the given values (the
        conditional AME of x at each value of a moderator); ``comparison`` compares a
        factor's levels by ``"ratio"``, ``"lnratio"``, ``"lnor"`` or ``"lift"`` of the two
        averaged predictions instead of their difference (see :meth:`contrasts`);
        ``newdata`` and ``weights`` as in :meth:`predict`.
        """
        if isinstance(variables, str):
            names = [variables]
        elif isinstance(variables, Sequence):
            names = list(variables)
        else:
            raise MarginsTypeError(
                f"dydx: variable names must be strings or a list of them, got {variables!r}"
            )
        if not names:
            raise MarginsValueError("variables: give at least one variable name")
        slope = check_choice("slope", slope, ("dydx", *ELASTICITIES))
        comparison = check_choice("comparison", comparison, COMPARISONS)
        for name in names:
            check_variable("dydx", name, self._cf.known)
            check_varies(self.adapter, self._cf, name)
        pop = self._population(newdata, weights)
        points = check_dydx_atexog(pop.cf, atexog, names, slope)
        if comparison != "difference":
            check_factor_comparison(pop.cf, names, comparison)
        if slope != "dydx":
            return elasticities(self, pop, names, slope, by)
        req = dydx_request(pop.cf, names, points, self._cf)
        return evaluate(self,
            pop, req.settings, req.matrix(), req.labels, req.coords, "dydx", by,
            comparison=comparison, request=req,
        )

    def eyex(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None, **kw: Any
    ) -> MarginsResult:
        """Average elasticity ∂y/∂x · x/y; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="eyex", **kw)

    def eydx(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None, **kw: Any
    ) -> MarginsResult:
        """Average semi-elasticity ∂y/∂x / y; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="eydx", **kw)

    def dyex(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None, **kw: Any
    ) -> MarginsResult:
        """Average semi-elasticity ∂y/∂x · x; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="dyex", **kw)

    def contrasts(
        self,
        scenarios: Sequence[Mapping[str, Any]] | None = None,
        contrasts: pd.DataFrame | np.ndarray | Sequence[Any] | None = None,
        by: str | Sequence[str] | None = None,
        *,
        comparison: str = "difference",
        shift: Mapping[str, Any] | None = None,
        scale: Mapping[str, Any] | None = None,
        newdata: pd.DataFrame | None = None,
        weights: str | Sequence[float] | np.ndarray | None = None,
    ) -> MarginsResult:
        """Contrasts θ = W μ between the predictive margins of ``scenarios``.

        ``contrasts`` is a weight matrix with one column per scenario (as returned by
        :func:`pairwise`, :func:`reference`, :func:`consecutive`, :func:`all_pairwise`).

        Instead of scenarios, ``shift={"x": 1}`` compares the data with x + 1 in every row
        to the data as observed (``{"x": "sd"}``: x plus the sample SD of the fit's x), and
        ``scale={"x": 1.1}`` the data with 1.1·x; each entry is its own contrast.

        ``comparison`` says how the margins a row puts positive weight on (a) compare with
        those it puts negative weight on (b): ``"difference"`` a − b (any W), ``"ratio"``
        a/b, ``"lnratio"`` ln(a/b), ``"lnor"`` ln(a/(1−a)) − ln(b/(1−b)), ``"lift"``
        (a − b)/b, each applied draw by draw, with its chain-rule delta gradient and κ.
        ``newdata`` and ``weights`` as in :meth:`predict`.
        """
        comparison = check_choice("comparison", comparison, COMPARISONS)
        pop = self._population(newdata, weights)
        if shift is not None or scale is not None:
            if scenarios is not None or contrasts is not None:
                raise MarginsValueError(
                    "scenarios: give either scenarios and contrasts, or shift=/scale=, not both"
                )
            req = shift_request(pop.cf, self._cf, shift, scale)
            return evaluate(self,
                pop, req.settings, req.matrix(), req.labels, req.coords, "contrasts", by,
                comparison=comparison, request=req,
            )
        if scenarios is None or contrasts is None:
            raise MarginsTypeError(
                "contrasts: give scenarios and a contrasts weight matrix, or shift=/scale="
            )
        W, labels = check_contrasts(pop.cf, scenarios, contrasts)
        req = Request(names=[scenario_label(s) for s in scenarios])
        settings = [Setting(tuple(s.items())) for s in scenarios]
        return evaluate(self,
            pop, settings, W, labels, {}, "contrasts", by, comparison=comparison, request=req
        )

    # -- evaluation -----------------------------------------------------------------------
    @property
    def link(self) -> InverseLink:
        """The inverse link of the session's scale (identity on the linear scale)."""
        return self.adapter.link if self.scale == "response" else IDENTITY_LINK

    def _population(self, newdata: Any = None, weights: Any = None) -> Population:
        if newdata is not None:
            if is_partitioned(newdata):  # a Dask DataFrame or a Parquet path (out of core)
                return partitioned_population(self._cf, newdata, weights, self.at_kind)
            return population_from_frame(self._cf, newdata, weights, self.at_kind)
        if weights is not None:
            raise MarginsValueError(
                "weights: a verb's weights= names a column of newdata=; weights for the "
                "fit's own rows go to Margins(weights=...)"
            )
        if self._grid is not None:  # at="balanced": each cell of the factor grid once
            n = len(self._grid.data)
            return Population(self._grid, self._grid.data, np.ones(n), f"{n} cells")
        return Population(self._cf, self.adapter.data, self._weights)
