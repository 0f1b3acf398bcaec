"""Linear mixed models (``statsmodels.regression.mixed_linear_model.MixedLM``).

Population-averaged quantities integrate the random effects out; with the identity link
that leaves X·β, so only the fixed effects and their covariance block matter.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from ..resampling.problem import MIXEDLM_CHAIN, RefitProblem
from ._base import StatsmodelsAdapter

if TYPE_CHECKING:  # the parametric module loads numba and scipy.optimize: not at import
    from ..resampling.lmm_optimum import OptimumCheck
    from ..resampling.parametric import SimulationModel


#: the optimum check of each fit seen, for as long as the fit lives
_CHECKED: weakref.WeakKeyDictionary[Any, OptimumCheck | None] = weakref.WeakKeyDictionary()


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

    def group_codes(self) -> np.ndarray:
        """Position of each row's group in ``model.group_labels`` (0..G-1)."""
        model = self.model
        codes = np.empty(int(model.endog.shape[0]), dtype=np.intp)
        for pos, label in enumerate(model.group_labels):
            codes[np.asarray(model.row_indices[label])] = pos
        return codes

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> RefitProblem:
        """Cluster bootstrap over the model's groups: random slopes (``exog_re``) and
        variance components travel with their group; REML/ML as in the original fit."""
        model = self.model
        # with only variance components statsmodels keeps no exog_re (k_re = 0); passing
        # one would add a random intercept the original model does not have
        rows = (
            {"exog_re": np.asarray(model.exog_re, dtype=np.float64)}
            if getattr(model, "exog_re", None) is not None
            else {}
        )
        return RefitProblem(
            model_cls=type(model),
            endog=np.asarray(model.endog, dtype=np.float64),
            exog=np.asarray(model.exog, dtype=np.float64),
            row_arrays=rows,
            init_kwargs={"use_sqrt": model.use_sqrt, "missing": "none"},
            # the results know how they were fitted; the model only remembers its last fit
            fit_kwargs={"reml": bool(getattr(self.fit, "reml", getattr(model, "reml", True)))},
            chain=MIXEDLM_CHAIN,
            start_params=self.fit.params_object if warm else None,
            fe_positions=np.arange(len(self.coef_names)),
            clusters=self.group_codes(),
            mixed=True,
            vc=model.exog_vc if getattr(model, "k_vc", 0) else None,
        )

    def optimum_check(self) -> OptimumCheck | None:
        """Whether the fit reached the optimum of its (RE)ML criterion (None where the fast
        engine cannot say: variance components); computed once per fit, however many
        sessions are opened on it."""
        from ..resampling.lmm_optimum import check_optimum

        try:
            return _CHECKED[self.fit]
        except (KeyError, TypeError):  # TypeError: a fit that takes no weak reference
            pass
        found = check_optimum(self.refit_problem(None))
        with contextlib.suppress(TypeError):
            _CHECKED[self.fit] = found
        return found

    def simulation_model(self) -> SimulationModel:
        """The fitted model as the parametric bootstrap simulates from it: X β̂, the groups,
        σ̂², the random-effects design and Ψ̂ (``fit.cov_re``), the variance components'
        designs and variances (``fit.vcomp``), all on the fit's own rows."""
        from ..resampling.parametric import SimulationModel

        model, fit = self.model, self.fit
        exog = np.asarray(model.exog, dtype=np.float64)
        q = int(getattr(model, "k_re", 0))
        vc_mats: list[list[np.ndarray]] = []
        vcomp = np.zeros(0)
        if getattr(model, "k_vc", 0):
            vc_mats = [[np.asarray(m, dtype=np.float64) for m in ms] for ms in model.exog_vc.mats]
            vcomp = np.asarray(fit.vcomp, dtype=np.float64)
        return SimulationModel(
            mean=exog @ np.asarray(self.params, dtype=np.float64),
            codes=self.group_codes(),
            scale=float(fit.scale),
            exog_re=np.asarray(model.exog_re, dtype=np.float64) if q else None,
            cov_re=np.asarray(fit.cov_re, dtype=np.float64).reshape(q, q),
            vc_mats=vc_mats,
            vcomp=vcomp,
            cov_fe=np.asarray(self.cov, dtype=np.float64),
        )
