"""Array kernels: predictive margins over draws without a draws × rows matrix.

``margin_draws(X, offset, weights, B, link_code)`` returns, for each draw row of ``B``,
Σᵢ wᵢ h(xᵢ·β + oᵢ) / Σᵢ wᵢ. The numba version streams row blocks through cache once and
keeps per-chunk Neumaier-compensated accumulators for every draw; the numpy twin is the
test oracle. This module knows nothing of pandas, xarray or statsmodels.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._links import CAUCHY, CLOGLOG, IDENTITY, INVERSE_POWER, LOG, LOGIT, LOGLOG, PROBIT

_ROW_BLOCK = 128  # rows whose design fits in L1/L2 while every draw passes over them


@numba.njit(cache=True, inline="always")
def _h(code: int, eta: float, power: float) -> float:
    if code == IDENTITY:
        return eta
    if code == LOGIT:
        # stable in both tails: never exp of a large positive number
        if eta >= 0.0:
            return 1.0 / (1.0 + math.exp(-eta))
        e = math.exp(eta)
        return e / (1.0 + e)
    if code == PROBIT:
        return 0.5 * math.erfc(-eta / math.sqrt(2.0))
    if code == LOG:
        return math.exp(eta)
    if code == CLOGLOG:
        return -math.expm1(-math.exp(eta))
    if code == LOGLOG:
        return math.exp(-math.exp(-eta))
    if code == CAUCHY:
        return 0.5 + math.atan(eta) / math.pi
    if code == INVERSE_POWER:
        return eta ** (1.0 / power)
    return math.nan


@numba.njit(cache=True, parallel=True)
def _margin_draws_numba(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    code: int,
    power: float,
    n_chunks: int,
) -> np.ndarray:
    n, k = X.shape
    s = B.shape[0]
    chunk = (n + n_chunks - 1) // n_chunks
    acc = np.zeros((n_chunks, s))
    comp = np.zeros((n_chunks, s))
    eta = np.empty((n_chunks, _ROW_BLOCK))
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        for b0 in range(lo, hi, _ROW_BLOCK):
            b1 = min(hi, b0 + _ROW_BLOCK)
            for d in range(s):
                for i in range(b0, b1):
                    e = offset[i]
                    for j in range(k):
                        e += X[i, j] * B[d, j]
                    eta[c, i - b0] = e
                total = acc[c, d]
                cc = comp[c, d]
                for i in range(b0, b1):
                    v = weights[i] * _h(code, eta[c, i - b0], power)
                    t = total + v
                    # Neumaier: keep the low-order bits the running sum would lose
                    if abs(total) >= abs(v):
                        cc += (total - t) + v
                    else:
                        cc += (v - t) + total
                    total = t
                acc[c, d] = total
                comp[c, d] = cc
    out = np.zeros(s)
    wsum = 0.0
    for i in range(n):
        wsum += weights[i]
    for d in range(s):
        tot = 0.0
        for c in range(n_chunks):
            tot += acc[c, d] + comp[c, d]
        out[d] = tot / wsum
    return out


def margin_draws_numpy(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    h: object,
) -> np.ndarray:
    """Reference twin: forms the S×N matrix, so only for tests and small problems."""
    eta = B @ X.T + offset[None, :]
    vals = h(eta)  # type: ignore[operator]
    return np.asarray((vals * weights[None, :]).sum(axis=1) / weights.sum(), dtype=np.float64)


def margin_draws(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    code: int,
    power: float = 1.0,
) -> np.ndarray:
    """Weighted mean over rows of h(X β + o), for every draw β in the rows of ``B``."""
    n = X.shape[0]
    # a few chunks per thread balance the load; each holds S accumulators, so not too many
    n_chunks = min(numba.get_num_threads() * 4, max((n + _ROW_BLOCK - 1) // _ROW_BLOCK, 1))
    return _margin_draws_numba(
        np.ascontiguousarray(X, dtype=np.float64),
        np.ascontiguousarray(offset, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(B, dtype=np.float64),
        int(code),
        float(power),
        int(n_chunks),
    )
