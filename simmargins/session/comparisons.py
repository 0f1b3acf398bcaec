"""Checks for comparisons and conditional effects, and the comparison of two margins with
its domain checked at the estimate and in every draw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MarginsValueError
from ..engine.delta import one_blas_thread
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import Evaluated, compare, comparison_domain_error
from ..engine.scenarios import Scenario, grid
from ..results.result import MarginsResult
from .arguments import row_groups
from .assemble import finish
from .outcomes import evaluator_for, outcome_coords, rows_per_group
from .partitions import PartitionedPopulation, evaluate_partitioned
from .population import Population
from .requests import Request, comparison_labels, split_comparison

if TYPE_CHECKING:
    from .margins import Margins


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


def evaluate(
    session: Margins,
    pop: Population,
    settings: list[Setting],
    W: np.ndarray,
    labels: list[str],
    coords: dict[str, list[Any]],
    quantity: str,
    by: str | Sequence[str] | None = None,
    *,
    comparison: str = "difference",
    request: Request | None = None,
) -> MarginsResult:
    """θ = W μ (or a comparison of two margins per row of W) over ``pop``'s rows.

    The whole request runs with BLAS on one thread (:func:`one_blas_thread`): its
    products are thin, and OpenBLAS workers spinning after each call starve numba's
    kernels and the next product when the other core is busy.
    """
    if isinstance(pop, PartitionedPopulation):
        return _evaluate_partitioned(
            session, pop, settings, W, labels, coords, quantity, by, comparison, request
        )
    with one_blas_thread():  # every request: see engine.delta.one_blas_thread
        groups, group_coords = row_groups(pop.data, pop.weights, by)
        # integrates random effects, or gives one row per outcome, when the adapter asks
        run = evaluator_for(session)
        group_coords = outcome_coords(session.adapter, group_coords)
        sources = request.sources if request is not None and request.sources else None
        draws = session.coefficient_draws.to_numpy()
        rest = (session.adapter.params, draws, session.cov_factor, session.at_kind == "mean")
        if comparison == "difference":
            ev = run(pop.cf, settings, W, groups, session.link, *rest, sources)
        else:
            assert request is not None
            pos, neg = split_comparison(comparison, W)
            both = run(
                pop.cf, settings, np.vstack([pos, neg]), groups, session.link, *rest, sources
            )
            n = pos.shape[0] * len(groups) * rows_per_group(session.adapter)
            a, b = both.rows(slice(0, n)), both.rows(slice(n, None))
            ev = compare_margins(comparison, a, b, session.cov_factor)
            suffixes = request.suffixes or [""] * len(labels)
            labels = comparison_labels(comparison, pos, neg, request.names, suffixes)
        return run.record(finish(
            session, ev, labels, coords, group_coords, quantity, comparison=comparison,
            population=pop.source,
        ))


def _evaluate_partitioned(
    session: Margins,
    pop: PartitionedPopulation,
    settings: list[Setting],
    W: np.ndarray,
    labels: list[str],
    coords: dict[str, list[Any]],
    quantity: str,
    by: str | Sequence[str] | None,
    comparison: str,
    request: Request | None,
) -> MarginsResult:
    """:func:`evaluate` over a partitioned newdata (see :mod:`.partitions`)."""
    run = evaluator_for(session)
    if getattr(run, "spec", None) is not None or rows_per_group(session.adapter) != 1:
        raise MarginsValueError(
            "newdata: a partitioned frame is averaged by the engine's linear route; "
            "population-averaged (random_effects='integrate') and multi-outcome margins "
            "need an in-memory DataFrame for now"
        )
    if request is not None and request.sources and any(x is not None for x in request.sources):
        raise MarginsValueError(
            "newdata: scale= scenarios rescale each row and need an in-memory DataFrame; "
            "use shift= or a pandas DataFrame"
        )
    by_cols = None if by is None else ([by] if isinstance(by, str) else list(by))
    draws = session.coefficient_draws.to_numpy()
    with one_blas_thread():
        if comparison == "difference":
            ev, group_coords = evaluate_partitioned(session, pop, settings, W, by_cols, draws)
        else:
            assert request is not None
            pos, neg = split_comparison(comparison, W)
            both, group_coords = evaluate_partitioned(
                session, pop, settings, np.vstack([pos, neg]), by_cols, draws
            )
            n = pos.shape[0] * len(next(iter(group_coords.values()), [()]))
            a, b = both.rows(slice(0, n)), both.rows(slice(n, None))
            ev = compare_margins(comparison, a, b, session.cov_factor)
            suffixes = request.suffixes or [""] * len(labels)
            labels = comparison_labels(comparison, pos, neg, request.names, suffixes)
        return finish(
            session, ev, labels, coords, group_coords, quantity, comparison=comparison,
            population=pop.source,
        )  # fmt: skip
