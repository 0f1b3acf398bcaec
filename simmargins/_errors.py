"""Exceptions and warnings raised by simmargins.

Our errors subclass the built-in ``ValueError``/``TypeError`` so callers that already
catch those keep working, while ``except SimMarginsError`` catches only ours.
"""

from __future__ import annotations

import os
import sys
import warnings


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


class ConvergenceWarning(UserWarning):
    """The fitting optimiser did not report convergence: β̂ and V̂ may not be the optimum."""


class FewClustersWarning(UserWarning):
    """A cluster bootstrap with few clusters: percentile intervals tend to undercover."""


class SingularCovarianceWarning(UserWarning):
    """A mixed model's fitted random-effects covariance is singular (a variance at zero or
    a correlation at ±1): a parametric bootstrap simulates without that variation."""


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn with the location of the first frame outside simmargins (the user's line).

    A fixed ``stacklevel`` points at the caller only for one call path; the verbs reach the
    same warning through different depths (``dydx`` → ``_evaluate`` → ``_finish``, or the
    CLI's pipeline), so the level is counted from the stack instead.
    """
    package_dir = os.path.dirname(os.path.abspath(__file__))
    level = 1
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(package_dir + os.sep):
            break
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level + 1)
