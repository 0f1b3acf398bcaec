"""Checks for comparisons and conditional effects, and the comparison of two margins with
its domain checked at the estimate and in every draw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import MarginsValueError
from ..engine.design import CounterfactualData
from ..engine.evaluate import Evaluated, compare, comparison_domain_error
from ..engine.scenarios import Scenario, grid


def check_dydx_atexog(
    cf: CounterfactualData, atexog: Mapping[str, Any] | None, names: list[str], slope: str
) -> list[Scenario]:
    """The grid points at which ``dydx`` evaluates its AMEs (``[{}]``: none)."""
    if atexog is None:
        return [{}]
    cf.check_values("atexog", atexog)
    if not atexog:
        raise MarginsValueError("atexog: give at least one {variable: values} entry")
    if slope != "dydx":
        raise MarginsValueError(
            f"atexog: not available with slope={slope!r} yet; use slope='dydx', or at= to "
            "fix covariates for all rows"
        )
    for name in names:
        if name in atexog and cf.variables[name].categorical:
            raise MarginsValueError(
                f"atexog: {name!r} is the categorical variable whose levels dydx compares; "
                "it cannot also be held at fixed values"
            )
    return grid(atexog)


def check_factor_comparison(cf: CounterfactualData, names: list[str], comparison: str) -> None:
    """Comparisons other than the difference are between two predictions: factor levels."""
    for name in names:
        if not cf.variables[name].categorical:
            raise MarginsValueError(
                f"comparison: {comparison!r} compares two averaged predictions, so dydx "
                f"applies it to factors only, and {name!r} is numeric; use "
                f"contrasts(shift={{{name!r}: 1}}, comparison={comparison!r}) for the "
                "prediction with it moved against the data as observed"
            )


def compare_margins(kind: str, a: Evaluated, b: Evaluated, factor: np.ndarray) -> Evaluated:
    """f(a, b) (see :func:`simmargins.engine.evaluate.compare`), refused where undefined."""
    why = comparison_domain_error(kind, a.estimate, b.estimate)
    if why is not None:
        raise MarginsValueError(f"comparison: {kind!r} is undefined at the estimates: {why}")
    bad = np.zeros(a.draws.shape[0], dtype=bool)
    for d in range(a.draws.shape[0]):
        bad[d] = comparison_domain_error(kind, a.draws[d], b.draws[d]) is not None
    if bad.any():
        why = comparison_domain_error(kind, a.draws[bad], b.draws[bad])
        raise MarginsValueError(
            f"comparison: {kind!r} is undefined in {int(bad.sum())} of {bad.size} draws "
            f"({why}); on the linear scale margins can cross the boundary — use "
            "scale='response' or comparison='difference'"
        )
    return compare(kind, a, b, factor)
