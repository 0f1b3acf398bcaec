"""Multi-outcome models (``MNLogit``, ``OrderedModel``) in the session: one quantity per
outcome category.

Every verb works as for other models; each of its quantities gains one row per outcome,
labelled ``"<quantity> | outcome=<category>"`` (before any ``by=`` group) and carrying an
``outcome`` coordinate, so ``to_frame()`` has an ``outcome`` column, the summary shows it
and netCDF keeps it. :func:`evaluator_for` picks the evaluation a session's adapter needs;
the outcome rows take the place of ``by=`` groups in the result's assembly
(:func:`outcome_coords`, :func:`rows_per_group`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MarginsValueError
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import Designs, Evaluated
from ..engine.evaluate_outcomes import evaluate_outcomes
from ..engine.links import InverseLink
from ..results.result import MarginsResult
from .random_effects import Evaluator

if TYPE_CHECKING:
    from .margins import Margins

OUTCOME = "outcome"


def is_multi_outcome(adapter: Any) -> bool:
    """Whether the adapter's model has several outcome categories (one margin each)."""
    return getattr(adapter, "outcome_model", None) is not None


def outcome_coords(adapter: Any, group_coords: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The ``by`` groups' coordinates with the outcome prepended (outcome-major), for a
    multi-outcome model; unchanged otherwise."""
    if not is_multi_outcome(adapter):
        return group_coords
    if OUTCOME in group_coords:
        raise MarginsValueError(
            f"by: {OUTCOME!r} names the outcome categories of this {adapter.model_class}, "
            "whose results already have a row per outcome; rename that column to group by it"
        )
    outcomes = list(adapter.outcomes)
    n_grp = len(next(iter(group_coords.values()))) if group_coords else 1
    out = {OUTCOME: [o for o in outcomes for _ in range(n_grp)]}
    for c, vals in group_coords.items():
        out[c] = [vals[g] for _ in outcomes for g in range(n_grp)]
    return out


def rows_per_group(adapter: Any) -> int:
    """Rows each quantity has per ``by`` group: the number of outcomes (1 for others)."""
    return len(adapter.outcomes) if is_multi_outcome(adapter) else 1


def check_multi_outcome(session: Margins, what: str | None = None) -> None:
    """Refuse what multi-outcome models do not support (``what``: a feature's argument)."""
    ad = session.adapter
    if not is_multi_outcome(ad):
        return
    if what is not None:
        raise MarginsValueError(
            f"{what}: not available for {ad.model_class} fits yet; use dydx (slope='dydx'), "
            "predict or contrasts, which give one row per outcome"
        )
    if session.scale != "response":
        raise MarginsValueError(
            f"scale: a {ad.model_class} has one linear predictor per equation, not one "
            "scale to average; use scale='response' (the outcome probabilities)"
        )
    if session.method == "bootstrap":
        raise MarginsValueError(
            f"method: bootstrap refits of a {ad.model_class} are not supported yet; use "
            "method='simulation' or 'delta'"
        )


class OutcomeEvaluator:
    """Runs a multi-outcome request (:func:`.evaluate_outcomes.evaluate_outcomes`)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def __call__(
        self,
        cf: CounterfactualData,
        settings: list[Setting],
        W: np.ndarray,
        groups: list[np.ndarray],
        link: InverseLink,
        beta: np.ndarray,
        B: np.ndarray,
        factor: np.ndarray,
        at_mean: bool,
        sources: Sequence[Designs | None] | None = None,
    ) -> Evaluated:
        return evaluate_outcomes(
            cf, settings, W, groups, self.adapter.outcome_model, beta, B, factor, at_mean,
            sources,
        )

    def record(self, res: MarginsResult) -> MarginsResult:
        """The result with the outcome categories in its attributes."""
        ds = res.to_dataset()
        ds.attrs["outcomes"] = list(self.adapter.outcomes)
        return MarginsResult(ds)


def evaluator_for(session: Margins) -> Evaluator | OutcomeEvaluator:
    """The evaluation a session's adapter needs (checked for multi-outcome models)."""
    if is_multi_outcome(session.adapter):
        check_multi_outcome(session)
        return OutcomeEvaluator(session.adapter)
    return Evaluator(session.adapter)
