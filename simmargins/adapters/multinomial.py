"""Multi-outcome models: ``MNLogit`` and ``OrderedModel`` (one margin per outcome category).

The design is the fit's K exog columns, built through its formula spec as for every other
family; the parameters are more than K: MNLogit has one coefficient vector per
non-baseline outcome (flattened equation-major, statsmodels' ``cov_params()`` order, named
``"<endog>=<outcome>:<column>"``), OrderedModel has β then the J − 1 threshold parameters
(its own names, e.g. ``"1/2"``). The shared base checks the rows and the spec against the
exog columns first; the full parameter vector replaces them after. The probabilities, their
derivatives and the draws are in :mod:`simmargins.engine.multinomial`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsValueError
from ..engine.formula import build_design
from ..engine.links import (
    CAUCHY_LINK,
    CLOGLOG_LINK,
    LOGIT_LINK,
    LOGLOG_LINK,
    PROBIT_LINK,
    InverseLink,
)
from ..engine.multinomial import MULTINOMIAL, ORDINAL, OutcomeModel
from ._base import StatsmodelsAdapter, align_cov, check_finite_fit

#: the CDFs an OrderedModel may use, recognised by their values (a user's scipy
#: distribution such as statsmodels' documented CLogLog class has no name to go by)
_CDFS = (PROBIT_LINK, LOGIT_LINK, CLOGLOG_LINK, LOGLOG_LINK, CAUCHY_LINK)
_PROBE = np.linspace(-4.0, 4.0, 17)


class MultiOutcomeAdapter(StatsmodelsAdapter):
    """Shared base: the exog view for the base checks, then the full parameter vector.

    Attributes
    ----------
    outcome_model : OutcomeModel
        Kind, K, J (and the CDF of an ordinal model) for the engine.
    outcomes : tuple of str
        The outcome categories, in the model's order.
    exog_names : tuple of str
        The K design columns (``coef_names`` holds all P parameters).
    """

    outcome_model: OutcomeModel
    outcomes: tuple[str, ...]

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        self._viewing_exog = True
        super().__init__(fit, training_data)
        self._viewing_exog = False
        self.exog_names: tuple[str, ...] = self.coef_names
        names, params, cov = self._all_params()
        self.coef_names, self.params = names, params
        self.cov = align_cov(cov, names)
        check_finite_fit(self)
        self.outcomes = self._outcomes()
        self.outcome_model = self._outcome_model()
        self.link = self._result_link()

    # the base sees the K exog columns (the spec and row checks compare designs)
    def _fe_params(self) -> Any:
        names = [str(n) for n in self.model.exog_names][: int(self.model.exog.shape[1])]
        return pd.Series(np.zeros(len(names)), index=names)

    def _cov_params(self) -> Any:
        k = int(self.model.exog.shape[1])
        names = list(self._fe_params().index)
        return pd.DataFrame(np.eye(k), index=names, columns=names)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """Design matrix of ``frame``: the K exog columns."""
        if self._spec is not None:
            return build_design(self._spec, frame)
        names = self.coef_names if self._viewing_exog else self.exog_names
        cols = [
            frame[n].to_numpy(dtype=np.float64) if n in frame.columns else np.ones(len(frame))
            for n in names
        ]
        return np.ascontiguousarray(np.column_stack(cols))

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> Any:
        raise MarginsValueError(
            f"method: bootstrap refits of a {self.model_class} are not supported yet; use "
            "method='simulation' or 'delta'"
        )

    # -- hooks of each family -------------------------------------------------------------
    def _all_params(self) -> tuple[tuple[str, ...], np.ndarray, pd.DataFrame]:
        raise NotImplementedError

    def _outcomes(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _outcome_model(self) -> OutcomeModel:
        raise NotImplementedError

    def _result_link(self) -> InverseLink:
        raise NotImplementedError


def _name_only(link: InverseLink, name: str) -> InverseLink:
    """A link recorded in results under ``name`` (the evaluation never calls it)."""
    return dataclasses.replace(link, name=name)


class StatsmodelsMNLogitAdapter(MultiOutcomeAdapter):
    """Adapter for ``MNLogit`` fits: P(y = j) by the softmax of J − 1 linear predictors.

    Examples
    --------
    >>> import statsmodels.api as sm, statsmodels.formula.api as smf
    >>> df = sm.datasets.anes96.load_pandas().data
    >>> fit = smf.mnlogit("PID ~ age + educ", df).fit(disp=0)
    >>> ad = StatsmodelsMNLogitAdapter(fit)
    >>> ad.outcomes[:3], ad.coef_names[:2], len(ad.coef_names)
    (('0', '1', '2'), ('PID=1:Intercept', 'PID=1:age'), 18)
    """

    model_names = ("MNLogit",)

    def _all_params(self) -> tuple[tuple[str, ...], np.ndarray, pd.DataFrame]:
        params = np.asarray(self.fit.params, dtype=np.float64)  # (K, M)
        cov = self.fit.cov_params()
        ynames = self._outcomes()[1:]
        names = tuple(
            f"{self._endog_name()}={y}:{x}" for y in ynames for x in self.exog_names
        )
        cov = pd.DataFrame(np.asarray(cov, dtype=np.float64), index=names, columns=names)
        return names, params.ravel(order="F"), cov

    def _endog_name(self) -> str:
        name = self.model.endog_names
        return str(name if isinstance(name, str) else "y")

    def _outcomes(self) -> tuple[str, ...]:
        ymap = getattr(self.model, "_ynames_map", None) or {}
        return tuple(str(ymap.get(j, j)) for j in range(int(self.model.J)))

    def _outcome_model(self) -> OutcomeModel:
        return OutcomeModel(MULTINOMIAL, len(self.exog_names), int(self.model.J))

    def _result_link(self) -> InverseLink:
        return _name_only(LOGIT_LINK, "softmax")


class StatsmodelsOrderedModelAdapter(MultiOutcomeAdapter):
    """Adapter for ``OrderedModel`` fits: P(y = j) = F(c_j − x·β) − F(c_{j−1} − x·β).

    F is the model's ``distr``: ``"probit"``, ``"logit"``, or a scipy distribution whose
    CDF is one of the complementary log-log, log-log or Cauchy CDFs (recognised by value).

    Examples
    --------
    >>> import statsmodels.api as sm
    >>> from statsmodels.miscmodels.ordinal_model import OrderedModel
    >>> df = sm.datasets.anes96.load_pandas().data
    >>> fit = OrderedModel.from_formula("PID ~ age + educ", df, distr="probit").fit(
    ...     method="bfgs", disp=0)
    >>> ad = StatsmodelsOrderedModelAdapter(fit)
    >>> ad.exog_names, ad.coef_names[2:4], ad.link.name
    (('age', 'educ'), ('0.0/1.0', '1.0/2.0'), 'ordinal probit')
    """

    model_names = ("OrderedModel",)

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        offset = getattr(fit.model, "offset", None)
        if offset is not None and np.any(np.asarray(offset) != 0):
            raise MarginsValueError(
                "fit: OrderedModel fits with an offset are not supported yet; refit without "
                "offset= (or put the variable in the formula)"
            )
        super().__init__(fit, training_data)

    def _all_params(self) -> tuple[tuple[str, ...], np.ndarray, pd.DataFrame]:
        raw = self.fit.params
        names = [str(n) for n in self.model.exog_names]
        params = np.asarray(raw, dtype=np.float64)
        cov = self.fit.cov_params()
        cov = pd.DataFrame(np.asarray(cov, dtype=np.float64), index=names, columns=names)
        return tuple(names), params, cov

    def _outcomes(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.model.labels)

    def _cdf(self) -> InverseLink:
        distr = self.model.distr
        values = np.asarray(distr.cdf(_PROBE), dtype=np.float64)
        for link in _CDFS:
            if np.allclose(values, link.h(_PROBE), rtol=0.0, atol=1e-12):
                return link
        raise MarginsValueError(
            f"fit: this OrderedModel's distr ({type(distr).__name__}) is not a CDF simmargins "
            "knows; supported are 'probit', 'logit' and scipy distributions with the "
            "complementary log-log, log-log or Cauchy CDF"
        )

    def _outcome_model(self) -> OutcomeModel:
        return OutcomeModel(ORDINAL, len(self.exog_names), len(self.outcomes), self._cdf())

    def _result_link(self) -> InverseLink:
        cdf = self.outcome_model.cdf
        assert cdf is not None
        return _name_only(cdf, f"ordinal {cdf.name}")
