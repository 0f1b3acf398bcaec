"""Generalized linear models (``statsmodels.genmod.generalized_linear_model.GLM``).

A GLM's mean is h(X·β + offset + log exposure) with h the inverse of the family's link,
whatever the family, so the adapter needs the link only; the family is checked so that a
family defined outside statsmodels, which might map η to the mean some other way, is
refused rather than guessed. Links are matched by their exact class (``CLogLog`` subclasses
``Logit`` in statsmodels, so ``isinstance`` would pick the wrong one).

``freq_weights`` and ``var_weights`` enter the fit only, through β̂ and V̂. The average
over rows uses the session's ``weights=`` (equal weights by default); pass
``weights=fit.model.freq_weights`` to average as if each row were repeated.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.links import (
    CAUCHY_LINK,
    CLOGLOG_LINK,
    LOG_LINK,
    LOGIT_LINK,
    LOGLOG_LINK,
    PROBIT_LINK,
    InverseLink,
    power_link,
)
from ..resampling.problem import GLM_CHAIN
from ._glmlike import GLMLikeAdapter

_FIXED_LINKS = {
    "Logit": LOGIT_LINK,
    "Probit": PROBIT_LINK,
    "Cauchy": CAUCHY_LINK,
    "Log": LOG_LINK,
    "CLogLog": CLOGLOG_LINK,
    "LogLog": LOGLOG_LINK,
}
# η = μ^p: Identity (p = 1), Sqrt (1/2), InversePower (−1), InverseSquared (−2), Power(p)
_POWER_LINKS = ("Power", "Identity", "Sqrt", "InversePower", "InverseSquared")

SUPPORTED_LINKS = (
    "Logit",
    "Probit",
    "Cauchy",
    "Log",
    "CLogLog",
    "LogLog",
    "Identity",
    "Sqrt",
    "InversePower",
    "InverseSquared",
    "Power(p)",
    "CDFLink(dbn=scipy.stats.norm or scipy.stats.cauchy)",
)

SUPPORTED_FAMILIES = (
    "Binomial",
    "Gamma",
    "Gaussian",
    "InverseGaussian",
    "NegativeBinomial",
    "Poisson",
    "Tweedie",
)


@functools.cache
def _tables() -> tuple[dict[type, InverseLink], frozenset[type], dict[int, InverseLink], tuple]:
    """Link and family classes, looked up once (statsmodels and scipy.stats load lazily)."""
    from scipy import stats
    from statsmodels.genmod import families
    from statsmodels.genmod.families import links

    def classes(name: str) -> list[type]:
        # the class and statsmodels' deprecated lower-case alias of it (a subclass)
        found = (getattr(links, n, None) for n in (name, name.lower()))
        return [c for c in found if isinstance(c, type)]

    fixed = {c: value for name, value in _FIXED_LINKS.items() for c in classes(name)}
    power = frozenset(c for name in _POWER_LINKS for c in classes(name))
    cdf = {id(stats.norm): PROBIT_LINK, id(stats.cauchy): CAUCHY_LINK}
    fams = tuple(getattr(families, name) for name in SUPPORTED_FAMILIES)
    return fixed, power, cdf, fams


def link_for(link: Any) -> InverseLink:
    """Our inverse link (h, h′, h″ and kernel code) for a statsmodels link object.

    Examples
    --------
    >>> from statsmodels.genmod.families import links
    >>> link_for(links.CLogLog()).name
    'cloglog'
    >>> link_for(links.Power(1.0)).is_identity
    True

    Raises
    ------
    TypeError
        For a link class this adapter does not know, naming the ones it does.
    """
    from statsmodels.genmod.families import links

    fixed, power_classes, cdf, _ = _tables()
    cls = type(link)
    if cls in fixed:
        return fixed[cls]
    if cls in power_classes:
        power = float(link.power)
        if power == 0.0 or not np.isfinite(power):
            raise MarginsValueError(f"link: Power(power={power!r}) has no inverse; use Log")
        return power_link(power)
    if cls is links.CDFLink and id(getattr(link, "dbn", None)) in cdf:
        return cdf[id(link.dbn)]
    raise MarginsTypeError(
        f"link: the GLM adapter does not know the {cls.__module__}.{cls.__name__} link; "
        f"supported links are {', '.join(SUPPORTED_LINKS)}"
    )


def inverse_link_of_family(family: Any, adapter: str = "GLM") -> InverseLink:
    """The inverse link of a statsmodels family (GLM and GEE), refusing unknown families.

    A family defined outside statsmodels may map the linear predictor to the mean some
    other way than its link's inverse, so it is refused rather than guessed.
    """
    if type(family) not in _tables()[3]:
        cls = type(family)
        raise MarginsTypeError(
            f"family: the {adapter} adapter does not know the {cls.__module__}.{cls.__name__} "
            f"family; supported families are {', '.join(SUPPORTED_FAMILIES)} (a family "
            "defined elsewhere may map the linear predictor to the mean differently from "
            "its link's inverse, so it is refused rather than guessed)"
        )
    return link_for(family.link)


class StatsmodelsGLMAdapter(GLMLikeAdapter):
    """Adapter for GLM fits: every family and link statsmodels ships, offsets and exposure.

    ``Margins.response_scale`` averages h(X·β + o) with o = offset + log(exposure) of each
    row; ``Margins.linear_scale`` averages X·β + o. Settings ``{"offset": o}`` and
    ``{"exposure": t}`` in ``at``, ``atexog`` or a scenario replace every row's value (for
    instance ``atexog={"exposure": 1.0}`` gives rates per unit of exposure). ``freq_weights``
    and ``var_weights`` shape β̂ and V̂ only; the average over rows uses ``weights=``.

    Parameters
    ----------
    fit : GLMResults
        The fitted GLM.
    training_data : pandas.DataFrame, optional
        Required for the array interface (``sm.GLM(y, X, family=...)``): the frame whose
        columns are named like ``X``'s.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.api as sm, statsmodels.formula.api as smf
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=200), "t": rng.uniform(1, 3, 200)})
    >>> df["y"] = rng.poisson(np.exp(0.2 + 0.5 * df["x"]) * df["t"])
    >>> fit = smf.glm("y ~ x", df, family=sm.families.Poisson(), exposure=df["t"]).fit()
    >>> ad = StatsmodelsGLMAdapter(fit)
    >>> ad.link.name, ad.offset_keys
    ('log', ('exposure',))
    >>> bool(np.allclose(ad.offset(ad.data), np.log(df["t"])))
    True
    """

    model_names = ("GLM",)
    refit_chain = GLM_CHAIN

    def _inverse_link(self) -> InverseLink:
        return inverse_link_of_family(self.model.family)
