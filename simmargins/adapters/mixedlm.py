"""Linear mixed models (``statsmodels.regression.mixed_linear_model.MixedLM``).

Population-averaged quantities integrate the random effects out; with the identity link
that leaves X·β, so only the fixed effects and their covariance block matter.
"""

from __future__ import annotations

from typing import Any

from ._base import StatsmodelsAdapter


class StatsmodelsMixedLMAdapter(StatsmodelsAdapter):
    """Adapter for MixedLM fits: random intercepts, random slopes, variance components.

    Parameters
    ----------
    fit : MixedLMResults
        The fitted mixed model.
    training_data : pandas.DataFrame, optional
        Required when the model was built through the array interface
        (``sm.MixedLM(y, X, groups)``): the frame whose columns are named like ``X``'s.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.api as sm
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(np.arange(12), 5)})
    >>> df["y"] = 1 + 2 * df["x"] + rng.normal(size=12)[df["g"]] + rng.normal(size=60)
    >>> fit = sm.MixedLM(df["y"], sm.add_constant(df[["x"]]), groups=df["g"]).fit()
    >>> StatsmodelsMixedLMAdapter(fit, training_data=df).coef_names
    ('const', 'x')
    """

    model_names = ("MixedLM",)

    def _fe_params(self) -> Any:
        return self.fit.fe_params

    @property
    def group_column(self) -> str | None:
        """Name of the grouping column when the model was fitted from a formula."""
        name = getattr(self.model, "_group_name", None) or getattr(self.model, "group_name", None)
        return str(name) if name is not None else None
