"""OLS and WLS (``statsmodels.regression.linear_model``)."""

from __future__ import annotations

from ._base import StatsmodelsAdapter


class StatsmodelsOLSAdapter(StatsmodelsAdapter):
    """Adapter for OLS, WLS and GLS fits; the coefficient covariance honours ``cov_type``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.formula.api as smf
    >>> df = pd.DataFrame({"x": np.arange(10.0), "y": 2.0 * np.arange(10.0) + 1})
    >>> StatsmodelsOLSAdapter(smf.ols("y ~ x", df).fit()).coef_names
    ('Intercept', 'x')
    """

    model_names = ("OLS", "WLS", "GLS", "GLSAR")
