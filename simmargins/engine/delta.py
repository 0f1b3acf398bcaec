"""Delta method and curvature: analytic gradients and Hessians of the margins at β̂.

For scenario s, μ_s(β) = Σᵢ wᵢ h(x_{s,i}·β + oᵢ) / Σᵢ wᵢ, so
∇μ_s = Σᵢ wᵢ h′(ηᵢ) x_{s,i} / Σᵢ wᵢ and H_s = Σᵢ wᵢ h″(ηᵢ) x xᵀ / Σᵢ wᵢ. A quantity
θ = W μ has gradient W∇ and Hessian Σ_s W_s H_s; its delta SE is √(gᵀV̂g) and its
relative curvature κ = ‖LᵀHL‖₂ / ‖Lᵀg‖₂ with V̂ = LLᵀ (Bates–Watts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .links import InverseLink


@dataclass
class Moments:
    """μ_s(β̂), ∇μ_s and (for nonlinear links) H_s of one scenario."""

    value: float
    grad: np.ndarray  # (K,)
    hess: np.ndarray | None  # (K, K), None for identity links where it is zero


_CONTROLLER: list[Any] = []  # threadpoolctl's view of the loaded BLAS, made on first use


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with BLAS on one thread (numba's pool keeps its threads).

    The products of a request are thin (N × K with K ~ 10–50, or S × K): OpenBLAS gains
    little from a second thread there, and after each threaded call its workers spin for
    a while. On a machine whose other cores are busy those spinning workers take the core
    the next step needs: a 56-point grid of the seed model at 20,000 rows took 0.5–1.2 s
    with two OpenBLAS threads and 0.16–0.17 s inside this block (issue 12; limiting only
    the moments was not enough, every product of the request has to be in the block).
    Meant to wrap a whole request; nested use is harmless.
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=1, user_api="blas"):
        yield


# rows from which the nonlinear moments run on numba's threads rather than through BLAS
# (below, the kernel launch costs more than the products; the thread fight needs big N)
_NUMBA_ROWS = 4096


def scenario_moments(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    beta: np.ndarray,
    link: InverseLink,
    on_numba: bool | None = None,
) -> Moments:
    """Value, gradient and Hessian of one scenario's margin at β̂.

    For nonlinear links on many rows the passes over X run on numba's thread pool
    (``moments.linear_predictor``, ``moments.weighted_moments``), not BLAS, so that a
    product right after a kernel does not wait for the kernel's threads (issue 12).
    ``on_numba=False`` is the straightforward numpy/BLAS route (the tests' reference);
    None picks by size.
    """
    wn = weights / weights.sum()
    if link.is_identity:
        xbar = wn @ X
        return Moments(float(xbar @ beta + wn @ offset), xbar, None)
    if on_numba is None:
        on_numba = X.shape[0] >= _NUMBA_ROWS
    if on_numba:
        from .moments import linear_predictor, weighted_moments  # numba loads only here

        eta = linear_predictor(X, beta, offset)
        value = float(wn @ link.h(eta))
        grad, hess = weighted_moments(X, wn * link.dh(eta), wn * link.d2h(eta))
        return Moments(value, grad, hess)
    eta = X @ beta + offset
    value = float(wn @ link.h(eta))
    grad = (wn * link.dh(eta)) @ X
    hess = (X * (wn * link.d2h(eta))[:, None]).T @ X
    return Moments(value, grad, hess)


def delta_std_err(G: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """√diag(G V̂ Gᵀ) for a gradient matrix G of shape (L, K)."""
    var = np.einsum("lk,kj,lj->l", G, cov, G)
    return np.sqrt(np.clip(var, 0.0, None))


def relative_curvature(
    G: np.ndarray, hess_factor: list[np.ndarray | None], factor: np.ndarray
) -> np.ndarray:
    """κ per quantity from H·L (the Hessian applied to the covariance factor).

    Taking H·L rather than H lets quantities whose Hessian is only known along the
    whitened directions (by differencing the gradient) share this function. Exactly zero
    where the Hessian is zero (identity links).
    """
    out = np.zeros(G.shape[0])
    for row, HL in enumerate(hess_factor):
        if HL is None:
            continue
        denom = float(np.linalg.norm(factor.T @ G[row]))
        num = float(np.linalg.norm(factor.T @ HL, ord=2))
        out[row] = num / denom if denom > 0 else (np.inf if num > 0 else 0.0)
    return out
