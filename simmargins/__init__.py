"""simmargins: honest uncertainty for marginal effects, predictions and contrasts.

Simulation first — coefficient draws pushed through counterfactual predictions — with the
delta method computed alongside every result as a cross-check.
"""

from __future__ import annotations

from . import adapters
from ._datasets import classroom_data, sleepstudy_data
from ._errors import (
    BootstrapError,
    ConvergenceWarning,
    CovarianceWarning,
    DeltaMethodWarning,
    FewClustersWarning,
    MarginsTypeError,
    MarginsValueError,
    SeparationWarning,
    SimMarginsError,
    SingularCovarianceWarning,
)
from .engine.scenarios import all_pairwise, consecutive, pairwise, reference
from .results.combination import combine
from .results.hypotheses import HypothesisTest
from .results.plotting import PlotArtists, plot_curve, plot_dist, plot_forest
from .results.result import MarginsResult, load
from .session.margins import Margins

__all__ = [
    "BootstrapError",
    "ConvergenceWarning",
    "CovarianceWarning",
    "DeltaMethodWarning",
    "FewClustersWarning",
    "HypothesisTest",
    "Margins",
    "MarginsResult",
    "MarginsTypeError",
    "MarginsValueError",
    "PlotArtists",
    "SeparationWarning",
    "SimMarginsError",
    "SingularCovarianceWarning",
    "adapters",
    "all_pairwise",
    "classroom_data",
    "combine",
    "consecutive",
    "load",
    "pairwise",
    "plot_curve",
    "plot_dist",
    "plot_forest",
    "reference",
    "sleepstudy_data",
]

__version__ = "0.1.0"
