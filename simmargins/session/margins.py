"""Margins: the session that validates once, draws once and answers many questions.

Every quantity is a weight matrix W over scenario margins μ_s (a prediction is W = I, a
numeric AME is ±1/2ε over a pair of perturbed scenarios, a contrast is the user's W), so
one evaluation path serves all three verbs and gives delta and draws side by side.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._errors import (
    DeltaMethodWarning,
    FewClustersWarning,
    MarginsTypeError,
    MarginsValueError,
    warn_user,
)
from .._validate import (
    check_choice,
    check_count,
    check_level,
    check_seed,
    check_variable,
    make_rng,
    seed_attr,
)
from ..adapters import ModelAdapter, adapter_for
from ..adapters._base import check_finite_fit
from ..engine.delta import delta_std_err, relative_curvature
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import ELASTICITIES, Evaluated, evaluate_elasticity, evaluate_linear
from ..engine.links import IDENTITY_LINK, InverseLink
from ..engine.scenarios import Scenario, format_value, grid, scenario_label
from ..resampling.bootstrap import REFIT_ROUTES, run_bootstrap
from ..resampling.draws import cov_factor, simulate_coefficients
from ..resampling.problem import BootstrapDraws, few_clusters_message
from ..results.criteria import INTERVALS
from ..results.result import MarginsResult
from .checks import (
    delta_warning_text,
    fit_weight_kinds,
    warn_if_not_converged,
)

SCALES = ("linear", "response")
METHODS = ("simulation", "delta", "bootstrap")
AT_KINDS = ("overall", "mean")


def _versions() -> str:
    out = []
    for pkg in ("simmargins", "statsmodels", "numpy", "xarray", "numba"):
        try:
            out.append(f"{pkg}={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg}=unknown")
    return " ".join(out)


def _fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows the fit used (values and column names), for provenance."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


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
    at : {"overall", "mean"} or dict
        Where the other covariates sit: each observed row then average (``"overall"``),
        the design's column means (``"mean"``), or values fixed for all rows (a dict).
    method : {"simulation", "delta", "bootstrap"}
        Which inference is the headline: draws from N(β̂, V̂), the delta method, or
        bootstrap refits. The delta method is always computed alongside.
    n_sims : int
        Number of coefficient draws from N(β̂, V̂).
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
    interval : {"percentile", "normal", "basic"}
        Interval kind of the draws' intervals.
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
    training_data : pandas.DataFrame, optional
        The rows an array-interface fit (``sm.Logit(y, X).fit()``) was fitted on, with
        columns named like ``X``'s; formula fits recover their rows themselves.

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
        n_sims: int = 1000,
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
    ) -> None:
        self.scale = check_choice("scale", scale, SCALES)
        self.method = check_choice("method", method, METHODS)
        self.n_sims = check_count("n_sims", n_sims, 2)
        self.n_boot = check_count("n_boot", n_boot, 2)
        self.level = check_level(level)
        self.seed = check_seed(seed)
        self.interval = check_choice("interval", interval, INTERVALS)
        if n_jobs is not None and (
            isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0
        ):
            raise MarginsValueError(
                f"n_jobs: expected a non-zero integer (-1 for all cores) or None, got {n_jobs!r}"
            )
        self.n_jobs = None if n_jobs is None else int(n_jobs)
        self.progress = progress
        self.warm_start = bool(warm_start)
        self.refit = check_choice("refit", refit, REFIT_ROUTES)  # bootstrap refit route
        for arg, frac in (("boot_warn_fail", boot_warn_fail), ("boot_max_fail", boot_max_fail)):
            if not isinstance(frac, (int, float)) or not 0.0 <= float(frac) <= 1.0:
                raise MarginsValueError(f"{arg}: expected a fraction in [0, 1], got {frac!r}")
        self.boot_warn_fail, self.boot_max_fail = float(boot_warn_fail), float(boot_max_fail)
        self._boot: BootstrapDraws | None = None
        if adapter is not None and not isinstance(adapter, ModelAdapter):
            raise MarginsTypeError(
                f"adapter: expected a simmargins adapter (e.g. StatsmodelsMixedLMAdapter), "
                f"got {type(adapter).__name__}"
            )
        if adapter is not None and training_data is not None:
            raise MarginsValueError(
                "training_data: give it to the adapter or to Margins, not both (the adapter "
                "already holds its rows)"
            )
        self.adapter: ModelAdapter = (
            adapter if adapter is not None else adapter_for(fit, training_data)
        )
        check_finite_fit(self.adapter)
        warn_if_not_converged(self.adapter)
        self._cf = CounterfactualData(
            self.adapter.data, self.adapter.variables, self.adapter.design, self.adapter.offset
        )
        self.at_kind, base = self._check_at(at)
        self._cf.base_values = base
        self.at = at
        self._weights, self.weights_source = self._check_weights(weights)
        self.cluster = self._check_cluster(cluster)
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

    # -- validation -----------------------------------------------------------------------
    def _check_at(self, at: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(at, str):
            return check_choice("at", at, AT_KINDS), {}
        if isinstance(at, Mapping):
            self._cf.check_values("at", at)
            for k, v in at.items():
                if not (isinstance(v, (str, bytes)) or np.ndim(v) == 0):
                    raise MarginsValueError(
                        f"at: {k!r} must be a single value (fixed for all rows), got {v!r}; "
                        "use predict(atexog=...) for a grid"
                    )
            return "dict", dict(at)
        raise MarginsTypeError(
            f"at: expected 'overall', 'mean' or a dict of {{variable: value}}, got {at!r}"
        )

    def _check_varies(self, name: str) -> None:
        """A variable with one value in every row carries no information about its effect."""
        col = self.adapter.data[name]
        var = self._cf.variables[name]
        n_values = len(var.levels or ()) if var.categorical else col.nunique(dropna=True)
        if n_values < 2:
            raise MarginsValueError(
                f"dydx: {name!r} takes a single value ({format_value(col.iloc[0])}) in every row "
                "the fit used, so the data carry no information about its effect"
            )

    def _check_cluster(self, cluster: Any) -> str | None:
        if cluster is None:
            return None
        if not isinstance(cluster, str):
            raise MarginsTypeError(f"cluster: expected a column name, got {cluster!r}")
        check_variable("cluster", cluster, list(self.adapter.data.columns))
        if self.adapter.model_class == "MixedLM":
            raise MarginsValueError(
                "cluster: MixedLM bootstraps resample the model's own groups; cluster= is for "
                "OLS, WLS, GLM and discrete models"
            )
        return cluster

    def _check_weights(self, weights: Any) -> tuple[np.ndarray, str]:
        """The row weights of every average, and a provenance note saying where they came from.

        By default a fit's frequency weights are honoured, as Stata's ``margins`` does with
        fweights: a row standing for k observations counts k times. Precision weights
        (WLS ``weights``, GLM ``var_weights``) shape β̂ and V̂ but do not say how many
        people a row stands for, so they are not used for averaging, and the note says so.
        """
        n = len(self.adapter.data)
        fit_weights = fit_weight_kinds(self.adapter)
        ignored = [k for k in fit_weights if k != "freq_weights"]
        if weights is None:
            if "freq_weights" in fit_weights:
                w = np.asarray(fit_weights["freq_weights"], dtype=float)
                source = "the fit's freq_weights"
                if ignored:
                    source += f" (the fit's {', '.join(ignored)} not used for averaging)"
                return w, source
            source = "equal"
            if ignored:
                source += f" (the fit's {', '.join(ignored)} not used for averaging)"
            return np.ones(n), source
        source = f"weights={weights!r}" if isinstance(weights, str) else "weights= (array)"
        if fit_weights:
            source += f" (the fit's {', '.join(fit_weights)} not used for averaging)"
        if isinstance(weights, str):
            check_variable("weights", weights, list(self.adapter.data.columns))
            w = pd.to_numeric(self.adapter.data[weights], errors="coerce").to_numpy(dtype=float)
        else:
            w = np.asarray(weights, dtype=float)
        if w.shape != (n,):
            raise MarginsValueError(
                f"weights: expected {n} values (one per row used by the fit), got shape {w.shape}"
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MarginsValueError("weights: must be finite, non-negative and not all zero")
        return w, source

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
                    self._cov_factor,
                    self.n_sims,
                    make_rng(self.seed),
                    self.adapter.coef_names,
                )
        return self._coef_draws

    def _bootstrap_draws(self) -> xr.DataArray:
        refit_problem = getattr(self.adapter, "refit_problem", None)
        if refit_problem is None:
            raise MarginsTypeError(
                f"method: this adapter ({type(self.adapter).__name__}) cannot refit the model, "
                "so method='bootstrap' is not available; use 'simulation' or 'delta'"
            )
        clusters = None
        if self.cluster is not None:
            codes, uniques = pd.factorize(self.adapter.data[self.cluster])
            if len(uniques) < 2:
                raise MarginsValueError(
                    f"cluster: {self.cluster!r} has {len(uniques)} cluster; a cluster bootstrap "
                    "needs at least 2"
                )
            clusters = codes.astype(np.intp)
        problem = refit_problem(clusters, warm=self.warm_start)
        if problem.clusters is not None:
            n_clusters = int(problem.clusters.max()) + 1
            if n_clusters < 2:
                raise MarginsValueError(
                    "cluster: the model has only one group; a cluster bootstrap needs at least 2"
                )
            few = few_clusters_message(n_clusters)
            if few is not None:
                warn_user(few, FewClustersWarning)
        boot = run_bootstrap(
            problem,
            self.n_boot,
            self.seed,
            self.n_jobs,
            self.progress,
            self.boot_warn_fail,
            self.boot_max_fail,
            refit=self.refit,
        )
        self._boot = boot
        ok = [r for r in boot.replicates if r.params is not None]
        return xr.DataArray(
            boot.params,
            dims=("draw", "coef"),
            coords={
                "draw": np.arange(len(ok)),
                "coef": list(self.adapter.coef_names),
                "replicate": ("draw", [r.index for r in ok]),
                "converged": ("draw", [r.converged for r in ok]),
                "optimizer": ("draw", [r.optimizer for r in ok]),
                "seed": ("draw", [r.seed for r in ok]),
                # each replicate's final (RE)ML log-likelihood, whichever route refitted it,
                # so fits can be compared replicate by replicate
                "llf": ("draw", boot.llf),
            },
            name="coefficients",
        )

    @property
    def _cov_factor(self) -> np.ndarray:
        if self._factor is None:
            self._factor = cov_factor(self.adapter.cov)
        return self._factor

    # -- verbs ------------------------------------------------------------------------------
    def predict(
        self,
        atexog: Mapping[str, Any] | None = None,
        by: str | Sequence[str] | None = None,
    ) -> MarginsResult:
        """Predictive margins, one per combination of the values in ``atexog``.

        ``predict()`` alone is the average prediction over the observed rows; ``by``
        averages within each subgroup of the data's ``by`` column(s) instead.
        """
        if atexog is None:
            scenarios: list[Scenario] = [{}]
        else:
            self._cf.check_values("atexog", atexog)
            scenarios = grid(atexog)
        settings = [Setting(tuple(s.items())) for s in scenarios]
        labels = [scenario_label(s) for s in scenarios]
        cols = list(atexog) if atexog else []
        coords = {c: [s[c] for s in scenarios] for c in cols}
        return self._evaluate(settings, np.eye(len(settings)), labels, coords, "predict", by)

    def dydx(
        self,
        variables: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        slope: str = "dydx",
    ) -> MarginsResult:
        """Average marginal effects (or elasticities) of one or more variables.

        Numeric variables get a central finite-difference derivative (float64, integer
        columns cast first); categorical ones (strings, categories, bools, ``C()``) give
        each level minus the reference level. ``slope`` picks the derivative's form for
        numeric variables: ``"dydx"`` (∂y/∂x), ``"eyex"`` (∂y/∂x·x/y), ``"eydx"``
        (∂y/∂x/y) or ``"dyex"`` (∂y/∂x·x), each averaged over rows.
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
        for name in names:
            check_variable("dydx", name, self._cf.known)
            self._check_varies(name)
        if slope != "dydx":
            return self._elasticities(names, slope, by)
        settings: list[Setting] = []
        rows: list[dict[int, float]] = []
        labels: list[str] = []
        terms: list[str] = []
        for name in names:
            var = self._cf.variables[name]
            if var.categorical:
                assert var.levels is not None
                ref = var.levels[0]
                start = len(settings)
                settings += [Setting(((name, lv),)) for lv in var.levels]
                for i, lv in enumerate(var.levels[1:], start=1):
                    rows.append({start + i: 1.0, start: -1.0})
                    labels.append(f"{name}={format_value(lv)} - {name}={format_value(ref)}")
                    terms.append(name)
            else:
                eps = self._cf.fd_step(name)
                clip = self._cf.needs_clip(name, eps)
                j = len(settings)
                settings += [
                    Setting(perturb=(name, eps), clip=clip),
                    Setting(perturb=(name, -eps), clip=clip),
                ]
                rows.append({j: 0.5 / eps, j + 1: -0.5 / eps})
                labels.append(name)
                terms.append(name)
        W = np.zeros((len(rows), len(settings)))
        for r, entries in enumerate(rows):
            for j, v in entries.items():
                W[r, j] = v
        return self._evaluate(settings, W, labels, {"term": terms}, "dydx", by)

    def eyex(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None
    ) -> MarginsResult:
        """Average elasticity ∂y/∂x · x/y; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="eyex")

    def eydx(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None
    ) -> MarginsResult:
        """Average semi-elasticity ∂y/∂x / y; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="eydx")

    def dyex(
        self, variables: str | Sequence[str], by: str | Sequence[str] | None = None
    ) -> MarginsResult:
        """Average semi-elasticity ∂y/∂x · x; see :meth:`dydx`."""
        return self.dydx(variables, by=by, slope="dyex")

    def _elasticities(
        self, names: list[str], slope: str, by: str | Sequence[str] | None
    ) -> MarginsResult:
        link = self._link()
        groups, group_coords = self._groups(by)
        parts = []
        for name in names:
            var = self._cf.variables[name]
            if var.categorical:
                raise MarginsValueError(
                    f"dydx: slope={slope!r} needs a numeric variable, but {name!r} is "
                    "categorical; use slope='dydx' for its level contrasts"
                )
            x = self._cf.frame(Setting())[name].to_numpy(dtype=np.float64)
            at_mean = self.at_kind == "mean"
            if at_mean:  # evaluated at the design means, so only the mean must be positive
                x = np.array([np.average(x, weights=self._weights)])
            if slope in ("eyex", "dyex") and np.any(x <= 0):
                raise MarginsValueError(
                    f"dydx: slope={slope!r} scales by {name!r}, which must be positive in "
                    f"every row (elasticities are in log x); {int(np.sum(x <= 0))} rows have "
                    f"{name} <= 0"
                )
            if slope in ("eyex", "eydx"):
                X0, off = self._cf.design(Setting())
                off = np.zeros(X0.shape[0]) if off is None else off
                if at_mean:
                    wn = self._weights / self._weights.sum()
                    X0, off = (wn @ X0)[None, :], np.array([wn @ off])
                eta = X0 @ self.adapter.params + off
                if np.any(link.h(eta) <= 0):
                    raise MarginsValueError(
                        f"dydx: slope={slope!r} divides by the prediction, which is <= 0 in "
                        f"{int(np.sum(link.h(eta) <= 0))} rows on the {self.scale} scale; "
                        "use slope='dydx' or 'dyex'"
                    )
            parts.append(
                evaluate_elasticity(
                    self._cf,
                    name,
                    slope,
                    groups,
                    link,
                    self.adapter.params,
                    self.coefficient_draws.to_numpy(),
                    self._cov_factor,
                    at_mean,
                )
            )
        ev = Evaluated(
            np.concatenate([p.estimate for p in parts]),
            np.concatenate([p.grad for p in parts]),
            [h for p in parts for h in p.hess_factor],
            np.concatenate([p.draws for p in parts], axis=1),
        )
        return self._finish(ev, names, {"term": names}, group_coords, slope)

    def contrasts(
        self,
        scenarios: Sequence[Mapping[str, Any]],
        contrasts: pd.DataFrame | np.ndarray | Sequence[Any],
        by: str | Sequence[str] | None = None,
    ) -> MarginsResult:
        """Contrasts θ = W μ between the predictive margins of ``scenarios``.

        ``contrasts`` is a weight matrix with one column per scenario (as returned by
        :func:`pairwise`, :func:`reference`, :func:`consecutive`, :func:`all_pairwise`).
        """
        if isinstance(scenarios, Mapping) or not isinstance(scenarios, Sequence) or not scenarios:
            raise MarginsTypeError(
                "scenarios: expected a non-empty list of {variable: value} dicts, "
                f"got {scenarios!r}"
            )
        for s in scenarios:
            self._cf.check_values("scenarios", s)
            for k, v in s.items():
                if not (isinstance(v, (str, bytes)) or np.ndim(v) == 0):
                    raise MarginsValueError(f"scenarios: {k!r} must be a single value, got {v!r}")
        if isinstance(contrasts, pd.DataFrame):
            W = contrasts.to_numpy(dtype=float)
            labels = [str(i) for i in contrasts.index]
        else:
            try:
                W = np.atleast_2d(np.asarray(contrasts, dtype=float))
            except (TypeError, ValueError) as exc:
                raise MarginsTypeError(
                    f"contrasts: expected a numeric weight matrix ({exc})"
                ) from exc
            labels = []
        if W.ndim != 2 or W.shape[1] != len(scenarios):
            raise MarginsValueError(
                f"contrasts: the weight matrix has shape {W.shape}; it needs one column per "
                f"scenario ({len(scenarios)})"
            )
        if not labels:
            names = [scenario_label(s) for s in scenarios]
            labels = [
                " ".join(f"{w:+g}·[{n}]" for w, n in zip(row, names, strict=True) if w != 0)
                for row in W
            ]
        if not np.all(np.isfinite(W)):
            raise MarginsValueError("contrasts: weights must be finite numbers")
        settings = [Setting(tuple(s.items())) for s in scenarios]
        return self._evaluate(settings, W, labels, {}, "contrasts", by)

    # -- evaluation -----------------------------------------------------------------------
    def _groups(
        self, by: str | Sequence[str] | None
    ) -> tuple[list[np.ndarray], dict[str, list[Any]]]:
        """Row weights per subgroup of ``by`` (one group of all rows when None)."""
        if by is None:
            return [self._weights], {}
        cols = [by] if isinstance(by, str) else list(by)
        if not cols:
            raise MarginsValueError("by: give at least one column name")
        data = self.adapter.data
        for c in cols:
            check_variable("by", c, list(data.columns))
            n_missing = int(data[c].isna().sum())
            if n_missing:
                raise MarginsValueError(
                    f"by: column {c!r} has {n_missing} missing values among the rows the fit "
                    "used; those rows would belong to no subgroup"
                )
        keys = data[cols].drop_duplicates().sort_values(cols).itertuples(index=False, name=None)
        weights: list[np.ndarray] = []
        values: dict[str, list[Any]] = {c: [] for c in cols}
        for key in keys:
            mask = np.ones(len(data), dtype=bool)
            for c, v in zip(cols, key, strict=True):
                mask &= (data[c] == v).to_numpy()
            w = self._weights * mask
            if w.sum() <= 0:
                continue  # a subgroup with zero analysis weight has no average
            weights.append(w)
            for c, v in zip(cols, key, strict=True):
                values[c].append(v)
        return weights, values

    def _link(self) -> InverseLink:
        return self.adapter.link if self.scale == "response" else IDENTITY_LINK

    def _evaluate(
        self,
        settings: list[Setting],
        W: np.ndarray,
        labels: list[str],
        coords: dict[str, list[Any]],
        quantity: str,
        by: str | Sequence[str] | None = None,
    ) -> MarginsResult:
        groups, group_coords = self._groups(by)
        ev = evaluate_linear(
            self._cf,
            settings,
            W,
            groups,
            self._link(),
            self.adapter.params,
            self.coefficient_draws.to_numpy(),
            self._cov_factor,
            self.at_kind == "mean",
        )
        return self._finish(ev, labels, coords, group_coords, quantity)

    def _finish(
        self,
        ev: Evaluated,
        labels: list[str],
        coords: dict[str, list[Any]],
        group_coords: dict[str, list[Any]],
        quantity: str,
    ) -> MarginsResult:
        n_grp = len(next(iter(group_coords.values()))) if group_coords else 1
        if group_coords:
            group_labels = [
                ", ".join(f"{c}={format_value(v[g])}" for c, v in group_coords.items())
                for g in range(n_grp)
            ]
            labels = [f"{lab} | {gl}" for lab in labels for gl in group_labels]
            coords = {c: [v for v in vals for _ in range(n_grp)] for c, vals in coords.items()}
            for c, vals in group_coords.items():
                coords[c] = [vals[g] for _ in range(len(labels) // n_grp) for g in range(n_grp)]
        se_delta = delta_std_err(ev.grad, self.adapter.cov)
        kappa = relative_curvature(ev.grad, ev.hess_factor, self._cov_factor)
        res = MarginsResult(
            self._dataset(labels, coords, ev.estimate, se_delta, kappa, ev.draws, ev.grad, quantity)
        )
        if not res.delta_trustworthy():
            warn_user(delta_warning_text(res, quantity), DeltaMethodWarning)
        return res

    def _dataset(
        self,
        labels: list[str],
        coords: dict[str, list[Any]],
        estimate: np.ndarray,
        se_delta: np.ndarray,
        kappa: np.ndarray,
        theta: np.ndarray,
        G: np.ndarray,
        quantity: str,
    ) -> xr.Dataset:
        ad = self.adapter
        label_coords: dict[str, Any] = {"label": labels}
        grid_cols: list[str] = []
        for c, vals in coords.items():
            label_coords[c] = (
                "label",
                np.asarray([v.item() if isinstance(v, np.generic) else v for v in vals]),
            )
            grid_cols.append(c)
        draw_coords: dict[str, Any] = {"draw": np.arange(theta.shape[0])}
        boot_attrs: dict[str, Any] = {}
        if self.method == "bootstrap":
            cd = self.coefficient_draws
            for c in ("replicate", "converged", "optimizer", "seed", "llf"):
                draw_coords[f"boot_{c}"] = ("draw", cd[c].to_numpy())
            assert self._boot is not None
            boot_attrs = {
                "n_boot": self.n_boot,
                "n_failed": self._boot.n_failed,
                "cluster": self.cluster or ("groups" if ad.model_class == "MixedLM" else "rows"),
                "warm_start": int(self.warm_start),
                "refit_route": self._boot.route,
                "refit_route_reason": self._boot.route_reason,
                "refit_parallel": self._boot.parallel,
            }
        ds = xr.Dataset(
            {
                "estimate": ("label", estimate),
                "delta_std_err": ("label", se_delta),
                "kappa": ("label", kappa),
                "draws": (("draw", "label"), theta),
                "gradient": (("label", "coef"), G),
                "coef_cov": (("coef", "coef_col"), ad.cov),
            },
            coords={
                **label_coords,
                **draw_coords,
                "coef": list(ad.coef_names),
                "coef_col": list(ad.coef_names),
            },
            attrs={
                "method": self.method,
                "draws_kind": "bootstrap" if self.method == "bootstrap" else "simulation",
                "interval": self.interval,
                **boot_attrs,
                "level": self.level,
                "seed": seed_attr(self.seed),
                "n_sims": self.n_sims if self.method != "bootstrap" else 0,
                "scale": self.scale,
                "at": self.at if isinstance(self.at, str) else repr(dict(self.at)),
                "weights": self.weights_source,
                "quantity": quantity,
                "nobs": len(ad.data),
                "model_class": ad.model_class,
                "formula": ad.formula or "",
                "data_fingerprint": _fingerprint(ad.data),
                "link": ad.link.name,
                "versions": _versions(),
                "grid_columns": grid_cols,
            },
        )
        return ds
