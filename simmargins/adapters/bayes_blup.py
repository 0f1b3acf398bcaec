"""Cluster-specific margins of a Bayesian mixed GLM: each row at its cluster's posterior mean.

``random_effects="blup"``: θ = (β, u) with û the posterior means of every random effect
(``fit.random_effects()["Mean"]``) and the covariance of θ the posterior approximation's
block for them (MAP: the inverse Hessian, so β and u are correlated; VB: mean-field
variances). Each row's design is (x, its z in its clusters' columns), so h(X·θ) is the
prediction at the row's own clusters' effects and every verb works unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from .bayes_mixed import StatsmodelsBayesMixedGLMAdapter, _OnBase

#: refuse more random effects than this (the design is dense: N × (K + q))
MAX_RANDOM_EFFECTS = 2000


class BayesBLUPAdapter(_OnBase):
    """A Bayesian mixed GLM adapter whose coefficients include every random effect.

    Parameters
    ----------
    base : StatsmodelsBayesMixedGLMAdapter
        The conditional adapter of the fit.
    """

    def __init__(self, base: Any) -> None:
        if not isinstance(base, StatsmodelsBayesMixedGLMAdapter):
            raise MarginsTypeError(
                "random_effects: this 'blup' adapter needs the adapter of a "
                f"BinomialBayesMixedGLM or PoissonBayesMixedGLM fit, got {type(base).__name__}"
            )
        model, fit = base.model, base.fit
        q = int(model.k_vc)
        if q > MAX_RANDOM_EFFECTS:
            raise MarginsValueError(
                f"random_effects: 'blup' makes the {q} random effects extra coefficients, more "
                f"than {MAX_RANDOM_EFFECTS}; use random_effects='integrate' or 'zero'"
            )
        self._share(base)
        vc_names = base.posterior_names[len(base.coef_names) + len(base.vcp_names) :]
        self.coef_names: tuple[str, ...] = (*base.coef_names, *vc_names)
        means = fit.random_effects()["Mean"].to_numpy(dtype=np.float64)
        self.params: np.ndarray = np.concatenate([base.params, means])
        cov = base.posterior_cov(self.coef_names).to_numpy()
        self.cov: np.ndarray = np.ascontiguousarray((cov + cov.T) / 2.0)
        self._lookup = [pd.Index(list(comp.levels)) for comp in base.components]

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """(x, z in the row's clusters' columns): N × (K + q)."""
        X = self.base.design(frame)
        n, k = X.shape
        out = np.zeros((n, k + int(self.model.k_vc)))
        out[:, :k] = X
        rows = np.arange(n)
        for comp, index in zip(self.base.components, self._lookup, strict=True):
            if comp.group not in frame.columns:
                raise MarginsValueError(
                    f"random_effects: 'blup' needs each row's group (column {comp.group!r}) "
                    "to pick its cluster's random effects; the rows given do not have it"
                )
            pos = index.get_indexer(np.asarray(frame[comp.group], dtype=object))
            if np.any(pos < 0):
                unseen = sorted({str(v) for v, p in zip(frame[comp.group], pos, strict=True)
                                 if p < 0})  # fmt: skip
                raise MarginsValueError(
                    f"random_effects: 'blup' predicts for the fit's own clusters; "
                    f"{comp.group!r} has groups the fit never saw: {', '.join(unseen[:5])}"
                )
            z = np.ones(n) if comp.slope is None else frame[comp.slope].to_numpy(np.float64)
            out[rows, k + comp.columns[pos]] = z
        return out
