"""Outcome probabilities of multi-outcome models, their gradients and Hessians (numpy).

Two families, one parameter vector θ each, in the order of statsmodels' ``cov_params()``:

* **multinomial logit** (``MNLogit``): J outcomes, the first the baseline; θ holds the
  M = J − 1 equations' coefficients, equation-major (β₁ then β₂ …, K each). With
  η_m = x·β_m (η₀ = 0), p_j = exp(η_j) / Σ_l exp(η_l), and for m, n ≥ 1

      ∂p_j/∂β_m = p_j (δ_jm − p_m) x,
      ∂²p_j/∂β_m∂β_nᵀ = p_j [(δ_jn − p_n)(δ_jm − p_m) − p_m (δ_mn − p_n)] x xᵀ.

* **ordinal** (``OrderedModel``, cumulative link with CDF F): θ = (β (K), a (J − 1)) with
  cut points c₀ = a₀, c_k = c_{k−1} + exp(a_k) (statsmodels' increments), u_k = c_k − x·β − o
  and p_j = F(u_j) − F(u_{j−1}) (F(u₋₁) = 0, F(u_{J−1}) = 1). With f = F′, g = F″ and
  D = ∂c/∂a (D_k0 = 1, D_km = exp(a_m) for 1 ≤ m ≤ k):

      ∂p_j/∂β = −(f_j − f_{j−1}) x,  ∂p_j/∂c_k = f_k ([k=j] − [k=j−1]),
      ∂²p_j/∂β∂βᵀ = (g_j − g_{j−1}) x xᵀ,  ∂²p_j/∂β∂c_k = −g_k ([k=j] − [k=j−1]) x,
      ∂²p_j/∂c_k∂c_l = δ_kl g_k ([k=j] − [k=j−1]),

  carried to a by ∇_a = Dᵀ∇_c and H_aa = Dᵀ H_cc D + diag_m(exp(a_m) Σ_{k≥m} ∂p_j/∂c_k).

A margin is μ_j = Σᵢ wᵢ p_ij; :func:`outcome_moments` returns μ, ∂μ/∂θ and ∂²μ/∂θ∂θᵀ at one
θ, every outcome at once. The draws' kernel is :mod:`.multinomial_kernels` (numba; its
numpy twin is :func:`outcome_margins_numpy`). Knows nothing of pandas or statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .links import InverseLink

MULTINOMIAL, ORDINAL = "multinomial", "ordinal"

# rows per block of the moment passes: a block's (rows × J × M) coefficients stay small
_BLOCK = 1 << 14


@dataclass(frozen=True)
class OutcomeModel:
    """A multi-outcome model's shape: kind, K design columns, J outcomes, and the CDF of an
    ordinal model (None for the multinomial logit)."""

    kind: str
    n_exog: int
    n_outcomes: int
    cdf: InverseLink | None = None

    @property
    def n_params(self) -> int:
        k, j = self.n_exog, self.n_outcomes
        return k * (j - 1) if self.kind == MULTINOMIAL else k + j - 1

    def equations(self, theta: np.ndarray) -> np.ndarray:
        """Multinomial: the (…, M, K) coefficients of the non-baseline equations."""
        return theta.reshape(*theta.shape[:-1], self.n_outcomes - 1, self.n_exog)

    def cuts(self, theta: np.ndarray) -> np.ndarray:
        """Ordinal: the (…, J − 1) cut points from (β, a)."""
        a = theta[..., self.n_exog :]
        steps = np.concatenate([a[..., :1], np.exp(a[..., 1:])], axis=-1)
        return np.cumsum(steps, axis=-1)


def probabilities(
    model: OutcomeModel, X: np.ndarray, offset: np.ndarray | None, theta: np.ndarray
) -> np.ndarray:
    """(rows, J) outcome probabilities at θ (one row per row of ``X``)."""
    if model.kind == MULTINOMIAL:
        eta = X @ model.equations(theta).T
        eta = np.concatenate([np.zeros((X.shape[0], 1)), eta], axis=1)
        eta -= eta.max(axis=1, keepdims=True)
        e = np.exp(eta)
        return e / e.sum(axis=1, keepdims=True)
    assert model.cdf is not None
    xb = X @ theta[: model.n_exog] + (0.0 if offset is None else offset)
    F = model.cdf.h(model.cuts(theta)[None, :] - xb[:, None])
    ones = np.ones((X.shape[0], 1))
    return np.diff(np.concatenate([0.0 * ones, F, ones], axis=1), axis=1)


def outcome_margins_numpy(
    model: OutcomeModel,
    X: np.ndarray,
    offset: np.ndarray | None,
    weights: np.ndarray,
    B: np.ndarray,
) -> np.ndarray:
    """(S, J) margins Σᵢ wᵢ p_ij(θ⁽ᵈ⁾) / Σᵢ wᵢ per draw: the kernel's plain-numpy twin."""
    wn = weights / weights.sum()
    out = [wn @ probabilities(model, X, offset, b) for b in B]
    return np.array(out).reshape(-1, model.n_outcomes)


def outcome_moments(
    model: OutcomeModel,
    X: np.ndarray,
    offset: np.ndarray | None,
    wn: np.ndarray,
    theta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """μ_j = Σᵢ wnᵢ p_ij at θ, its gradient (J, P) and Hessian (J, P, P) (module doc).

    ``wn`` are the rows' weights as they enter the sum (normalised by the caller).
    """
    J, P = model.n_outcomes, model.n_params
    value, grad, hess = np.zeros(J), np.zeros((J, P)), np.zeros((J, P, P))
    for r0 in range(0, X.shape[0], _BLOCK):
        sl = slice(r0, r0 + _BLOCK)
        off = None if offset is None else offset[sl]
        part = _multinomial if model.kind == MULTINOMIAL else _ordinal
        v, g, h = part(model, X[sl], off, wn[sl], theta)
        value += v
        grad += g
        hess += h
    return value, grad, hess


def _multinomial(
    model: OutcomeModel, X: np.ndarray, _off: np.ndarray | None, wn: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    J, K = model.n_outcomes, model.n_exog
    M = J - 1
    p = probabilities(model, X, None, theta)  # (n, J)
    value = wn @ p
    eye = np.eye(J)
    # a[i, j, m] = p_j (δ_jm − p_m) for the non-baseline m
    d = eye[None, :, 1:] - p[:, None, 1:]  # (n, J, M): δ_jm − p_m
    a = p[:, :, None] * d
    grad = np.einsum("i,ijm,ik->jmk", wn, a, X).reshape(J, M * K)
    hess = np.zeros((J, M * K, M * K))
    for m in range(M):
        for n in range(m, M):
            # c[i, j] = p_j [(δ_jn − p_n)(δ_jm − p_m) − p_m (δ_mn − p_n)]
            c = p * (d[:, :, n] * d[:, :, m] - (p[:, m + 1] * (eye[m, n] - p[:, n + 1]))[:, None])
            for j in range(J):
                block = X.T @ (X * (wn * c[:, j])[:, None])
                hess[j, m * K : (m + 1) * K, n * K : (n + 1) * K] = block
                if n != m:
                    hess[j, n * K : (n + 1) * K, m * K : (m + 1) * K] = block.T
    return value, grad, hess


def _ordinal(
    model: OutcomeModel, X: np.ndarray, off: np.ndarray | None, wn: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    assert model.cdf is not None
    J, K, P = model.n_outcomes, model.n_exog, model.n_params
    xb = X @ theta[:K] + (0.0 if off is None else off)
    u = model.cuts(theta)[None, :] - xb[:, None]  # (n, J − 1)
    F, f, g = model.cdf.all_three(u)
    pad = np.zeros((X.shape[0], 1))
    value = wn @ np.diff(np.concatenate([pad, F, pad + 1.0], axis=1), axis=1)
    sf = wn @ f  # Σ w f_k per cut point
    xf = (X * wn[:, None]).T @ f  # (K, J − 1): Σ w f_k x
    xg = (X * wn[:, None]).T @ g
    sg = wn @ g
    gram = np.array([X.T @ (X * (wn * g[:, k])[:, None]) for k in range(J - 1)])
    a = theta[K:]
    D = np.tril(np.ones((J - 1, J - 1)) * np.concatenate([[1.0], np.exp(a[1:])])[None, :])
    grad, hess = np.zeros((J, P)), np.zeros((J, P, P))
    for j in range(J):
        sel = np.zeros(J - 1)  # [k = j] − [k = j − 1]
        if j < J - 1:
            sel[j] = 1.0
        if j > 0:
            sel[j - 1] = -1.0
        g_c = sel * sf
        grad[j, :K] = -(xf @ sel)
        grad[j, K:] = D.T @ g_c
        hess[j, :K, :K] = np.tensordot(sel, gram, axes=1)
        h_bc = -(xg * sel[None, :])  # (K, J − 1)
        hess[j, :K, K:] = h_bc @ D
        hess[j, K:, :K] = hess[j, :K, K:].T
        h_cc = np.diag(sel * sg)
        tail = np.cumsum(g_c[::-1])[::-1]  # Σ_{k≥m} ∂μ/∂c_k
        curv = np.concatenate([[0.0], np.exp(a[1:]) * tail[1:]])
        hess[j, K:, K:] = D.T @ h_cc @ D + np.diag(curv)
    return value, grad, hess
