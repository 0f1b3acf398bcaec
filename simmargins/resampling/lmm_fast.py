"""Exact cluster-bootstrap refits of Gaussian linear mixed models from group statistics.

For ``y_g = X_g β + Z_g b_g + e_g`` with ``b_g ~ N(0, σ²Ψ)``, ``e_g ~ N(0, σ²I)`` and one
grouping factor, a replicate's profiled (RE)ML criterion is a function of per-group cross
products of ``[Z_g X_g y_g]`` and the groups' multiplicities. The work is split three ways:

- :mod:`.lmm_stats`: the group statistics and the per-group pass (numba kernel and its
  numpy twin);
- :mod:`.lmm_criterion`: the profiled criterion and its gradient (equal to statsmodels'
  ``MixedLM.loglike``), θ ↔ Ψ, and the criterion in the optimiser's scaled coordinates;
- this module: the optimiser (:func:`fit_replicate`) and the problem setup for the
  bootstrap runners (:func:`why_not_fast`, :func:`fast_problem`, :class:`FastProblem`).

Optimisation is with L-BFGS-B (diagonal of L ≥ 0) over the factor of Ψ̃ = SΨS, Ψ in the
units of the columns of Z (S their root mean squares, :func:`.lmm_criterion.z_scales`),
warm-started from the original fit's Ψ. Resamples with few groups often peak on the
boundary (a zero variance, a correlation of ±1), where the triangular factor can stall: at a
zero pivot or a zero column its gradient vanishes in directions along which the criterion
still rises. So a converged point with a singular Ψ is checked against the optimality
conditions in Ψ itself and left when a step off the boundary rises
(:func:`_escape_boundary`). A random-slope criterion can also have two maxima (typically of
opposite intercept–slope correlation); short ascents from other starts (:func:`_restarts`)
look for the higher one.

None of these modules knows anything of pandas, xarray or the session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from .lmm_criterion import (
    Profiled,
    ScaledCriterion,
    pack,
    profiled,
    theta_from_cov,
    tril_indices,
    unpack,
)
from .lmm_stats import (
    GroupPass,
    GroupStatistics,
    ReplicateStats,
    group_pass_numba,
    group_statistics,
)
from .problem import is_numerical_failure

# optimisers tried in turn for one replicate; the second restarts from where the first
# stopped (a fresh curvature estimate gets L-BFGS-B past a stalled line search)
FAST_CHAIN = ("L-BFGS-B", "L-BFGS-B-restart", "Powell+L-BFGS-B")
# tolerances on the per-observation criterion (statsmodels stops at gtol 1e-5 on that scale)
_GTOL = 1e-8
_FTOL = 1e-13
_ACCEPT_GTOL = 1e-6  # a stalled line search this close to stationarity has converged
_MAX_ESCAPES = 5  # steps off the boundary per ascent
_SCOUT_ITER = 40  # iterations of a scouting ascent from a restart
# a scout must beat the first ascent by this much (relative) to be climbed in full
_RESTART_GAIN = 1e-9
# restarts run for random slopes when the replicate has fewer distinct groups than this, or
# when its first ascent ends near the boundary (a correlation beyond ±0.99, a variance
# below 1e-4 of the largest): a criterion with a second maximum is a small-sample criterion
# (restarts won on none of 100 replicates of the 1,000-group benchmark model when forced,
# and on 6 of 270 replicates of Grunfeld's 11 firms, sleepstudy's 18 subjects and the
# classroom's 40 students)
_RESTART_MAX_GROUPS = 200
_NEAR_BOUNDARY = 1e-2


# -- one refit ----------------------------------------------------------------------------------
@dataclass
class FastFit:
    fe_params: np.ndarray
    cov_re: np.ndarray
    scale: float
    llf: float
    theta: np.ndarray
    converged: bool
    optimizer: str
    message: str = ""


def _bounds(q: int) -> list[tuple[float | None, float | None]]:
    rows, cols = tril_indices(q)
    return [(0.0, None) if r == c else (None, None) for r, c in zip(rows, cols, strict=True)]


def _projected_grad(theta: np.ndarray, grad: np.ndarray, q: int) -> float:
    """Largest gradient component that a bounded step could still follow (for maximising)."""
    g = grad.copy()
    rows, cols = tril_indices(q)
    on_bound = (rows == cols) & (theta <= 0.0) & (g < 0.0)
    g[on_bound] = 0.0
    return float(np.max(np.abs(g))) if g.size else 0.0


def _escape_boundary(phi: np.ndarray, pr: Profiled, crit: ScaledCriterion) -> np.ndarray | None:
    """A better start when φ stopped at a point of the boundary that is not a maximum.

    A maximum of ℓ over the positive semidefinite Ψ̃ satisfies G Ψ̃ = 0 and G ⪯ 0 (G =
    ∂ℓ/∂Ψ̃, the Karush–Kuhn–Tucker conditions of the cone). The triangular factor hides
    both failures where Ψ̃ is singular: its gradient 2·tril(G L̃) vanishes at a zero pivot
    (Ψ̃₀₀ = 0 freezes row 0 of L̃, although G L̃ ≠ 0 says a correlated direction rises),
    and at any zero column (a direction v of Ψ̃'s null space with vᵀGv > 0 rises only at
    second order). Two families of steps are tried, each for a ladder of lengths: along
    the full-matrix gradient 2 G L̃ of the factor (not just its lower triangle), and
    Ψ̃ + δ·vvᵀ. The best that raises ℓ wins; None when neither does.
    """
    q = crit.q
    Lt = unpack(phi, q)
    psi = Lt @ Lt.T
    G = crit.grad_psi_tilde(pr)
    candidates: list[np.ndarray] = []
    vals, vecs = np.linalg.eigh(psi)
    top = max(1.0, float(vals.max()))
    if vals[0] <= 1e-8 * top:  # singular: the trap of the triangular factor
        D = 2.0 * G @ Lt
        norm = float(np.linalg.norm(D))
        if norm > 0.0:
            for t in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
                F = Lt + (t * math.sqrt(top) / norm) * D
                candidates.append(F @ F.T)
        null = vecs[:, vals <= 1e-8 * top]
        mu, v = np.linalg.eigh(null.T @ G @ null)
        if mu[-1] > 0.0:
            direction = null @ v[:, -1]
            for delta in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0):
                candidates.append(psi + delta * top * np.outer(direction, direction))
    best, best_llf = None, pr.llf + 1e-12 * abs(pr.llf)
    for cand in candidates:
        trial = theta_from_cov(cand)
        llf = crit.llf(trial)
        if llf > best_llf:
            best, best_llf = trial, llf
    return best


@dataclass
class _Ascent:
    phi: np.ndarray
    at: Profiled | None  # the criterion at φ when the ascent converged, else None
    optimizer: str = ""
    message: str = ""

    @property
    def llf(self) -> float:
        return self.at.llf if self.at is not None else -math.inf


def _climb(crit: ScaledCriterion, phi0: np.ndarray, maxiter: int) -> _Ascent:
    """One local ascent from φ0: :data:`FAST_CHAIN` in turn, each converged point checked
    against the boundary conditions and left when a step off it rises (a few times)."""
    q = crit.q
    bounds = _bounds(q)
    phi = np.asarray(phi0, dtype=np.float64).copy()
    notes: list[str] = []
    escapes = 0
    for name in FAST_CHAIN:
        if name == "Powell+L-BFGS-B":
            res = optimize.minimize(
                lambda t: crit.negative(t)[0], phi, method="Powell", bounds=bounds,
                options={"xtol": 1e-8, "ftol": 1e-14, "maxiter": maxiter},
            )  # fmt: skip
            if np.all(np.isfinite(res.x)):
                phi = res.x
        while True:
            res = optimize.minimize(
                crit.negative, phi, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"ftol": _FTOL, "gtol": _GTOL, "maxiter": maxiter, "maxls": 50},
            )  # fmt: skip
            phi = res.x
            if not np.isfinite(res.fun):
                notes.append(f"{name}: criterion not finite")
                break
            pg = _projected_grad(phi, -res.jac, q)
            if not (res.success or pg < _ACCEPT_GTOL):
                notes.append(f"{name}: {res.message} (|grad| {pg:.2g})")
                break
            pr = crit.at(phi)
            better = _escape_boundary(phi, pr, crit) if escapes < _MAX_ESCAPES else None
            if better is None:
                return _Ascent(phi, pr, name)
            phi, escapes = better, escapes + 1
    return _Ascent(phi, None, "", "; ".join(notes))


def _restarts(
    crit: ScaledCriterion, phi0: np.ndarray, phi: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """Further starts, besides the warm start φ0 whose ascent ended at φ.

    A random-slope likelihood often has two maxima that differ in the sign of the
    intercept–slope correlation (one of them near ±1), and an ascent settles in whichever
    basin it starts in. So: φ's correlations mirrored, and again pushed to ±0.95 of the
    mirrored sign; the warm start without its correlations; and statsmodels' own cold
    start Ψ = I.
    """
    q = crit.q
    psi = crit.psi_tilde(phi)
    sd = np.sqrt(np.clip(np.diag(psi), 0.0, None))
    top = max(1.0, float(sd.max()))
    sd = np.where(sd > 1e-3 * top, sd, 1e-1 * top)  # a zero variance restarts off zero
    corr = psi / np.outer(np.sqrt(np.diag(psi)) + 1e-300, np.sqrt(np.diag(psi)) + 1e-300)
    off = ~np.eye(q, dtype=bool)
    mirrored = np.where(off, -np.clip(corr, -0.95, 0.95), 1.0)
    pushed = np.where(off, -0.95 * np.sign(np.where(corr == 0, -1.0, corr)), 1.0)
    warm = crit.psi_tilde(phi0)
    starts = [
        ("mirrored correlations", mirrored * np.outer(sd, sd)),
        ("correlations ∓0.95", pushed * np.outer(sd, sd)),
        ("uncorrelated warm start", np.diag(np.diag(warm)) + 1e-3 * top * np.eye(q)),
    ]
    out = [(label, _phi_of(cov)) for label, cov in starts]
    out.append(("statsmodels' cold start", crit.phi(pack(np.eye(q)))))
    return [(label, s) for label, s in out if s is not None and np.all(np.isfinite(s))]


def _phi_of(psi_tilde: np.ndarray) -> np.ndarray | None:
    vals = np.linalg.eigvalsh((psi_tilde + psi_tilde.T) / 2)
    if vals[0] <= 0.0:  # a correlation matrix pushed past positive definite (q ≥ 3)
        return None
    return theta_from_cov(psi_tilde)


def _scout(crit: ScaledCriterion, phi: np.ndarray) -> tuple[float, np.ndarray]:
    """A short, loose ascent from φ, stepping off the boundary where that rises (as
    :func:`_climb` does): enough to tell which maximum's basin φ lies in."""
    for _ in range(_MAX_ESCAPES):
        res = optimize.minimize(
            crit.negative, phi, jac=True, method="L-BFGS-B", bounds=_bounds(crit.q),
            options={"ftol": 1e-10, "gtol": 1e-6, "maxiter": _SCOUT_ITER},
        )  # fmt: skip
        if not np.isfinite(res.fun):
            return -math.inf, res.x
        phi = res.x
        pr = crit.at(phi)
        better = _escape_boundary(phi, pr, crit)
        if better is None:
            return pr.llf, phi
        phi = better
    return crit.llf(phi), phi


def _near_boundary(crit: ScaledCriterion, phi: np.ndarray) -> bool:
    """Whether Ψ̃ is close to singular: its correlation matrix has an eigenvalue below
    ``_NEAR_BOUNDARY`` (for q = 2: |correlation| > 0.99), or a variance is below 1e-4 of
    the largest."""
    psi = crit.psi_tilde(phi)
    var = np.diag(psi)
    if var.min() <= 1e-4 * max(float(var.max()), 1e-300):
        return True
    sd = np.sqrt(var)
    return bool(np.linalg.eigvalsh(psi / np.outer(sd, sd))[0] < _NEAR_BOUNDARY)


def fit_replicate(
    rep: ReplicateStats,
    q: int,
    p: int,
    reml: bool,
    theta0: np.ndarray,
    kernel: GroupPass = group_pass_numba,
    maxiter: int = 500,
) -> FastFit:
    """Maximise the profiled (RE)ML criterion over θ.

    The ascent (:func:`_climb`) starts from ``theta0`` and tries :data:`FAST_CHAIN` in turn.
    Convergence means the optimiser reported success, or its projected gradient of the
    per-observation criterion is below ``_ACCEPT_GTOL`` (a line search that stalls at the
    optimum), and that no step off the boundary of Ψ improves the criterion
    (:func:`_escape_boundary`). When that ascent fails, or with random slopes (q ≥ 2) on a
    small replicate (fewer than ``_RESTART_MAX_GROUPS`` distinct groups) or near the
    boundary (:func:`_near_boundary`), short scouting ascents from the starts of
    :func:`_restarts` look for a higher maximum; each that gets higher than the best maximum
    so far is climbed in full, and the highest maximum wins.
    """
    crit = ScaledCriterion(rep, q, p, reml, kernel)
    phi0 = crit.phi(np.asarray(theta0, dtype=np.float64))
    best = _climb(crit, phi0, maxiter)
    small = rep.w.size < _RESTART_MAX_GROUPS
    if best.at is None or (q >= 2 and (small or _near_boundary(crit, best.phi))):
        scouts = [(*_scout(crit, s), label) for label, s in _restarts(crit, phi0, best.phi)]
        # every scout that got higher than the best maximum so far is climbed in full, the
        # highest first: a scout's height after a few steps does not always rank its peak
        for llf_s, phi_s, label in sorted(scouts, key=lambda s: -s[0]):
            if not llf_s > best.llf + _RESTART_GAIN * max(1.0, abs(llf_s)):
                break
            other = _climb(crit, phi_s, maxiter)
            if other.llf > best.llf:
                best = _Ascent(other.phi, other.at, f"{other.optimizer} from {label}")
            elif best.at is None:
                best.message = f"{best.message}; from {label}: {other.message}"
    theta = crit.theta(best.phi)
    pr = best.at
    if pr is None:
        try:
            pr = profiled(theta, rep, q, p, reml, kernel)
        except Exception as exc:
            if not is_numerical_failure(exc):
                raise
            return FastFit(
                np.full(p, np.nan), np.full((q, q), np.nan), math.nan, math.nan, theta, False,
                "", f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
    converged = best.at is not None
    return FastFit(
        pr.fe_params, pr.cov_re, pr.scale, pr.llf, theta, converged, best.optimizer, best.message
    )


# -- the bootstrap problem ---------------------------------------------------------------------
@dataclass
class FastProblem:
    """What a worker needs for fast refits: group statistics, not rows."""

    stats: GroupStatistics
    reml: bool
    theta0: np.ndarray
    fail_hook: Callable[[int], None] | None = None

    def warm_up(self) -> None:
        """Load (or compile) the numba kernel, so that timing a replicate times the refit."""
        group_pass_numba(unpack(self.theta0, self.stats.q), self.stats.cross[:1], np.ones(1))

    def fit(self, m: np.ndarray) -> FastFit:
        """Refit the replicate whose group multiplicities are ``m`` (length G)."""
        rep = ReplicateStats.from_multiplicities(self.stats, m)
        return fit_replicate(rep, self.stats.q, self.stats.p, self.reml, self.theta0)


def why_not_fast(problem: Any) -> str:
    """Why a bootstrap refit problem cannot use the fast engine ('' when it can)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    cls = problem.model_cls
    if not problem.mixed or not (isinstance(cls, type) and issubclass(cls, MixedLM)):
        return f"the model is {getattr(cls, '__name__', cls)}, not a Gaussian MixedLM"
    if problem.vc is not None:
        return "the model has variance components (vc_formula / exog_vc)"
    extra = set(problem.row_arrays) - {"exog_re"}
    if "exog_re" not in problem.row_arrays:
        return "the model has no random-effects design (exog_re)"
    if extra:
        return f"the refit carries row arrays the engine does not model: {sorted(extra)}"
    fit_extra = set(problem.fit_kwargs) - {"reml"}
    if fit_extra:
        return f"the refit passes fit options the engine does not honour: {sorted(fit_extra)}"
    if problem.clusters is None:
        return "the bootstrap does not resample the model's groups"
    return ""


def fast_problem(problem: Any) -> FastProblem:
    """Group statistics and start values for a qualifying :class:`RefitProblem`."""
    codes = np.asarray(problem.clusters, dtype=np.intp)
    n_groups = int(codes.max()) + 1
    exog_re = problem.row_arrays["exog_re"]
    stats = group_statistics(problem.endog, problem.exog, exog_re, codes, n_groups)
    start = problem.start_params
    if start is not None and getattr(start, "cov_re", None) is not None:
        theta0 = theta_from_cov(start.cov_re)
    else:  # statsmodels' cold start: Ψ = I
        theta0 = pack(np.eye(stats.q))
    return FastProblem(stats, bool(problem.fit_kwargs.get("reml", True)), theta0, problem.fail_hook)
