"""Elasticities: per-row ratios ∂y/∂x·x/y (eyex), ∂y/∂x/y (eydx) and ∂y/∂x·x (dyex),
which no weight matrix over margins expresses, so they take their own evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._errors import MarginsValueError
from ..engine.delta import one_blas_thread
from ..engine.design import Setting
from ..engine.evaluate import Evaluated, evaluate_elasticity
from ..results.result import MarginsResult
from .arguments import row_groups
from .assemble import finish
from .outcomes import check_multi_outcome
from .population import Population

if TYPE_CHECKING:
    from .margins import Margins


def elasticities(
    session: Margins,
    pop: Population,
    names: list[str],
    slope: str,
    by: str | Sequence[str] | None,
) -> MarginsResult:
    """Average elasticities of numeric variables, each a per-row ratio (see :meth:`dydx`)."""
    check_multi_outcome(session, "slope")
    if getattr(session.adapter, "integration", None) is not None:
        raise MarginsValueError(
            f"slope: {slope!r} is not available with random_effects='integrate' yet; use "
            "slope='dydx', or random_effects='zero' for conditional elasticities"
        )
    with one_blas_thread():  # every request: see engine.delta.one_blas_thread
        link = session.link
        groups, group_coords = row_groups(pop.data, pop.weights, by)
        parts = []
        for name in names:
            var = pop.cf.variables[name]
            if var.categorical:
                raise MarginsValueError(
                    f"dydx: slope={slope!r} needs a numeric variable, but {name!r} is "
                    "categorical; use slope='dydx' for its level contrasts"
                )
            x = pop.cf.frame(Setting())[name].to_numpy(dtype=np.float64)
            at_mean = session.at_kind == "mean"
            if at_mean:  # evaluated at the design means, so only the mean must be positive
                x = np.array([np.average(x, weights=pop.weights)])
            if slope in ("eyex", "dyex") and np.any(x <= 0):
                raise MarginsValueError(
                    f"dydx: slope={slope!r} scales by {name!r}, which must be positive in "
                    f"every row (elasticities are in log x); {int(np.sum(x <= 0))} rows have "
                    f"{name} <= 0"
                )
            if slope in ("eyex", "eydx"):
                X0, off = pop.cf.design(Setting())
                off = np.zeros(X0.shape[0]) if off is None else off
                if at_mean:
                    wn = pop.weights / pop.weights.sum()
                    X0, off = (wn @ X0)[None, :], np.array([wn @ off])
                eta = X0 @ session.adapter.params + off
                if np.any(link.h(eta) <= 0):
                    raise MarginsValueError(
                        f"dydx: slope={slope!r} divides by the prediction, which is <= 0 in "
                        f"{int(np.sum(link.h(eta) <= 0))} rows on the {session.scale} scale; "
                        "use slope='dydx' or 'dyex'"
                    )
            parts.append(
                evaluate_elasticity(
                    pop.cf,
                    name,
                    slope,
                    groups,
                    link,
                    session.adapter.params,
                    session.coefficient_draws.to_numpy(),
                    session.cov_factor,
                    at_mean,
                )
            )
        ev = Evaluated(
            np.concatenate([p.estimate for p in parts]),
            np.concatenate([p.grad for p in parts]),
            [h for p in parts for h in p.hess_factor],
            np.concatenate([p.draws for p in parts], axis=1),
        )
        return finish(session, ev, names, {"term": names}, group_coords, slope)
