"""The profiled (RE)ML criterion of a Gaussian mixed model, from a replicate's statistics.

With ``Ψ = LLᵀ`` (θ the lower triangle of L, as lme4's θ), ``M_g = I + LᵀZ_gᵀZ_g L``,
``ν = n − p`` under REML and ``n`` under ML, and multiplicities ``m_g``,

    ℓ(θ) = −½ Σ m_g log|M_g| − ν/2 log qf − [REML] ½ log|XᵀV⁻¹X| + ν/2 (log ν − 1 − log 2π)

with the Woodbury pieces

    [X y]ᵀV⁻¹[X y] = Σ m_g ([X_g y_g]ᵀ[X_g y_g] − W_gᵀW_g),   W_g = R_g⁻¹Lᵀ Z_gᵀ[X_g y_g]

(``R_g`` the Cholesky factor of ``M_g``): ``β̂`` is the GLS solution of that system and
``qf`` its residual quadratic form. These are exactly the terms of ``MixedLM.loglike`` (σ²
and β profiled out, constants included), so ``ℓ`` equals statsmodels' ``llf`` at the same
Ψ (:func:`profiled`, with its analytic gradient in θ and in Ψ). The per-group sums come
from :mod:`.lmm_stats`.

Also here: θ ↔ L (:func:`unpack`, :func:`pack`, :func:`theta_from_cov`), and the criterion
in the coordinates the optimiser climbs in, φ = θ of Ψ̃ = SΨS (:func:`z_scales`,
:class:`ScaledCriterion`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from .lmm_stats import GroupPass, ReplicateStats, group_pass_numba
from .problem import is_numerical_failure

LOG_2PI = math.log(2.0 * math.pi)


# -- the profiled criterion -------------------------------------------------------------------
@functools.cache
def tril_indices(q: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.tril_indices(q)``, computed once per q (it costs more than a criterion pass on a
    small replicate)."""
    return np.tril_indices(q)


def unpack(theta: np.ndarray, q: int) -> np.ndarray:
    """Lower-triangular L from θ (its lower triangle, row by row)."""
    L = np.zeros((q, q))
    L[tril_indices(q)] = theta
    return L


def pack(L: np.ndarray) -> np.ndarray:
    return np.asarray(L, dtype=np.float64)[tril_indices(L.shape[0])]


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


# -- in the optimiser's coordinates ---------------------------------------------------------
def z_scales(rep: ReplicateStats, q: int) -> np.ndarray:
    """Root mean square of each random-effects column in the replicate (1 where it is 0).

    The optimiser works on φ = θ of Ψ̃ = SΨS (S the diagonal of these scales): the relative
    covariance of the random effects' contributions ``z_j b_j``, so that the variance of a
    random slope of a variable in thousands is not a million times smaller than the
    intercept's next to it.
    """
    zz = np.einsum("g,gjj->j", rep.w, rep.cross[:, :, :q]) / rep.n
    return np.where(zz > 0.0, np.sqrt(np.where(zz > 0.0, zz, 1.0)), 1.0)


class ScaledCriterion:
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
