"""Discrete-choice and count models (``statsmodels.discrete.discrete_model``).

``Logit`` and ``Probit`` model P(y = 1) = h(X·β + offset); ``Poisson`` and
``NegativeBinomial`` model E[y] = exp(X·β + offset + log exposure). NegativeBinomial's
params also hold the dispersion ``alpha``, which the mean does not use: the fixed effects
are the exog coefficients, and β̂ and V̂ are taken from params and ``cov_params()`` by
those names, never by position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..engine.links import LOG_LINK, LOGIT_LINK, PROBIT_LINK, InverseLink
from ..resampling.problem import DISCRETE_CHAIN
from ._glmlike import GLMLikeAdapter

_LINKS = {
    "Logit": LOGIT_LINK,
    "Probit": PROBIT_LINK,
    "Poisson": LOG_LINK,
    "NegativeBinomial": LOG_LINK,
}


class StatsmodelsDiscreteAdapter(GLMLikeAdapter):
    """Adapter for Logit, Probit, Poisson and NegativeBinomial fits.

    Offsets and exposure work as for :class:`StatsmodelsGLMAdapter`: each row keeps its
    own, and ``{"offset": o}`` / ``{"exposure": t}`` settings replace them.

    Parameters
    ----------
    fit : discrete results
        The fitted model.
    training_data : pandas.DataFrame, optional
        Required for the array interface (``sm.Logit(y, X)``): the frame whose columns are
        named like ``X``'s.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.formula.api as smf
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=300)})
    >>> df["y"] = rng.negative_binomial(2, 2 / (2 + np.exp(0.5 + 0.4 * df["x"])))
    >>> fit = smf.negativebinomial("y ~ x", df).fit(disp=0)
    >>> list(fit.params.index)
    ['Intercept', 'x', 'alpha']
    >>> StatsmodelsDiscreteAdapter(fit).coef_names
    ('Intercept', 'x')
    """

    model_names = tuple(_LINKS)
    refit_chain = DISCRETE_CHAIN

    def _inverse_link(self) -> InverseLink:
        return _LINKS[self.model_class]

    def _param_names(self) -> list[str]:
        """Names of every parameter: the exog columns, then extras such as ``alpha``."""
        return [str(n) for n in self.model.exog_names]

    def _exog_names(self) -> list[str]:
        return self._param_names()[: int(self.model.exog.shape[1])]

    def _fe_params(self) -> Any:
        params = self.fit.params
        if not isinstance(params, pd.Series):
            params = pd.Series(np.asarray(params, dtype=np.float64), index=self._param_names())
        return params.loc[self._exog_names()]

    def _cov_params(self) -> Any:
        cov = self.fit.cov_params()
        if not isinstance(cov, pd.DataFrame):
            names = self._param_names()
            cov = pd.DataFrame(np.asarray(cov, dtype=np.float64), index=names, columns=names)
        return cov

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> Any:
        """As for every adapter, with the optimiser's progress report silenced.

        Discrete models print a convergence message per fit unless ``disp=0``.
        """
        problem = super().refit_problem(clusters, warm)
        problem.fit_kwargs = {**problem.fit_kwargs, "disp": 0}
        return problem
