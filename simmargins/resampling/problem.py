"""What every bootstrap replicate shares: the refit problem, a replicate's record, the
optimiser chains, and which failures count as a failed replicate.

Kept apart from the runners (``bootstrap``) and the fast engine (``lmm_fast``), which
both use it, so that neither imports the other at module level.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROUTE_FAST, ROUTE_STATSMODELS = "sufficient-statistics", "statsmodels"

# MixedLM's default optimiser sometimes stops short on ordinary data; these are tried in
# turn (each warm-started from the original estimates) until one reports convergence.
MIXEDLM_CHAIN = ("lbfgs", "bfgs", "cg", "powell", "nm")
GLM_CHAIN = ("IRLS", "newton", "bfgs")
DISCRETE_CHAIN = ("newton", "bfgs", "lbfgs", "nm")
# percentile intervals of a cluster bootstrap undercover below this many clusters: the
# coverage study (docs/validation.md) measured 86.5–91.5% for nominal 95% at 10–40 clusters
FEW_CLUSTERS = 50

# what a replicate may fail with and still be counted as a failed replicate: numerical
# trouble of the resample, never a programming error (TypeError, KeyError, ... raise)
NUMERICAL_ERRORS: tuple[type[BaseException], ...] = (
    np.linalg.LinAlgError,
    FloatingPointError,
    OverflowError,
    ZeroDivisionError,
)
# a ValueError counts when its message is about values, not about how a function was called
_NUMERICAL_VALUE_ERROR = re.compile(
    r"\bnan|\binf\b|\binfs\b|infinit|finite|singular|positive[ -]?definite|converg|"
    r"overflow|invalid value|ill[ -]?conditioned|math domain|perfect separation|"
    r"perfect prediction|separat",
    re.IGNORECASE,
)


def is_numerical_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is numerical trouble of one resample (counted as a failed replicate)
    rather than a bug (raised): LinAlgError, FloatingPointError, overflow, statsmodels'
    perfect-separation and missing-data errors, and ValueErrors about non-finite values,
    singular matrices or convergence.

    Examples
    --------
    >>> is_numerical_failure(np.linalg.LinAlgError("Singular matrix"))
    True
    >>> is_numerical_failure(ValueError("array must not contain infs or NaNs"))
    True
    >>> is_numerical_failure(ValueError("operands could not be broadcast together"))
    False
    >>> is_numerical_failure(KeyError("exog_re"))
    False
    """
    if isinstance(exc, NUMERICAL_ERRORS):
        return True
    try:
        from statsmodels.tools.sm_exceptions import MissingDataError, PerfectSeparationError
    except ImportError:  # pragma: no cover - statsmodels is a dependency
        pass
    else:
        if isinstance(exc, (PerfectSeparationError, MissingDataError)):
            return True
    if type(exc) is ValueError or type(exc).__module__.startswith(("numpy", "scipy")):
        return isinstance(exc, ValueError) and bool(_NUMERICAL_VALUE_ERROR.search(str(exc)))
    return False


def few_clusters_message(n_clusters: int) -> str | None:
    """The warning for a cluster bootstrap over fewer than :data:`FEW_CLUSTERS` clusters
    (groups of a MixedLM, or ``cluster=``), None from that many on.

    Examples
    --------
    >>> few_clusters_message(50) is None
    True
    >>> print(few_clusters_message(11))  # doctest: +ELLIPSIS
    cluster bootstrap over 11 clusters: percentile intervals undercover with fewer than 50...
    """
    if n_clusters >= FEW_CLUSTERS:
        return None
    return (
        f"cluster bootstrap over {n_clusters} clusters: percentile intervals undercover with "
        f"fewer than {FEW_CLUSTERS} clusters (simmargins' coverage study, docs/validation.md: "
        "86.5–91.5% coverage of nominal 95% intervals at 10–40 clusters, the bootstrap SE "
        "biased low by about √((G−1)/G)); prefer method='delta' or 'simulation', or read "
        "the bootstrap intervals as too narrow"
    )


@dataclass
class RefitProblem:
    """What a worker needs to refit one replicate: arrays, settings and start values."""

    model_cls: type
    endog: np.ndarray
    exog: np.ndarray
    row_arrays: dict[str, np.ndarray]  # init arguments aligned with rows (weights, offset, ...)
    init_kwargs: dict[str, Any]  # other constructor arguments (family, use_sqrt, ...)
    fit_kwargs: dict[str, Any]  # fit arguments shared by every optimiser (reml, maxiter, ...)
    chain: tuple[str, ...]  # optimisers tried in turn; "" means the model's only route
    start_params: Any  # warm start (None for a cold start)
    fe_positions: np.ndarray  # where the fixed effects sit in the refit's params
    clusters: np.ndarray | None = None  # cluster code (0..G-1) of each row, or None for rows
    mixed: bool = False  # MixedLM: clusters are its groups; exog_re / exog_vc travel with them
    vc: Any = None  # MixedLM's VCSpec, resampled group by group
    # constructor argument that takes the new cluster labels (GEE's "groups"), so two
    # copies of a cluster are two clusters
    relabel: str | None = None
    # constructor arguments copied afresh for every replicate: objects the fit mutates
    # (GEE's cov_struct), so no replicate starts from another's state whatever n_jobs is
    fresh: tuple[str, ...] = ()
    fail_hook: Callable[[int], None] | None = None  # test seam: may raise for replicate b

    @property
    def n_rows(self) -> int:
        return int(self.endog.shape[0])


@dataclass
class Replicate:
    index: int
    params: np.ndarray | None
    converged: bool
    optimizer: str
    seed: int
    error: str = ""
    # the refit's final log-likelihood, on statsmodels' scale (``fit.llf``: the REML
    # criterion when the model was fitted by REML), whichever route refitted it
    llf: float = float("nan")


@dataclass
class BootstrapDraws:
    params: np.ndarray  # (B_ok, K): the replicates that converged
    replicates: list[Replicate] = field(default_factory=list)
    route: str = ROUTE_STATSMODELS  # how the replicates were refitted
    route_reason: str = ""
    parallel: str = ""  # where they ran: in-process, or joblib with how many jobs

    @property
    def n_failed(self) -> int:
        return sum(r.params is None for r in self.replicates)

    @property
    def llf(self) -> np.ndarray:
        """(B_ok,) final log-likelihood of each converged replicate, in the rows of
        ``params`` (``fit.llf``'s scale: REML or ML as the model was fitted)."""
        return np.array([r.llf for r in self.replicates if r.params is not None], dtype=float)
