"""What every bootstrap replicate shares: the refit problem, a replicate's record, the
optimiser chains, and which failures count as a failed replicate.

Kept apart from the runners (``bootstrap``) and the fast engine (``lmm_fast``), which
both use it, so that neither imports the other at module level.
"""

from __future__ import annotations

import re
import warnings
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
    # the refit's fixed-effects covariance (K × K), recorded when a studentised interval
    # needs it (the parametric bootstrap), else None
    cov: np.ndarray | None = None


@dataclass
class BootstrapDraws:
    params: np.ndarray  # (B_ok, K): the replicates that converged
    replicates: list[Replicate] = field(default_factory=list)
    route: str = ROUTE_STATSMODELS  # how the replicates were refitted
    route_reason: str = ""
    parallel: str = ""  # where they ran: in-process, or joblib with how many jobs
    kind: str = "cluster"  # what a replicate is: "cluster" (resampled) or "parametric"
    # the original fit's fixed-effects covariance by the route's own estimator (the one each
    # replicate's ``cov`` uses), for studentised intervals; None when not recorded
    cov_hat: np.ndarray | None = None

    @property
    def cov(self) -> np.ndarray | None:
        """(B_ok, K, K) fixed-effects covariance of each converged replicate, in the rows
        of ``params``; None unless every one was recorded."""
        covs = [r.cov for r in self.replicates if r.params is not None]
        if not covs or any(c is None for c in covs):
            return None
        return np.stack([c for c in covs if c is not None])

    @property
    def n_failed(self) -> int:
        return sum(r.params is None for r in self.replicates)

    @property
    def llf(self) -> np.ndarray:
        """(B_ok,) final log-likelihood of each converged replicate, in the rows of
        ``params`` (``fit.llf``'s scale: REML or ML as the model was fitted)."""
        return np.array([r.llf for r in self.replicates if r.params is not None], dtype=float)


def _converged(res: Any) -> bool:
    conv = getattr(res, "converged", None)
    if conv is None:
        retvals = getattr(res, "mle_retvals", None) or {}
        conv = retvals.get("converged", True)
    return bool(conv)


def _llf(res: Any) -> float:
    """The refit's log-likelihood (REML criterion under REML), NaN where it has none."""
    try:
        return float(res.llf)
    except (AttributeError, np.linalg.LinAlgError, ValueError, FloatingPointError):
        return float("nan")


def fit_chain(
    problem: RefitProblem, model: Any, b: int, seed_value: int, with_cov: bool = False
) -> Replicate:
    """Fit ``model`` (one replicate's statsmodels model) with the optimisers of
    ``problem.chain`` in turn, warm-started, until one converges to finite estimates.

    ``with_cov`` also records the refit's fixed-effects covariance (``cov_params()``'s
    fixed-effects block). Numerical trouble of one optimiser moves on to the next; a
    programming error raises.
    """
    tried = []
    for opt in problem.chain:
        fit_kwargs = dict(problem.fit_kwargs)
        if opt:
            fit_kwargs["method"] = [opt] if problem.mixed else opt
        if problem.start_params is not None:
            fit_kwargs["start_params"] = problem.start_params
        name = opt or "default"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = model.fit(**fit_kwargs)
        except Exception as exc:
            if not is_numerical_failure(exc):
                raise
            # one optimiser stepping into a singular region is no reason to give up
            tried.append(f"{name} raised {type(exc).__name__}")
            continue
        params = np.asarray(res.fe_params if problem.mixed else res.params, dtype=float)
        llf = _llf(res)
        if _converged(res) and np.all(np.isfinite(params)) and not llf == np.inf:
            fe = params if problem.mixed else params[problem.fe_positions]
            cov = None
            if with_cov:
                pos = np.arange(fe.size) if problem.mixed else problem.fe_positions
                cov = np.asarray(res.cov_params(), dtype=float)[np.ix_(pos, pos)]
            return Replicate(b, fe, True, name, seed_value, llf=llf, cov=cov)
        if llf == np.inf:
            # MixedLM at a singular random-effects covariance: its loglike adds
            # −log|Ψ| = +∞, and an optimiser that steps there reports convergence
            tried.append(f"{name} stopped where the log-likelihood is +inf")
        else:
            tried.append(f"{name} did not converge")
    return Replicate(b, None, False, "", seed_value, "; ".join(tried))
