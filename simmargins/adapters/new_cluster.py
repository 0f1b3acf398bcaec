"""Predictions for a new cluster of a linear mixed model: its random effects as coefficients.

``Margins(fit, random_effects="new")`` asks what the model says about a cluster it has not
seen: every row of the data (or of ``newdata=``) is put in one new cluster whose random
effects u_new ~ N(0, Ψ̂) are unknown. The coefficient vector is θ = (β, u_new) with

    θ̂ = (β̂, 0),    Cov(θ) = blockdiag(V̂, Ψ̂),

V̂ the fixed effects' covariance (``cov_params()``'s block) and Ψ̂ the fitted random-effects
covariance (``fit.cov_re``); each row's design is (x, z), z its random-effects design. A
margin θ = Σ wᵢ(xᵢβ + zᵢu_new)/Σ wᵢ = x̄β + z̄u_new then has

- estimate x̄β̂: for a linear mixed model the mean over the random-effects distribution is
  the fixed part, so the same as ``random_effects="zero"``;
- variance x̄V̂x̄ᵀ + z̄Ψ̂z̄ᵀ: the estimation uncertainty plus the spread of new clusters, so its
  interval is a *prediction interval for the new cluster's mean* (its expected response
  over the rows averaged, given u_new). AMEs and contrasts follow the same way: the AME of
  a variable with a random slope adds that slope's variance.

The residual variance σ̂² is not included: it belongs to single observations, not to a
cluster's mean, and averages away over many observations. For one new observation's
prediction interval add it: √(SE² + σ̂²), σ̂² recorded as the adapter's (and the result's)
``residual_variance``. The variance parameters are treated as known (as with ``"zero"``),
unless ``df="satterthwaite"``: then the interval is t with the Satterthwaite df of the whole
variance, whose gradient includes Ψ̂'s (:func:`.lmm_df.satterthwaite`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.formula import Variable
from ..engine.links import IDENTITY_LINK, InverseLink
from .blup import RandomEffectsDesign


class StatsmodelsNewClusterAdapter(RandomEffectsDesign):
    """A MixedLM adapter whose coefficients are β and one new cluster's random effects.

    Parameters
    ----------
    base : StatsmodelsMixedLMAdapter
        The adapter of a linear mixed model with random intercepts and/or random slopes
        (``re_formula``) and no variance components.

    Examples
    --------
    >>> import statsmodels.formula.api as smf, simmargins
    >>> df = simmargins.sleepstudy_data()
    >>> fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()
    >>> ad = StatsmodelsNewClusterAdapter(simmargins.adapters.adapter_for(fit))
    >>> ad.coef_names, ad.cov.shape
    (('Intercept', 'Days', 'new cluster:Intercept', 'new cluster:Days'), (4, 4))
    """

    offset_keys: tuple[str, ...] = ()
    _spec = None  # the design is not the formula spec's: every scenario is built in full

    def __init__(self, base: Any) -> None:
        if getattr(base, "model_class", None) != "MixedLM" or not hasattr(base, "model"):
            raise MarginsTypeError(
                "random_effects: new-cluster predictions need a statsmodels MixedLM adapter, "
                f"got {type(base).__name__}"
            )
        model, fit = base.model, base.fit
        if getattr(model, "k_vc", 0):
            raise MarginsValueError(
                "random_effects: 'new' covers random intercepts and random slopes "
                "(re_formula); this MixedLM also has variance components (vc_formula)"
            )
        q = int(getattr(model, "k_re", 0))
        if q == 0:
            raise MarginsValueError("random_effects: this MixedLM has no random effects")
        self.base = base
        self.fit, self.model = fit, model
        self.model_class: str = "MixedLM"
        self.formula: str | None = base.formula
        self.link: InverseLink = IDENTITY_LINK
        self.n_random = q
        self.data: pd.DataFrame = base.data
        self.variables: dict[str, Variable] = dict(base.variables)
        self._z_sources = self._z_columns()
        self._check_z()
        re_names = ["Intercept" if s == ("one", "") else s[1] for s in self._z_sources]
        self.coef_names: tuple[str, ...] = (
            *base.coef_names,
            *(f"new cluster:{r}" for r in re_names),
        )
        psi = np.asarray(fit.cov_re, dtype=np.float64).reshape(q, q)
        self.params: np.ndarray = np.concatenate([np.asarray(base.params, np.float64), np.zeros(q)])
        self.cov: np.ndarray = self.extended_cov(
            (psi + psi.T) / 2.0, float(fit.scale), np.asarray(base.cov, dtype=np.float64)
        )
        #: σ̂², not part of ``cov``: add it for a single new observation's interval
        self.residual_variance = float(fit.scale)

    def extended_cov(self, psi: np.ndarray, sigma2: float, fixed: np.ndarray) -> np.ndarray:
        """The covariance of (β, u_new) at other variance parameters: blockdiag(fixed, Ψ)
        (``fixed`` the fixed effects' covariance there; for Satterthwaite df)."""
        k, q = fixed.shape[0], psi.shape[0]
        out = np.zeros((k + q, k + q))
        out[:k, :k] = fixed
        out[k:, k:] = psi
        return out

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """(x, z): N × (K + q), every row in the one new cluster."""
        X = self.base.design(frame)
        return np.column_stack([X, self._z(frame, X)])

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None:
        return None

    @property
    def nobs(self) -> int:
        return len(self.data)
