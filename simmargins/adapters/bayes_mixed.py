"""Bayesian mixed GLMs (``statsmodels.genmod.bayes_mixed_glm``: Binomial and Poisson).

statsmodels fits E[y | u] = h(X·β + Z·u) with independent normal variance components
u_c ~ N(0, σ²_c), σ_c = exp(v_c), by a Laplace approximation at the posterior mode
(``fit_map``) or by mean-field variational Bayes (``fit_vb``). Both return a normal
approximation of the posterior: ``params`` (means: β, the log-SDs v, then every random
effect) and ``cov_params()`` (a full matrix for MAP, variances only for VB). The margins
take their draws from that approximation; which margin depends on ``random_effects=``:

- ``"zero"`` (this adapter): conditional on u = 0, h(X·β); θ = β.
- ``"integrate"`` (:class:`BayesIntegratedAdapter`, the session default): the
  population average E_u[h(X·β + Z·u)]; θ = (β, v) drawn jointly, so every draw
  integrates over its own σ.
- ``"blup"`` (:class:`.bayes_blup.BayesBLUPAdapter`): at each row's cluster's posterior
  mean û; θ = (β, u).

Each variance component must be a random intercept of a grouping column (``0 + C(g)``)
or a random slope of a numeric column within one (``0 + C(g):x``): the adapter reads
which from the fit's own ``exog_vc`` so that counterfactual rows can be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.evaluate_integrated import INTEGRATION_METHODS, IntegrationSpec
from ..engine.formula import Variable, formula_spec
from ..engine.links import InverseLink
from ..resampling.problem import RefitProblem
from ._glmlike import GLMLikeAdapter
from .glm import inverse_link_of_family

BAYES_MIXED_MODELS = ("BinomialBayesMixedGLM", "PoissonBayesMixedGLM")


@dataclass(frozen=True)
class Component:
    """One variance component: its name, the grouping column, and the slope column (None
    for a random intercept). ``levels[j]`` is the group value of its j-th random effect."""

    name: str
    group: str
    slope: str | None
    columns: np.ndarray  # positions of its random effects in exog_vc / vc_mean
    levels: tuple[Any, ...]


def _posterior(fit: Any) -> tuple[list[str], np.ndarray]:
    """Names and the full posterior covariance (VB's variances become a diagonal)."""
    model = fit.model
    n_vc = int(model.k_vc)
    vc_names = list(model.vc_names) if model.vc_names is not None else [
        f"VC_effect_{j}" for j in range(n_vc)
    ]
    names = [*map(str, model.fep_names), *map(str, model.vcp_names), *map(str, vc_names)]
    cov = np.asarray(fit._cov_params, dtype=np.float64)
    if cov.ndim == 1:
        cov = np.diag(cov)
    return names, cov


def _component(data: pd.DataFrame, name: str, Zc: np.ndarray, columns: np.ndarray) -> Component:
    """Recognise a random intercept or slope from its block of exog_vc, or refuse."""
    nonzero = Zc != 0
    if np.any(nonzero.sum(axis=1) > 1):
        raise MarginsValueError(
            f"random_effects: variance component {name!r} gives some rows more than one random "
            "effect; simmargins handles a random intercept (0 + C(g)) or a random slope "
            "(0 + C(g):x) per component"
        )
    which = np.where(nonzero.any(axis=1), np.argmax(nonzero, axis=1), -1)
    value = Zc.sum(axis=1)
    has = which >= 0  # a slope's rows with x = 0 carry no random effect
    n_used = len(np.unique(which[has]))
    group = None
    for col in data.columns:
        codes = pd.factorize(data[col])[0][has]
        if codes.size == 0 or codes.min() < 0:
            continue
        # the column identifies the groups when its values and the effects pair one to one
        pairs = np.unique(codes.astype(np.int64) * (Zc.shape[1] + 1) + which[has])
        if len(pairs) == len(np.unique(codes)) == n_used:
            group = str(col)
            break
    if group is None:
        raise MarginsValueError(
            f"random_effects: no column of the data identifies the groups of variance "
            f"component {name!r}; keep the grouping column in the frame the model was fitted on"
        )
    levels: list[Any] = [None] * Zc.shape[1]
    for v, j in zip(data[group].to_numpy()[has], which[has], strict=True):
        levels[j] = v
    slope = None
    if not np.allclose(value, 1.0):
        for col in data.columns:
            if pd.api.types.is_numeric_dtype(data[col]) and not pd.api.types.is_bool_dtype(
                data[col]
            ):
                if np.allclose(data[col].to_numpy(dtype=np.float64), value, rtol=1e-12, atol=0):
                    slope = str(col)
                    break
        if slope is None:
            raise MarginsValueError(
                f"random_effects: variance component {name!r} is neither a random intercept "
                "(0 + C(g)) nor a random slope of a numeric data column (0 + C(g):x), so its "
                "design cannot be rebuilt for counterfactual rows"
            )
    return Component(name, group, slope, columns, tuple(levels))


class StatsmodelsBayesMixedGLMAdapter(GLMLikeAdapter):
    """Adapter for ``BinomialBayesMixedGLM`` / ``PoissonBayesMixedGLM`` fits (MAP or VB).

    On its own it gives conditional margins (random effects at 0, ``random_effects="zero"``);
    ``Margins`` wraps it for ``"integrate"`` (the default) and ``"blup"``.

    Parameters
    ----------
    fit : BayesMixedGLMResults
        The result of ``fit_map()`` or ``fit_vb()``.
    training_data : pandas.DataFrame, optional
        Required for the array interface: the frame whose columns are named like ``exog``'s
        and which holds the grouping columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(20), 10), "x": rng.normal(size=200)})
    >>> df["y"] = (rng.uniform(size=200) < 0.5).astype(float)
    >>> fit = BinomialBayesMixedGLM.from_formula("y ~ x", {"g": "0 + C(g)"}, df).fit_vb()
    >>> ad = StatsmodelsBayesMixedGLMAdapter(fit)
    >>> ad.link.name, ad.fit_kind, [c.group for c in ad.components]
    ('logit', 'vb', ['g'])
    """

    model_names = BAYES_MIXED_MODELS

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        if not hasattr(fit, "vcp_mean") or not hasattr(fit, "_cov_params"):
            raise MarginsTypeError(
                f"fit: expected the result of fit_map() or fit_vb(), got {type(fit).__name__}"
            )
        names, self._full_cov = _posterior(fit)
        #: labels of the posterior's parameters: fixed effects, log-SDs, random effects
        self.posterior_names: tuple[str, ...] = tuple(names)
        super().__init__(fit, training_data)
        self.fit_kind = "vb" if np.ndim(fit._cov_params) == 1 else "map"
        self.vcp_names = tuple(str(n) for n in self.model.vcp_names)
        self.components = self._components()

    # -- the fit's parameters -------------------------------------------------------------
    def _model_formula(self) -> str | None:
        # statsmodels' from_formula copies the data (with its spec) but not the formula;
        # the spec is model.data.model_spec in 0.15, design_info in 0.14 (formula_spec)
        spec = formula_spec(self.model)
        if spec is None:
            return None
        rhs = spec.describe() if hasattr(spec, "describe") else " + ".join(spec.column_names)
        return f"{self.model.endog_names} ~ {rhs}"

    def _fe_params(self) -> Any:
        return pd.Series(np.asarray(self.fit.fe_mean), index=[str(n) for n in self.model.fep_names])

    def _cov_params(self) -> Any:
        return self.posterior_cov(self.model.fep_names)

    def posterior_cov(self, names: Any) -> pd.DataFrame:
        """The block of the posterior covariance for ``names`` (fixed effects, log-SDs
        ``vcp_names`` or random effects ``vc_names``)."""
        labels = list(self.posterior_names)
        frame = pd.DataFrame(self._full_cov, index=labels, columns=labels)
        wanted = [str(n) for n in names]
        return frame.loc[wanted, wanted]

    def _inverse_link(self) -> InverseLink:
        return inverse_link_of_family(self.model.family, self.model_class)

    # -- the random effects -----------------------------------------------------------------
    def _components(self) -> tuple[Component, ...]:
        Z = self.model.exog_vc
        Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z, dtype=np.float64)
        ident = np.asarray(self.model.ident)
        return tuple(
            _component(self.data, name, Z[:, ident == c], np.flatnonzero(ident == c))
            for c, name in enumerate(self.vcp_names)
        )

    def squared_z(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's Σ z² per variance component (N × C): 1 for a random intercept, x² for
        a random slope of x (read from ``frame``, so counterfactual values count)."""
        cols = []
        for comp in self.components:
            if comp.slope is None:
                cols.append(np.ones(len(frame)))
            else:
                cols.append(np.square(frame[comp.slope].to_numpy(dtype=np.float64)))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> RefitProblem:
        raise MarginsValueError(
            f"method: bootstrap refits of a {self.model_class} are not supported; its "
            "uncertainty comes from the posterior approximation (method='simulation' or "
            "'delta')"
        )


class _OnBase:
    """What a wrapper of a :class:`StatsmodelsBayesMixedGLMAdapter` shares with it."""

    _spec = None  # the design is not the formula spec's: every scenario is built in full

    def _share(self, base: StatsmodelsBayesMixedGLMAdapter) -> None:
        self.base = base
        self.fit, self.model = base.fit, base.model
        self.model_class: str = base.model_class
        self.formula: str | None = base.formula
        self.link: InverseLink = base.link
        self.data: pd.DataFrame = base.data
        self.variables: dict[str, Variable] = base.variables
        self.offset_keys = base.offset_keys

    @property
    def nobs(self) -> int:
        return len(self.data)

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.base.offset(frame)


class BayesIntegratedAdapter(_OnBase):
    """Population-averaged margins of a Bayesian mixed GLM: θ = (β, v), v the log-SDs.

    The design of a frame is (X, Z2), Z2 each row's Σ z² per variance component; the
    session evaluates it with :func:`simmargins.engine.evaluate_integrated.evaluate_integrated`
    (``integration`` says how). Names, link, rows and offsets are the base adapter's.

    Parameters
    ----------
    base : StatsmodelsBayesMixedGLMAdapter
        The conditional adapter of the fit.
    method : {"gauss-hermite", "qmc"}
        The rule for E over the random effects (each row's z·u is one normal variable, so
        the integral is one-dimensional per row); the log link has a closed form.
    rel_tol : float
        Integration error allowed, as a share of each quantity's delta SE.
    """

    def __init__(self, base: Any, method: str = "gauss-hermite", rel_tol: float = 1e-3) -> None:
        if not isinstance(base, StatsmodelsBayesMixedGLMAdapter):
            raise MarginsTypeError(
                "random_effects: 'integrate' needs the adapter of a BinomialBayesMixedGLM or "
                f"PoissonBayesMixedGLM fit, got {type(base).__name__}"
            )
        if method not in INTEGRATION_METHODS:
            raise MarginsValueError(
                f"method: {method!r} is not an integration rule; use one of "
                f"{', '.join(map(repr, INTEGRATION_METHODS))}"
            )
        if not (isinstance(rel_tol, float) and 0 < rel_tol < 1):
            raise MarginsValueError(f"rel_tol: expected a number in (0, 1), got {rel_tol!r}")
        self._share(base)
        self.coef_names: tuple[str, ...] = (*base.coef_names, *base.vcp_names)
        vcp = np.asarray(self.fit.vcp_mean, dtype=np.float64)
        self.params: np.ndarray = np.concatenate([base.params, vcp])
        cov = base.posterior_cov(self.coef_names).to_numpy()
        self.cov: np.ndarray = np.ascontiguousarray((cov + cov.T) / 2.0)
        self.integration = IntegrationSpec(
            len(base.coef_names), len(base.vcp_names), method, rel_tol
        )

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """(X, Z2): the fixed-effects design and each row's Σ z² per component."""
        return np.hstack([self.base.design(frame), self.base.squared_z(frame)])
