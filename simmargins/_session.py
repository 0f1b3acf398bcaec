"""Margins: the session that validates once, draws once and answers many questions.

Every quantity is a weight matrix W over scenario margins μ_s (a prediction is W = I, a
numeric AME is ±1/2ε over a pair of perturbed scenarios, a contrast is the user's W), so
one evaluation path serves all three verbs and gives delta and draws side by side.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._delta import delta_std_err, relative_curvature, scenario_moments
from ._design import CounterfactualData, Setting
from ._draws import cov_factor, simulate_coefficients
from ._errors import MarginsTypeError, MarginsValueError
from ._result import MarginsResult
from ._scenarios import Scenario, format_value, grid, scenario_label
from ._validate import (
    check_choice,
    check_count,
    check_level,
    check_seed,
    check_variable,
    make_rng,
    seed_attr,
)
from .adapters import ModelAdapter, adapter_for

SCALES = ("linear", "response")
METHODS = ("simulation", "delta")
AT_KINDS = ("overall", "mean")


def _versions() -> str:
    out = []
    for pkg in ("simmargins", "statsmodels", "numpy", "xarray", "numba"):
        try:
            out.append(f"{pkg}={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg}=unknown")
    return " ".join(out)


class Margins:
    """Predictive margins, average marginal effects and contrasts of a fitted model.

    Parameters
    ----------
    fit : statsmodels results
        A fitted MixedLM, OLS or WLS model (see ``adapters.supported_models()``).
    scale : {"linear", "response"}
        ``"linear"``: the linear predictor X·β (+offset); ``"response"``: h(X·β + offset).
    at : {"overall", "mean"} or dict
        Where the other covariates sit: each observed row then average (``"overall"``),
        the design's column means (``"mean"``), or values fixed for all rows (a dict).
    method : {"simulation", "delta"}
        Which inference is the headline. Both are always computed.
    n_sims : int
        Number of coefficient draws from N(β̂, V̂).
    level : float
        Confidence level of the intervals, in (0, 1).
    seed : int, numpy Generator or None
        Seed of the draws; the same seed gives the same draws.
    weights : str or array-like, optional
        Analysis weights for averaging over rows: a column of the data or N numbers.
    adapter : ModelAdapter, optional
        Required for array-interface fits, e.g.
        ``StatsmodelsMixedLMAdapter(fit, training_data=df)``.

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
    ) -> None:
        self.scale = check_choice("scale", scale, SCALES)
        self.method = check_choice("method", method, METHODS)
        self.n_sims = check_count("n_sims", n_sims, 2)
        self.level = check_level(level)
        self.seed = check_seed(seed)
        if adapter is not None and not isinstance(adapter, ModelAdapter):
            raise MarginsTypeError(
                f"adapter: expected a simmargins adapter (e.g. StatsmodelsMixedLMAdapter), "
                f"got {type(adapter).__name__}"
            )
        self.adapter: ModelAdapter = adapter if adapter is not None else adapter_for(fit)
        self._cf = CounterfactualData(
            self.adapter.data, self.adapter.variables, self.adapter.design, self.adapter.offset
        )
        self.at_kind, base = self._check_at(at)
        self._cf.base_values = base
        self.at = at
        self._weights = self._check_weights(weights)
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

    def _check_weights(self, weights: Any) -> np.ndarray:
        n = len(self.adapter.data)
        if weights is None:
            return np.ones(n)
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
        return w

    # -- draws ------------------------------------------------------------------------------
    @property
    def coefficient_draws(self) -> xr.DataArray:
        """The session's coefficient draws, dims ``(draw, coef)``; drawn once, then reused."""
        if self._coef_draws is None:
            self._coef_draws = simulate_coefficients(
                self.adapter.params,
                self._cov_factor,
                self.n_sims,
                make_rng(self.seed),
                self.adapter.coef_names,
            )
        return self._coef_draws

    @property
    def _cov_factor(self) -> np.ndarray:
        if self._factor is None:
            self._factor = cov_factor(self.adapter.cov)
        return self._factor

    # -- verbs ------------------------------------------------------------------------------
    def predict(self, atexog: Mapping[str, Any] | None = None) -> MarginsResult:
        """Predictive margins, one per combination of the values in ``atexog``.

        ``predict()`` alone is the average prediction over the observed rows.
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
        return self._evaluate(settings, np.eye(len(settings)), labels, coords, "predict")

    def dydx(self, variables: str | Sequence[str]) -> MarginsResult:
        """Average marginal effects.

        Numeric variables get a central finite-difference derivative (float64, integer
        columns cast first); categorical ones (strings, categories, bools, ``C()``) give
        each level minus the reference level.
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
        settings: list[Setting] = []
        rows: list[dict[int, float]] = []
        labels: list[str] = []
        terms: list[str] = []
        for name in names:
            check_variable("dydx", name, self._cf.known)
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
                j = len(settings)
                pair = [Setting(perturb=(name, eps)), Setting(perturb=(name, -eps))]
                try:
                    for st in pair:
                        self._cf.design(st)
                except MarginsValueError:
                    # e.g. bs() refuses values beyond its outer knots: step inside the range
                    pair = [
                        Setting(perturb=(name, eps), clip=True),
                        Setting(perturb=(name, -eps), clip=True),
                    ]
                settings += pair
                rows.append({j: 0.5 / eps, j + 1: -0.5 / eps})
                labels.append(name)
                terms.append(name)
        W = np.zeros((len(rows), len(settings)))
        for r, entries in enumerate(rows):
            for j, v in entries.items():
                W[r, j] = v
        return self._evaluate(settings, W, labels, {"term": terms}, "dydx")

    def contrasts(
        self,
        scenarios: Sequence[Mapping[str, Any]],
        contrasts: pd.DataFrame | np.ndarray | Sequence[Any],
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
        return self._evaluate(settings, W, labels, {}, "contrasts")

    # -- the one evaluation path ------------------------------------------------------------
    def _evaluate(
        self,
        settings: list[Setting],
        W: np.ndarray,
        labels: list[str],
        coords: dict[str, list[Any]],
        quantity: str,
    ) -> MarginsResult:
        ad = self.adapter
        link = ad.link if self.scale == "response" else _identity()
        beta = ad.params
        B = self.coefficient_draws.to_numpy()
        n_set = len(settings)
        values = np.empty(n_set)
        grads = np.empty((n_set, beta.shape[0]))
        hessians: list[np.ndarray | None] = []
        offsets_bar = np.empty(n_set)
        mu_draws = None if link.is_identity else np.empty((B.shape[0], n_set))
        for j, setting in enumerate(settings):
            X, off = self._cf.design(setting)
            off = np.zeros(X.shape[0]) if off is None else off
            w = self._weights
            scale = self._cf.row_scale(setting)
            # rows with their own difference step carry it as a weight: μ = Σ w·r·h / Σ w
            ratio = 1.0
            if scale is not None:
                ratio = float((w * scale).sum() / w.sum())
                w = w * scale
            if self.at_kind == "mean":
                wn = w / w.sum()
                X, off, w = (wn @ X)[None, :], np.array([wn @ off]), np.ones(1)
            mom = scenario_moments(X, off, w, beta, link)
            values[j], grads[j] = ratio * mom.value, ratio * mom.grad
            hessians.append(None if mom.hess is None else ratio * mom.hess)
            offsets_bar[j] = ratio * float((w / w.sum()) @ off)
            if mu_draws is not None:
                from ._kernels import margin_draws  # numba loads only for nonlinear links

                mu_draws[:, j] = ratio * margin_draws(X, off, w, B, link.code, link.power)
        G = W @ grads
        estimate = W @ values
        if mu_draws is None:
            # identity link: μ_s(β) = x̄_s·β + ō_s, so θ = Gβ + Wō — no pass over rows per draw
            theta = B @ G.T + (W @ offsets_bar)[None, :]
            hess_rows: list[np.ndarray | None] = [None] * W.shape[0]
        else:
            theta = mu_draws @ W.T
            hess_rows = [
                sum(
                    (W[r, j] * hessians[j] for j in range(n_set) if W[r, j] != 0),
                    np.zeros((beta.shape[0],) * 2),
                )
                for r in range(W.shape[0])
            ]
        se_delta = delta_std_err(G, ad.cov)
        kappa = relative_curvature(G, hess_rows, self._cov_factor)
        return MarginsResult(
            self._dataset(labels, coords, estimate, se_delta, kappa, theta, G, quantity)
        )

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
        ds = xr.Dataset(
            {
                "estimate": ("label", estimate),
                "delta_std_err": ("label", se_delta),
                "kappa": ("label", kappa),
                "draws": (("draw", "label"), theta),
                "gradient": (("label", "coef"), G),
            },
            coords={**label_coords, "draw": np.arange(theta.shape[0]), "coef": list(ad.coef_names)},
            attrs={
                "method": self.method,
                "draws_kind": "simulation",
                "level": self.level,
                "seed": seed_attr(self.seed),
                "n_sims": self.n_sims,
                "scale": self.scale,
                "at": self.at if isinstance(self.at, str) else repr(dict(self.at)),
                "quantity": quantity,
                "nobs": len(ad.data),
                "model_class": ad.model_class,
                "formula": ad.formula or "",
                "link": ad.link.name,
                "versions": _versions(),
                "grid_columns": grid_cols,
            },
        )
        return ds


def _identity() -> Any:
    from ._links import IDENTITY_LINK

    return IDENTITY_LINK
