"""Exact cluster-bootstrap refits of Gaussian linear mixed models from group statistics.

For ``y_g = X_g β + Z_g b_g + e_g`` with ``b_g ~ N(0, σ²Ψ)``, ``e_g ~ N(0, σ²I)`` and one
grouping factor, the marginal covariance is block diagonal, ``σ²V_g = σ²(I + Z_g Ψ Z_gᵀ)``,
and every term of the profiled (RE)ML criterion reduces to per-group cross products of
``[Z_g X_g y_g]``. A cluster-bootstrap replicate is a multiset of the original groups, so
with multiplicities ``m_g`` (``np.bincount`` of the picked groups) its criterion is

    ℓ(θ) = −½ Σ m_g log|M_g| − ν/2 log qf − [REML] ½ log|XᵀV⁻¹X| + ν/2 (log ν − 1 − log 2π)

with ``Ψ = LLᵀ`` (θ the lower triangle of L, as lme4's θ), ``M_g = I + LᵀZ_gᵀZ_g L``,
``ν = n − p`` under REML and ``n`` under ML, and the Woodbury pieces

    [X y]ᵀV⁻¹[X y] = Σ m_g ([X_g y_g]ᵀ[X_g y_g] − W_gᵀW_g),   W_g = R_g⁻¹Lᵀ Z_gᵀ[X_g y_g]

(``R_g`` the Cholesky factor of ``M_g``): ``β̂`` is the GLS solution of that system and
``qf`` its residual quadratic form. These are exactly the terms of ``MixedLM.loglike`` (σ²
and β profiled out, constants included), so ``ℓ`` equals statsmodels' ``llf`` at the same
Ψ. One evaluation costs O(G·q²·(p+1)²) for the G distinct groups, whatever their lengths;
the analytic gradient comes from the same pass (see :func:`group_pass_numpy`).

Optimisation is with L-BFGS-B (diagonal of L ≥ 0) over the factor of Ψ̃ = SΨS, Ψ in the
units of the columns of Z (S their root mean squares, :func:`z_scales`), warm-started from
the original fit's Ψ. Resamples with few groups often peak on the boundary (a zero variance,
a correlation of ±1), where the triangular factor can stall: at a zero pivot or a zero
column its gradient vanishes in directions along which the criterion still rises. So a
converged point with a singular Ψ is checked against the optimality conditions in Ψ itself
and left when a step off the boundary rises (:func:`_escape_boundary`). A random-slope
criterion can also have two maxima (typically of opposite intercept–slope correlation);
short ascents from other starts (:func:`_restarts`) look for the higher one.

The per-group pass is a numba kernel; :func:`group_pass_numpy` is its plain-numpy twin and
the test oracle. This module knows nothing of pandas, xarray or the session.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from scipy import linalg, optimize

from .problem import is_numerical_failure

LOG_2PI = math.log(2.0 * math.pi)
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


# -- statistics ---------------------------------------------------------------------------
@dataclass
class GroupStatistics:
    """Per-group cross products of ``[Z X y]`` (q random-effect, p fixed-effect columns).

    ``cross[g]`` is the (q × d) block ``Z_gᵀ[Z_g X_g y_g]`` (d = q + p + 1) and
    ``gram[g]`` the flattened ((p+1) × (p+1)) block ``[X_g y_g]ᵀ[X_g y_g]``.
    """

    n: np.ndarray  # (G,) rows per group
    cross: np.ndarray  # (G, q, d)
    gram: np.ndarray  # (G, (p+1)²)
    q: int
    p: int

    @property
    def n_groups(self) -> int:
        return int(self.n.shape[0])


def group_statistics(
    endog: np.ndarray, exog: np.ndarray, exog_re: np.ndarray, codes: np.ndarray, n_groups: int
) -> GroupStatistics:
    """Cross products of ``[Z X y]`` within each group ``codes`` (0..G-1); one pass per pair.

    Examples
    --------
    >>> codes = np.array([0, 0, 1])
    >>> s = group_statistics(np.array([1.0, 2, 3]), np.ones((3, 1)), np.ones((3, 1)), codes, 2)
    >>> s.n.tolist(), s.cross[:, 0, :].tolist()
    ([2.0, 1.0], [[2.0, 2.0, 3.0], [1.0, 1.0, 3.0]])
    """
    Z = np.asarray(exog_re, dtype=np.float64).reshape(len(endog), -1)
    X = np.asarray(exog, dtype=np.float64).reshape(len(endog), -1)
    A = np.column_stack([Z, X, np.asarray(endog, dtype=np.float64)])
    q, d = Z.shape[1], A.shape[1]
    S = np.empty((n_groups, d, d))
    for i in range(d):
        for j in range(i, d):
            S[:, i, j] = S[:, j, i] = np.bincount(codes, A[:, i] * A[:, j], minlength=n_groups)
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)
    k = d - q
    return GroupStatistics(
        n=n,
        cross=np.ascontiguousarray(S[:, :q, :]),
        gram=np.ascontiguousarray(S[:, q:, q:].reshape(n_groups, k * k)),
        q=q,
        p=k - 1,
    )


@dataclass
class ReplicateStats:
    """One replicate's statistics: the distinct groups it holds and their multiplicities."""

    w: np.ndarray  # (G',) multiplicity of each distinct group
    cross: np.ndarray  # (G', q, d)
    gram: np.ndarray  # ((p+1), (p+1)) Σ m_g [X_g y_g]ᵀ[X_g y_g]
    n: float  # rows in the replicate

    @classmethod
    def from_multiplicities(cls, stats: GroupStatistics, m: np.ndarray) -> ReplicateStats:
        k = stats.p + 1
        nz = np.flatnonzero(m)
        w = m[nz].astype(np.float64)
        mf = m.astype(np.float64)
        return cls(
            w=w,
            cross=np.ascontiguousarray(stats.cross[nz]),
            gram=(mf @ stats.gram).reshape(k, k),  # zeros cost less than gathering rows
            n=float(mf @ stats.n),
        )


# -- the per-group pass -----------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy")
def _group_factors(
    L: np.ndarray, cross: np.ndarray, sw: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Per group: log|M_g|, √m_g·W_g[:, [X y]], √m_g·D_g[:, [X y]], and Σ m_g D_g[:, Z].

    O(q²·d) per group and nothing summed over [X y] × [X y]: those sums are one matrix
    product each afterwards (see :func:`group_pass_numba`).
    """
    n_groups, q, d = cross.shape
    k = d - q
    logdet = 0.0
    Ws = np.empty((n_groups, q, k))
    Ds = np.empty((n_groups, q, k))
    zvz = np.zeros((q, q))
    T = np.empty((q, d))
    R = np.empty((q, q))
    W = np.empty((q, d))
    for g in range(n_groups):
        swg = sw[g]
        for i in range(q):  # T = Lᵀ C_g (L lower triangular)
            for c in range(d):
                s = 0.0
                for j in range(i, q):
                    s += L[j, i] * cross[g, j, c]
                T[i, c] = s
        for i in range(q):  # R Rᵀ = M = I + T[:, :q] L, lower triangle only
            for j in range(i + 1):
                s = 1.0 if i == j else 0.0
                for m in range(j, q):
                    s += T[i, m] * L[m, j]
                for m in range(j):
                    s -= R[i, m] * R[j, m]
                if i == j:
                    R[i, i] = math.sqrt(s)
                else:
                    R[i, j] = s / R[j, j]
        for i in range(q):  # W = R⁻¹ T
            logdet += 2.0 * swg * swg * math.log(R[i, i])
            for c in range(d):
                s = T[i, c]
                for m in range(i):
                    s -= R[i, m] * W[m, c]
                W[i, c] = s / R[i, i]
            for a in range(k):
                Ws[g, i, a] = swg * W[i, q + a]
        for i in range(q):  # D = C_g − W[:, :q]ᵀ W = Z_gᵀ V_g⁻¹ [Z_g X_g y_g]
            for c in range(d):
                s = cross[g, i, c]
                for m in range(q):
                    s -= W[m, i] * W[m, c]
                if c < q:
                    zvz[i, c] += swg * swg * s
                else:
                    Ds[g, i, c - q] = swg * s
    return logdet, Ws, Ds, zvz


def group_pass_numba(
    L: np.ndarray, cross: np.ndarray, w: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Σ m_g log|M_g|, Σ m_g W_gᵀW_g (on [X y]), Σ m_g Z_gᵀV_g⁻¹Z_g and the gradient tensor.

    Same outputs as :func:`group_pass_numpy`: the numba kernel does the per-group algebra,
    and the two sums of outer products over groups are single BLAS matrix products.
    """
    n_groups, q, d = cross.shape
    k = d - q
    logdet, Ws, Ds, zvz = _group_factors(L, cross, np.sqrt(w))
    flat = Ws.reshape(n_groups * q, k)
    corr = flat.T @ flat
    Df = Ds.reshape(n_groups, q * k)
    H = (Df.T @ Df).reshape(q, k, q, k).transpose(0, 2, 1, 3)
    return logdet, corr, zvz, H


def group_pass_numpy(
    L: np.ndarray, cross: np.ndarray, w: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Plain-numpy twin of :func:`group_pass_numba` (the test oracle).

    With ``C_g = Z_gᵀ[Z_g X_g y_g]``, ``T_g = LᵀC_g``, ``M_g = I + T_g[:, :q] L = R_g R_gᵀ``
    and ``W_g = R_g⁻¹T_g``: ``W_gᵀW_g = C_gᵀ L M_g⁻¹ Lᵀ C_g`` is the Woodbury correction,
    and ``D_g = C_g − W_g[:, :q]ᵀW_g = (I + Z_gᵀZ_g Ψ)⁻¹ C_g = Z_gᵀV_g⁻¹[Z_g X_g y_g]``
    gives the gradient: ∂ℓ/∂Ψ = −½ Σ m Z_gᵀV_g⁻¹Z_g + ν/(2qf) Σ m u_g u_gᵀ
    + [REML] ½ Σ m B_g P⁻¹ B_gᵀ, with ``B_g = D_g[:, X]``, ``u_g = D_g[:, y] − B_g β̂``;
    ``H[i, j, a, b] = Σ m D_g[i, a] D_g[j, b]`` over the [X y] columns holds both sums.
    """
    q = cross.shape[1]
    T = np.einsum("ji,gjc->gic", L, cross)
    M = np.eye(q) + T[:, :, :q] @ L
    R = np.linalg.cholesky(M)
    W = np.linalg.solve(R, T)
    logdet = float(2.0 * w @ np.log(np.diagonal(R, axis1=1, axis2=2)).sum(axis=1))
    Wxy = W[:, :, q:]
    corr = np.einsum("g,gia,gib->ab", w, Wxy, Wxy)
    D = cross - np.einsum("gmi,gmc->gic", W[:, :, :q], W)
    zvz = np.einsum("g,gij->ij", w, D[:, :, :q])
    H = np.einsum("g,gia,gjb->ijab", w, D[:, :, q:], D[:, :, q:])
    return logdet, corr, zvz, H


GroupPass = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, Any, Any, Any]]


# -- the profiled criterion -------------------------------------------------------------------
@functools.cache
def _tril(q: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.tril_indices(q)``, computed once per q (it costs more than a criterion pass on a
    small replicate)."""
    return np.tril_indices(q)


def unpack(theta: np.ndarray, q: int) -> np.ndarray:
    """Lower-triangular L from θ (its lower triangle, row by row)."""
    L = np.zeros((q, q))
    L[_tril(q)] = theta
    return L


def pack(L: np.ndarray) -> np.ndarray:
    return np.asarray(L, dtype=np.float64)[_tril(L.shape[0])]


def theta_from_cov(cov_re_unscaled: np.ndarray) -> np.ndarray:
    """θ of the relative covariance Ψ (statsmodels' ``cov_re / scale``); a singular Ψ (an
    estimate on the boundary) gets the triangular factor of its eigen-decomposition."""
    psi = np.atleast_2d(np.asarray(cov_re_unscaled, dtype=np.float64))
    psi = (psi + psi.T) / 2
    try:
        return pack(np.linalg.cholesky(psi))
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(psi)
        half = vecs * np.sqrt(np.clip(vals, 0.0, None))
        # half·halfᵀ = Ψ; the QR of halfᵀ turns half into a lower-triangular factor
        r = linalg.qr(half.T, mode="r")[0]
        L = r.T * np.where(np.diag(r) < 0, -1.0, 1.0)
        return pack(L)


@dataclass
class Profiled:
    """The criterion and what it profiles out, at one θ."""

    llf: float
    grad: np.ndarray  # ∂ℓ/∂θ
    fe_params: np.ndarray
    scale: float
    cov_re: np.ndarray  # σ² Ψ
    grad_psi: np.ndarray  # ∂ℓ/∂Ψ (symmetric), for the boundary check


def profiled(
    theta: np.ndarray,
    rep: ReplicateStats,
    q: int,
    p: int,
    reml: bool,
    kernel: GroupPass = group_pass_numba,
) -> Profiled:
    """statsmodels' ``MixedLM.loglike`` (σ² and β profiled out) and its gradient in θ."""
    L = unpack(theta, q)
    logdet, corr, zvz, H = kernel(L, rep.cross, rep.w)
    G = rep.gram - corr
    P = G[:p, :p]
    # numpy rather than scipy's cho_factor/cho_solve: on a small replicate their wrappers
    # cost more than the criterion pass itself
    cP = np.linalg.cholesky(P)  # raises LinAlgError unless P is positive definite
    beta = np.linalg.solve(cP.T, np.linalg.solve(cP, G[:p, p]))
    qf = float(G[p, p] - G[:p, p] @ beta)
    nu = rep.n - p if reml else rep.n
    if not qf > 0.0 or not nu > 0.0:
        raise FloatingPointError("the replicate's GLS residuals vanish; no scale to estimate")
    logdet_p = 2.0 * float(np.sum(np.log(np.diag(cP))))
    llf = (
        -0.5 * logdet
        - 0.5 * nu * math.log(qf)
        - (0.5 * logdet_p if reml else 0.0)
        + 0.5 * nu * (math.log(nu) - 1.0 - LOG_2PI)
    )
    e = np.append(-beta, 1.0)
    g_psi = -0.5 * zvz + (0.5 * nu / qf) * np.einsum("ijab,a,b->ij", H, e, e)
    if reml:
        p_inv = np.linalg.inv(P)
        g_psi += 0.5 * np.einsum("ijab,ab->ij", H[:, :, :p, :p], p_inv)
    g_psi = (g_psi + g_psi.T) / 2
    grad = pack(2.0 * g_psi @ L)
    scale = qf / nu
    return Profiled(llf, grad, beta, scale, scale * (L @ L.T), g_psi)


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
    rows, cols = _tril(q)
    return [(0.0, None) if r == c else (None, None) for r, c in zip(rows, cols, strict=True)]


def _projected_grad(theta: np.ndarray, grad: np.ndarray, q: int) -> float:
    """Largest gradient component that a bounded step could still follow (for maximising)."""
    g = grad.copy()
    rows, cols = _tril(q)
    on_bound = (rows == cols) & (theta <= 0.0) & (g < 0.0)
    g[on_bound] = 0.0
    return float(np.max(np.abs(g))) if g.size else 0.0


def z_scales(rep: ReplicateStats, q: int) -> np.ndarray:
    """Root mean square of each random-effects column in the replicate (1 where it is 0).

    The optimiser works on φ = θ of Ψ̃ = SΨS (S the diagonal of these scales): the relative
    covariance of the random effects' contributions ``z_j b_j``, so that the variance of a
    random slope of a variable in thousands is not a million times smaller than the
    intercept's next to it.
    """
    zz = np.einsum("g,gjj->j", rep.w, rep.cross[:, :, :q]) / rep.n
    return np.where(zz > 0.0, np.sqrt(np.where(zz > 0.0, zz, 1.0)), 1.0)


class _Criterion:
    """The profiled criterion of one replicate as a function of φ (see :func:`z_scales`)."""

    def __init__(self, rep: ReplicateStats, q: int, p: int, reml: bool, kernel: GroupPass):
        self.rep, self.q, self.p, self.reml, self.kernel = rep, q, p, reml, kernel
        self.s = z_scales(rep, q)
        self.per_obs = 1.0 / rep.n  # statsmodels scales its objective per observation too
        self.n_eval = 0

    def theta(self, phi: np.ndarray) -> np.ndarray:
        return pack(unpack(phi, self.q) / self.s[:, None])

    def phi(self, theta: np.ndarray) -> np.ndarray:
        return pack(self.s[:, None] * unpack(theta, self.q))

    def psi_tilde(self, phi: np.ndarray) -> np.ndarray:
        Lt = unpack(phi, self.q)
        return Lt @ Lt.T

    def at(self, phi: np.ndarray) -> Profiled:
        self.n_eval += 1
        return profiled(self.theta(phi), self.rep, self.q, self.p, self.reml, self.kernel)

    def llf(self, phi: np.ndarray) -> float:
        """The criterion, or −∞ where it cannot be evaluated (a singular GLS system)."""
        try:
            return self.at(phi).llf
        except Exception as exc:
            if not is_numerical_failure(exc):
                raise
            return -math.inf

    def negative(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """Per-observation −ℓ and its gradient in φ, for the minimisers."""
        try:
            pr = self.at(phi)
        except Exception as exc:
            if not is_numerical_failure(exc):
                raise
            return math.inf, np.zeros_like(phi)
        grad_phi = pack(unpack(pr.grad, self.q) / self.s[:, None])  # ∂ℓ/∂L̃ = S⁻¹ ∂ℓ/∂L
        return -pr.llf * self.per_obs, -grad_phi * self.per_obs

    def grad_psi_tilde(self, pr: Profiled) -> np.ndarray:
        """∂ℓ/∂Ψ̃ = S⁻¹ (∂ℓ/∂Ψ) S⁻¹."""
        return pr.grad_psi / np.outer(self.s, self.s)


def _escape_boundary(phi: np.ndarray, pr: Profiled, crit: _Criterion) -> np.ndarray | None:
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


def _climb(crit: _Criterion, phi0: np.ndarray, maxiter: int) -> _Ascent:
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


def _restarts(crit: _Criterion, phi0: np.ndarray, phi: np.ndarray) -> list[tuple[str, np.ndarray]]:
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


def _scout(crit: _Criterion, phi: np.ndarray) -> tuple[float, np.ndarray]:
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


def _near_boundary(crit: _Criterion, phi: np.ndarray) -> bool:
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
    crit = _Criterion(rep, q, p, reml, kernel)
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
        _group_factors(unpack(self.theta0, self.stats.q), self.stats.cross[:1], np.ones(1))

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
