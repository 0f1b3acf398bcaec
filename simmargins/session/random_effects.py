"""``random_effects=`` for Bayesian mixed GLMs, and the evaluation it implies.

A logit or Poisson model with random effects has three margins (named in every result):
``"integrate"`` (the default: population-averaged, the random effects integrated over
their fitted distribution), ``"zero"`` (conditional on u = 0) and ``"blup"`` (at each
row's cluster's posterior mean). The integrated margins run through
:func:`simmargins.engine.evaluate_integrated.evaluate_integrated` instead of the
engine's linear-in-margins evaluation; the integration rule and error go into the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import MarginsValueError
from .._validate import check_choice
from ..adapters import ModelAdapter
from ..adapters.bayes_blup import BayesBLUPAdapter
from ..adapters.bayes_mixed import (
    BAYES_MIXED_MODELS,
    BayesIntegratedAdapter,
    StatsmodelsBayesMixedGLMAdapter,
)
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import Designs, Evaluated, evaluate_linear
from ..engine.evaluate_integrated import IntegrationReport, evaluate_integrated
from ..engine.links import InverseLink
from ..results.result import MarginsResult

BAYES_RANDOM_EFFECTS = ("integrate", "zero", "blup")
_WRAPPERS = (BayesIntegratedAdapter, BayesBLUPAdapter)


def is_bayes_mixed(adapter: Any) -> bool:
    """Whether the adapter belongs to a BinomialBayesMixedGLM / PoissonBayesMixedGLM fit."""
    return getattr(adapter, "model_class", None) in BAYES_MIXED_MODELS


def bayes_random_effects(
    adapter: ModelAdapter, kind: Any, method: str, at: Any
) -> tuple[str, ModelAdapter]:
    """The kind of margin (``None``: ``"integrate"``) and the adapter it implies."""
    name = "integrate" if kind is None else check_choice(
        "random_effects", kind, BAYES_RANDOM_EFFECTS)  # fmt: skip
    given = {BayesIntegratedAdapter: "integrate", BayesBLUPAdapter: "blup"}.get(type(adapter))
    if given is not None and given != name:
        raise MarginsValueError(
            f"random_effects: the adapter given is for {given!r} margins; pass "
            f"random_effects={given!r} with it, or give the fit's own adapter"
        )
    if method == "bootstrap":
        raise MarginsValueError(
            f"method: bootstrap refits of a {adapter.model_class} are not supported; its "
            "uncertainty comes from the posterior approximation (method='simulation' or "
            "'delta')"
        )
    if given is not None:
        return name, adapter
    if not isinstance(adapter, StatsmodelsBayesMixedGLMAdapter):
        raise MarginsValueError(
            f"random_effects: expected the adapter of a {' or '.join(BAYES_MIXED_MODELS)} fit"
        )
    if name == "zero":
        return name, adapter
    if name == "integrate":
        return name, BayesIntegratedAdapter(adapter)
    if isinstance(at, str) and at == "median":
        raise MarginsValueError(
            "random_effects: at='median' would set the group to its modal cluster for every "
            "row; with 'blup' fix the variables you mean with an at= dict instead"
        )
    return name, BayesBLUPAdapter(adapter)


class Evaluator:
    """Runs a request's evaluation: the engine's, or the integrated one for adapters that
    carry an ``integration`` spec (whose report it keeps for the result)."""

    def __init__(self, adapter: Any) -> None:
        self.spec = getattr(adapter, "integration", None)
        self.report: IntegrationReport | None = None

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
        if self.spec is None:
            return evaluate_linear(cf, settings, W, groups, link, beta, B, factor, at_mean, sources)
        ev, self.report = evaluate_integrated(
            cf, settings, W, groups, link, beta, B, factor, at_mean, self.spec, sources
        )
        return ev

    def record(self, res: MarginsResult) -> MarginsResult:
        """The result with the integration rule and its error in its attributes."""
        rep = self.report
        if rep is None:
            return res
        ds = res.to_dataset()
        ds.attrs["integration"] = rep.method
        ds.attrs["integration_nodes"] = rep.nodes
        ds.attrs["integration_error"] = float(rep.error.max(initial=0.0))
        ds.attrs["integration_tolerance"] = float(rep.tolerance.min(initial=0.0))
        if rep.error.shape[0] == ds.sizes["label"]:
            ds["integration_error"] = ("label", rep.error)
        return MarginsResult(ds)
