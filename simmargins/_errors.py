"""Exceptions and warnings raised by simmargins.

Our errors subclass the built-in ``ValueError``/``TypeError`` so callers that already
catch those keep working, while ``except SimMarginsError`` catches only ours.
"""

from __future__ import annotations


class SimMarginsError(Exception):
    """Base class of every error simmargins raises on purpose."""


class MarginsValueError(SimMarginsError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class MarginsTypeError(SimMarginsError, TypeError):
    """An argument (or the fitted model) has a type simmargins does not accept."""


class BootstrapError(SimMarginsError, RuntimeError):
    """The bootstrap could not finish (e.g. a worker process died); no draws are returned."""


class DeltaMethodWarning(UserWarning):
    """The delta method disagrees with the draws by more than Monte-Carlo noise."""


class CovarianceWarning(UserWarning):
    """The coefficient covariance is not positive definite; draws use its eigen-decomposition."""


class SeparationWarning(UserWarning):
    """A binary-outcome fit is (quasi-)perfectly separated: its SEs are not to be trusted."""
