"""Generalized estimating equations (``statsmodels.genmod.generalized_estimating_equations.GEE``).

A GEE models the population-averaged mean E[y] = h(X·β + offset + log exposure) directly,
so its margins are averages of h over rows exactly as for a GLM: same families, same links,
same offsets. What differs is the covariance and the resampling unit:

- V̂ is the one the fit was made with: robust (sandwich) by default, ``naive`` or
  ``bias_reduced`` when the user fitted with ``fit(cov_type=...)``; statsmodels'
  ``cov_params()`` already returns it.
- The bootstrap resamples whole groups (the GEE's clusters), gives each drawn copy its own
  label, and refits the same family, link, working correlation and offsets.
"""

from __future__ import annotations

import copy

import numpy as np

from ..engine.links import InverseLink
from ..resampling.problem import RefitProblem
from ._glmlike import GLMLikeAdapter
from .glm import inverse_link_of_family


class StatsmodelsGEEAdapter(GLMLikeAdapter):
    """Adapter for GEE fits: every family and link statsmodels ships, any working correlation.

    Parameters
    ----------
    fit : GEEResults
        The fitted GEE.
    training_data : pandas.DataFrame, optional
        Required for the array interface (``sm.GEE(y, X, groups=...)``): the frame whose
        columns are named like ``X``'s.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.api as sm, statsmodels.formula.api as smf
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(30), 5), "x": rng.normal(size=150)})
    >>> df["y"] = rng.poisson(np.exp(0.2 + 0.4 * df["x"]))
    >>> fit = smf.gee("y ~ x", groups="g", data=df, family=sm.families.Poisson()).fit()
    >>> ad = StatsmodelsGEEAdapter(fit)
    >>> ad.link.name, ad.covariance
    ('log', 'robust')
    """

    model_names = ("GEE",)
    # GEE keeps the binomial trials of its family in the init keywords but does not take
    # them back as a constructor argument
    _NOT_ROW_ARGS = GLMLikeAdapter._NOT_ROW_ARGS | {"n_trials"}

    def _inverse_link(self) -> InverseLink:
        return inverse_link_of_family(self.model.family, "GEE")

    @property
    def covariance(self) -> str:
        """The covariance the fit was made with: ``robust``, ``naive`` or ``bias_reduced``."""
        return str(getattr(self.fit, "cov_type", "robust"))

    def group_codes(self) -> np.ndarray:
        """Each row's cluster as a code 0..G-1, in order of first appearance."""
        groups = np.asarray(self.model.groups)
        _, first, codes = np.unique(groups, return_index=True, return_inverse=True)
        # renumber by first appearance so codes do not depend on how labels sort
        order = np.argsort(np.argsort(first))
        return np.asarray(order[codes.ravel()], dtype=np.intp)

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> RefitProblem:
        """A cluster bootstrap over the GEE's groups (``cluster=`` may name coarser ones).

        The working-correlation object is stripped of its fitted model and copied afresh
        for every replicate, so replicates never share its state.
        """
        problem = super().refit_problem(clusters, warm)
        if problem.clusters is None:
            problem.clusters = self.group_codes()
        problem.relabel = "groups"
        cov_struct = problem.init_kwargs.get("cov_struct")
        if cov_struct is not None:
            model = getattr(cov_struct, "model", None)
            memo = {id(model): None} if model is not None else {}
            problem.init_kwargs["cov_struct"] = copy.deepcopy(cov_struct, memo)
            problem.fresh = ("cov_struct",)
        if warm:
            problem.fit_kwargs = {**problem.fit_kwargs}
            problem.start_params = np.asarray(self.fit.params, dtype=float)
        return problem
