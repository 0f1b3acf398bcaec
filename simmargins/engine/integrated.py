"""Array kernel: population-averaged margins over draws, random effects integrated out.

``integrated_draws(X, Z2, offset, weights, B, sig2, t, omega, code, power)`` returns, for
each draw d,

    μ_d = Σᵢ wᵢ Σ_q ω_q h(xᵢ·β_d + oᵢ + s_{d,i} t_q) / Σᵢ wᵢ,    s²_{d,i} = Σ_c Z2_{i,c} σ²_{d,c},

the row average of E_ε[h(η + s ε)], ε ~ N(0, 1), by the quadrature rule (t_q, ω_q). Each
row's random-effects term z·u is one normal variable whatever the number of independent
normal random effects it has (its variance is Σ_c z²_c σ²_c), so the expectation is one-
dimensional per row; ``Z2`` holds each row's Σ z² per variance component and ``sig2`` each
draw's σ²_c = exp(2·vcp_c), so every draw integrates with its own variances. With
``lognormal=True`` (the log link) the expectation is the closed form exp(η + s²/2).

Layout, as in :mod:`.kernels` (whose vectorisable ``_exp``/``_expit`` it reuses): rows in
tiles of ``_ROW_TILE`` copied once and transposed, draws in blocks of ``_DRAW_BLOCK`` per
tile, the quadrature nodes one more loop inside (each node a vectorised pass over the
tile's rows, summed into the row's value in node order). Rows are cut into a fixed number
of chunks whatever the thread count; each draw's tile sum is pairwise and the tile sums
are Neumaier-compensated per chunk, combined in chunk order, so the result does not
depend on the threads. No draws × rows matrix is formed. The ``*_numpy`` twin forms the
S × N × Q values and is the test oracle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from .kernels import _exp, _expit, _finish, _h, _neumaier
from .links import LOG, LOGIT

_ROW_TILE = 128  # power of two ≥ 16 (pairwise halving)
_DRAW_BLOCK = 8
_N_CHUNKS = 64
_CLAMP = 700.0


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _eta_tile(xt: np.ndarray, off_t: np.ndarray, B: np.ndarray, d: int, out: np.ndarray) -> None:
    """out[i] = o_i + Σ_j x_ij β_d,j, summed in column order (vectorised over rows)."""
    for i in range(_ROW_TILE):
        out[i] = off_t[i]
    for j in range(xt.shape[0]):
        xj = xt[j]
        b = B[d, j]
        for i in range(_ROW_TILE):
            out[i] += b * xj[i]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _uniform(var: np.ndarray) -> bool:
    """Whether every row of the tile has the same random-effects variance (a random
    intercept: then each node's shift σ·t_q is one number for the whole tile)."""
    for i in range(1, _ROW_TILE):
        if var[i] != var[0]:
            return False
    return True


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _logit_shared_sd(
    eta: np.ndarray,
    sd: float,
    t: np.ndarray,
    omega: np.ndarray,
    w_t: np.ndarray,
    e: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[i] = w_i Σ_q ω_q expit(η_i + σ t_q) with one σ for the tile, as
    1 / (1 + e^(−η_i) · e^(−σ t_q)): one exp per row and one per node instead of one per
    row and node, so a node costs a multiply-add and a division. η is clamped to ±700
    first (exact unless |σ t_q| exceeds ~600, where the margin is 0 or 1 to the last bit
    anyway)."""
    for i in range(_ROW_TILE):
        x = eta[i]
        x = -_CLAMP if x < -_CLAMP else x
        x = _CLAMP if x > _CLAMP else x
        e[i] = _exp(-x)
        out[i] = 0.0
    for q in range(t.shape[0]):
        c = math.exp(-sd * t[q])
        wq = omega[q]
        for i in range(_ROW_TILE):
            out[i] += wq / (1.0 + e[i] * c)
    for i in range(_ROW_TILE):
        out[i] *= w_t[i]


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _node_sum(
    code: int,
    power: float,
    lognormal: bool,
    eta: np.ndarray,
    var: np.ndarray,
    t: np.ndarray,
    omega: np.ndarray,
    w_t: np.ndarray,
    sd: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[i] = w_i Σ_q ω_q h(η_i + s_i t_q) with s_i = √var_i (or w_i exp(η_i + var_i/2));
    ``sd`` is scratch space."""
    if lognormal:
        for i in range(_ROW_TILE):
            out[i] = w_t[i] * _exp(eta[i] + 0.5 * var[i])
        return
    if code == LOGIT and _uniform(var):
        _logit_shared_sd(eta, math.sqrt(var[0]), t, omega, w_t, sd, out)
        return
    for i in range(_ROW_TILE):
        sd[i] = np.sqrt(var[i])
        out[i] = 0.0
    for q in range(t.shape[0]):
        tq, wq = t[q], omega[q]
        if code == LOGIT:
            for i in range(_ROW_TILE):
                out[i] += wq * _expit(eta[i] + sd[i] * tq)
        elif code == LOG:
            for i in range(_ROW_TILE):
                out[i] += wq * _exp(eta[i] + sd[i] * tq)
        else:
            for i in range(_ROW_TILE):
                out[i] += wq * _h(code, eta[i] + sd[i] * tq, power)
    for i in range(_ROW_TILE):
        out[i] *= w_t[i]


@numba.njit(cache=True, error_model="numpy")
def _tile_sum(vals: np.ndarray) -> float:
    """Pairwise sum of one tile's values by halving, in a fixed order; ``vals`` is overwritten."""
    h = _ROW_TILE // 2
    while h >= 8:
        for i in range(h):
            vals[i] += vals[i + h]
        h //= 2
    return ((vals[0] + vals[1]) + (vals[2] + vals[3])) + ((vals[4] + vals[5]) + (vals[6] + vals[7]))


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _integrated_numba(
    X: np.ndarray,
    Z2: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    sig2: np.ndarray,
    t: np.ndarray,
    omega: np.ndarray,
    code: int,
    power: float,
    lognormal: bool,
    n_chunks: int,
) -> np.ndarray:
    n, k = X.shape
    c_re = Z2.shape[1]
    s = B.shape[0]
    n_tiles = (n + _ROW_TILE - 1) // _ROW_TILE
    acc = np.zeros((n_chunks, s))
    comp = np.zeros((n_chunks, s))
    for c in numba.prange(n_chunks):
        xt = np.empty((k, _ROW_TILE))
        zt = np.empty((c_re, _ROW_TILE))
        off_t = np.empty(_ROW_TILE)
        w_t = np.empty(_ROW_TILE)
        eta = np.empty(_ROW_TILE)
        var = np.empty(_ROW_TILE)
        vals = np.empty(_ROW_TILE)
        sd = np.empty(_ROW_TILE)
        for tile in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            r0 = tile * _ROW_TILE
            used = min(n, r0 + _ROW_TILE) - r0
            for i in range(_ROW_TILE):
                inside = i < used
                for j in range(k):
                    xt[j, i] = X[r0 + i, j] if inside else 0.0
                for j in range(c_re):
                    zt[j, i] = Z2[r0 + i, j] if inside else 0.0
                off_t[i] = offset[r0 + i] if inside else 0.0
                w_t[i] = weights[r0 + i] if inside else 0.0
            for d0 in range(0, s, _DRAW_BLOCK):
                for d in range(d0, d0 + _DRAW_BLOCK):
                    _eta_tile(xt, off_t, B, d, eta)
                    for i in range(_ROW_TILE):
                        var[i] = 0.0
                    for j in range(c_re):
                        sj = sig2[d, j]
                        for i in range(_ROW_TILE):
                            var[i] += zt[j, i] * sj
                    _node_sum(code, power, lognormal, eta, var, t, omega, w_t, sd, vals)
                    for i in range(used, _ROW_TILE):
                        vals[i] = 0.0  # 0·h(0) is NaN for some power links
                    acc[c, d], comp[c, d] = _neumaier(acc[c, d], comp[c, d], _tile_sum(vals))
    return _finish(acc, comp, weights)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def integrated_draws(
    X: np.ndarray,
    Z2: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    sig2: np.ndarray,
    t: np.ndarray,
    omega: np.ndarray,
    code: int,
    power: float = 1.0,
    lognormal: bool = False,
) -> np.ndarray:
    """Population-averaged margin Σᵢ wᵢ E[h(xᵢβ_d + oᵢ + sᵢ ε)] / Σᵢ wᵢ for every draw d.

    Parameters
    ----------
    X : (N, K) design. Z2 : (N, C) each row's Σ z² per variance component.
    offset, weights : (N,). B : (S, K) fixed-effect draws. sig2 : (S, C) variance draws.
    t, omega : (Q,) quadrature nodes and weights for E over ε ~ N(0, 1).
    code, power : the inverse link (``simmargins.engine.links``).
    lognormal : use the closed form exp(η + s²/2) (log link only; ``t`` is then unused).

    Returns
    -------
    (S,) array.

    Examples
    --------
    >>> import numpy as np
    >>> from simmargins.engine.links import LOGIT
    >>> t, w = np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    >>> X, Z2 = np.ones((3, 1)), np.ones((3, 1))
    >>> out = integrated_draws(X, Z2, np.zeros(3), np.ones(3), np.zeros((1, 1)),
    ...                        np.ones((1, 1)), t, w, LOGIT)
    >>> float(out[0])  # (expit(-1) + expit(1)) / 2
    0.5
    """
    X, Z2, offset, weights = _f64(X), _f64(Z2), _f64(offset), _f64(weights)
    B, sig2, t, omega = _f64(B), _f64(sig2), _f64(t), _f64(omega)
    n, k = X.shape
    if Z2.shape[0] != n or B.shape[1] != k or sig2.shape != (B.shape[0], Z2.shape[1]):
        raise ValueError(
            f"shapes do not match: X {X.shape}, Z2 {Z2.shape}, B {B.shape}, sig2 {sig2.shape}"
        )
    if offset.shape != (n,) or weights.shape != (n,) or t.shape != omega.shape:
        raise ValueError("offset and weights need one value per row, t and omega one per node")
    s = B.shape[0]
    extra = -s % _DRAW_BLOCK
    if extra:
        B = np.vstack([B, np.zeros((extra, k))])
        sig2 = np.vstack([sig2, np.zeros((extra, sig2.shape[1]))])
    n_chunks = min(_N_CHUNKS, max((n + _ROW_TILE - 1) // _ROW_TILE, 1))
    out = _integrated_numba(
        X, Z2, offset, weights, B, sig2, t, omega, int(code), float(power), bool(lognormal),
        n_chunks,
    )
    return out[:s]


def integrated_draws_numpy(
    X: np.ndarray,
    Z2: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    sig2: np.ndarray,
    t: np.ndarray,
    omega: np.ndarray,
    h: Callable[[np.ndarray], np.ndarray],
    lognormal: bool = False,
) -> np.ndarray:
    """Reference twin of :func:`integrated_draws` (S × N × Q values: tests only)."""
    eta = B @ X.T + offset[None, :]
    var = sig2 @ Z2.T
    if lognormal:
        vals = np.exp(eta + 0.5 * var)
    else:
        sd = np.sqrt(var)
        vals = np.einsum("q,sqn->sn", omega, h(eta[:, None, :] + sd[:, None, :] * t[:, None]))
    return np.asarray(vals @ weights / weights.sum(), dtype=np.float64)
