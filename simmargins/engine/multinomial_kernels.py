"""Array kernels: every outcome's margin of a multi-outcome model over draws, no S×N matrix.

``outcome_margins(model, X, offset, weights, B)`` returns the (S, J) matrix
Σᵢ wᵢ p_ij(θ⁽ᵈ⁾) / Σᵢ wᵢ (probabilities as in :mod:`.multinomial`). The rows are split into
a fixed number of chunks whatever the thread count; each chunk sums tiles of
``_TILE`` rows plainly and adds each tile's sums into one Neumaier-compensated
accumulator per draw and outcome, and the chunks are combined in order at the
end, so every bit of the result is independent of the threads. A row's probabilities for
one draw are formed in registers (J values) and added at once: nothing of size draws × rows
is held. Its numpy twin, the test oracle, is :func:`.multinomial.outcome_margins_numpy`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .kernels import _h, _neumaier
from .multinomial import MULTINOMIAL, OutcomeModel

_N_CHUNKS = 64
_TILE = 64  # rows summed plainly before one compensated addition per draw and outcome


@numba.njit(cache=True, error_model="numpy")
def _add_tile(tile: np.ndarray, acc: np.ndarray, comp: np.ndarray, c: int) -> None:
    """Add a tile's plain sums into chunk c's compensated accumulators."""
    s, j_out = tile.shape
    for d in range(s):
        for j in range(j_out):
            acc[c, d, j], comp[c, d, j] = _neumaier(acc[c, d, j], comp[c, d, j], tile[d, j])


@numba.njit(cache=True, error_model="numpy")
def _combine(acc: np.ndarray, comp: np.ndarray, wsum: float) -> np.ndarray:
    n_chunks, s, j_out = acc.shape
    out = np.empty((s, j_out))
    for d in range(s):
        for j in range(j_out):
            tot, tc = 0.0, 0.0
            for c in range(n_chunks):
                tot, tc = _neumaier(tot, tc, acc[c, d, j])
                tot, tc = _neumaier(tot, tc, comp[c, d, j])
            out[d, j] = (tot + tc) / wsum
    return out


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _softmax_numba(
    X: np.ndarray, w: np.ndarray, E: np.ndarray, n_chunks: int
) -> tuple[np.ndarray, np.ndarray]:
    """E: (S, M, K) equation coefficients; outcome 0 is the baseline (η = 0)."""
    n, k = X.shape
    s, m_eq, _ = E.shape
    j_out = m_eq + 1
    acc = np.zeros((n_chunks, s, j_out))
    comp = np.zeros((n_chunks, s, j_out))
    for c in numba.prange(n_chunks):
        eta = np.empty(j_out)
        tile = np.empty((s, j_out))
        r_lo, r_hi = c * n // n_chunks, (c + 1) * n // n_chunks
        for t0 in range(r_lo, r_hi, _TILE):
            tile[:] = 0.0
            for i in range(t0, min(r_hi, t0 + _TILE)):
                wi = w[i]
                for d in range(s):
                    top = 0.0
                    eta[0] = 0.0
                    for m in range(m_eq):
                        v = 0.0
                        for q in range(k):
                            v += X[i, q] * E[d, m, q]
                        eta[m + 1] = v
                        top = max(top, v)
                    tot = 0.0
                    for j in range(j_out):
                        eta[j] = math.exp(eta[j] - top)
                        tot += eta[j]
                    scale = wi / tot
                    for j in range(j_out):
                        tile[d, j] += scale * eta[j]
            _add_tile(tile, acc, comp, c)
    return acc, comp


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _ordinal_numba(
    X: np.ndarray, off: np.ndarray, w: np.ndarray, beta: np.ndarray, cuts: np.ndarray,
    code: int, n_chunks: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """beta: (S, K); cuts: (S, J − 1) cut points; F the inverse link ``code``."""
    n, k = X.shape
    s, n_cut = cuts.shape
    j_out = n_cut + 1
    acc = np.zeros((n_chunks, s, j_out))
    comp = np.zeros((n_chunks, s, j_out))
    for c in numba.prange(n_chunks):
        tile = np.empty((s, j_out))
        r_lo, r_hi = c * n // n_chunks, (c + 1) * n // n_chunks
        for t0 in range(r_lo, r_hi, _TILE):
            tile[:] = 0.0
            for i in range(t0, min(r_hi, t0 + _TILE)):
                wi = w[i]
                for d in range(s):
                    xb = off[i]
                    for q in range(k):
                        xb += X[i, q] * beta[d, q]
                    below = 0.0
                    for j in range(n_cut):
                        above = _h(code, cuts[d, j] - xb, 1.0)
                        tile[d, j] += wi * (above - below)
                        below = above
                    tile[d, n_cut] += wi * (1.0 - below)
            _add_tile(tile, acc, comp, c)
    return acc, comp


def outcome_margins(
    model: OutcomeModel,
    X: np.ndarray,
    offset: np.ndarray | None,
    weights: np.ndarray,
    B: np.ndarray,
) -> np.ndarray:
    """(S, J) margins Σᵢ wᵢ p_ij(θ⁽ᵈ⁾) / Σᵢ wᵢ for each draw row θ⁽ᵈ⁾ of ``B``.

    Examples
    --------
    >>> import numpy as np
    >>> from simmargins.engine.multinomial import MULTINOMIAL, OutcomeModel
    >>> model = OutcomeModel(MULTINOMIAL, n_exog=1, n_outcomes=2)
    >>> out = outcome_margins(model, np.ones((3, 1)), None, np.ones(3), np.zeros((1, 1)))
    >>> out.round(3).tolist()
    [[0.5, 0.5]]
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    B = np.ascontiguousarray(B, dtype=np.float64)
    n = X.shape[0]
    if B.shape[0] == 0:
        return np.zeros((0, model.n_outcomes))
    chunks = max(1, min(_N_CHUNKS, n))
    if model.kind == MULTINOMIAL:
        acc, comp = _softmax_numba(X, w, np.ascontiguousarray(model.equations(B)), chunks)
    else:
        assert model.cdf is not None
        off = np.zeros(n) if offset is None else np.ascontiguousarray(offset, dtype=np.float64)
        beta = np.ascontiguousarray(B[:, : model.n_exog])
        cuts = np.ascontiguousarray(model.cuts(B))
        acc, comp = _ordinal_numba(X, off, w, beta, cuts, model.cdf.code, chunks)
    return _combine(acc, comp, float(math.fsum(w)))
