"""Group sufficient statistics of a Gaussian linear mixed model and the per-group pass.

For ``y_g = X_g β + Z_g b_g + e_g`` with one grouping factor, every term of the profiled
(RE)ML criterion (:mod:`.lmm_criterion`) reduces to per-group cross products of
``[Z_g X_g y_g]`` (:class:`GroupStatistics`, :func:`group_statistics`). A cluster-bootstrap
replicate is a multiset of the original groups, so its statistics are those of the
distinct groups it holds and their multiplicities ``m_g`` (:class:`ReplicateStats`).

The per-group pass turns them, at one relative covariance factor L, into the Woodbury
pieces of the criterion and the tensor its analytic gradient comes from: a numba kernel
(:func:`group_pass_numba`, compiled with ``cache=True``) and its plain-numpy twin and test
oracle (:func:`group_pass_numpy`, where the algebra is spelled out). One pass costs
O(G·q²·(p+1)²) for the G distinct groups, whatever their lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np


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


def _stacked(endog: np.ndarray, exog: np.ndarray, exog_re: np.ndarray) -> tuple[np.ndarray, int]:
    """[Z X y] as one float array, and q (the columns of Z)."""
    Z = np.asarray(exog_re, dtype=np.float64).reshape(len(endog), -1)
    X = np.asarray(exog, dtype=np.float64).reshape(len(endog), -1)
    return np.column_stack([Z, X, np.asarray(endog, dtype=np.float64)]), Z.shape[1]


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
    A, q = _stacked(endog, exog, exog_re)
    d = A.shape[1]
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


def sample_statistics(
    endog: np.ndarray, exog: np.ndarray, exog_re: np.ndarray, codes: np.ndarray, n_groups: int
) -> ReplicateStats:
    """The whole sample as one replicate (every group once): what
    ``ReplicateStats.from_multiplicities(group_statistics(...), ones)`` gives, with the
    per-group cross products ``Z_gᵀ[Z_g X_g y_g]`` only (q·d sums over the rows) and the
    total ``[X y]ᵀ[X y]`` in one product instead of per-group Gram blocks."""
    A, q = _stacked(endog, exog, exog_re)
    d = A.shape[1]
    cross = np.empty((n_groups, q, d))
    for i in range(q):
        for j in range(d):
            cross[:, i, j] = np.bincount(codes, A[:, i] * A[:, j], minlength=n_groups)
    B = A[:, q:]
    return ReplicateStats(w=np.ones(n_groups), cross=cross, gram=B.T @ B, n=float(len(endog)))


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
