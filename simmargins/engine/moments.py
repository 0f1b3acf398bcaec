"""The delta method's row passes on numba's pool: η = Xβ + o, ∇ = Σ aᵢxᵢ and
H = Σ bᵢxᵢxᵢᵀ, tiled like the margin kernel and chunked so the result does not depend on
the thread count. They run here rather than through BLAS so that the two thread pools
never fight (see :mod:`.kernels`, "Threads")."""

from __future__ import annotations

import numba
import numpy as np

from .kernels import _ROW_TILE, _as_f64, _n_chunks  # sets OMP_WAIT_POLICY first


@numba.njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
def _gram_tile(
    xt: np.ndarray, a_t: np.ndarray, b_t: np.ndarray, c_t: np.ndarray, wb: np.ndarray,
    g: np.ndarray, H: np.ndarray, cx: np.ndarray,
) -> None:  # fmt: skip
    """g += Σ_i a_i x_i, cx += Σ_i c_i x_i and H[p, q ≤ p] += Σ_i b_i x_ip x_iq over one
    transposed tile.

    Each tile sum is a dot product over 128 rows that reassociation lets vectorise (its
    order is fixed by the build, not by the threads); four columns q share each load of
    b·x_p.
    """
    k = xt.shape[0]
    for p in range(k):
        xp = xt[p]
        t = 0.0
        u = 0.0
        for i in range(_ROW_TILE):
            wb[i] = b_t[i] * xp[i]
            t += a_t[i] * xp[i]
            u += c_t[i] * xp[i]
        g[p] += t
        cx[p] += u
        q = 0
        while q + 4 <= p + 1:
            x0, x1, x2, x3 = xt[q], xt[q + 1], xt[q + 2], xt[q + 3]
            s0 = s1 = s2 = s3 = 0.0
            for i in range(_ROW_TILE):
                v = wb[i]
                s0 += v * x0[i]
                s1 += v * x1[i]
                s2 += v * x2[i]
                s3 += v * x3[i]
            H[p, q] += s0
            H[p, q + 1] += s1
            H[p, q + 2] += s2
            H[p, q + 3] += s3
            q += 4
        while q <= p:
            xq = xt[q]
            s0 = 0.0
            for i in range(_ROW_TILE):
                s0 += wb[i] * xq[i]
            H[p, q] += s0
            q += 1


@numba.njit(cache=True, inline="always", error_model="numpy")
def _load_cols(
    X: np.ndarray, cols: np.ndarray, r0: int, r1: int, xt: np.ndarray,
) -> None:  # fmt: skip
    """Copy the columns ``cols`` of rows r0:r1 into the transposed tile (zeros beyond r1)."""
    for i in range(_ROW_TILE):
        if r0 + i < r1:
            for j in range(cols.shape[0]):
                xt[j, i] = X[r0 + i, cols[j]]
        else:
            for j in range(cols.shape[0]):
                xt[j, i] = 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _load_vec(v: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
    for i in range(_ROW_TILE):
        out[i] = v[r0 + i] if r0 + i < r1 else 0.0


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _moments_numba(
    X: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, n_chunks: int, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = X.shape[0]
    k = cols.shape[0]
    n_tiles = (n + _ROW_TILE - 1) // _ROW_TILE
    g_acc = np.zeros((n_chunks, k))
    q_acc = np.zeros((n_chunks, k))
    h_acc = np.zeros((n_chunks, k, k))
    for ch in numba.prange(n_chunks):
        xt = np.empty((k, _ROW_TILE))
        a_t = np.empty(_ROW_TILE)
        b_t = np.empty(_ROW_TILE)
        c_t = np.empty(_ROW_TILE)
        wb = np.empty(_ROW_TILE)
        for tile in range(ch * n_tiles // n_chunks, (ch + 1) * n_tiles // n_chunks):
            r0 = tile * _ROW_TILE
            r1 = min(n, r0 + _ROW_TILE)
            _load_cols(X, cols, r0, r1, xt)
            _load_vec(a, r0, r1, a_t)
            _load_vec(b, r0, r1, b_t)
            _load_vec(c, r0, r1, c_t)
            _gram_tile(xt, a_t, b_t, c_t, wb, g_acc[ch], h_acc[ch], q_acc[ch])
    g = np.zeros(k)
    cx = np.zeros(k)
    H = np.zeros((k, k))
    for ch in range(n_chunks):  # chunks combined in order: the result ignores the threads
        for p in range(k):
            g[p] += g_acc[ch, p]
            cx[p] += q_acc[ch, p]
            for q in range(p + 1):
                H[p, q] += h_acc[ch, p, q]
    for p in range(k):
        for r in range(p):
            H[r, p] = H[p, r]
    return g, H, cx


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")
def _linear_predictor_numba(X: np.ndarray, beta: np.ndarray, offset: np.ndarray) -> np.ndarray:
    n, k = X.shape
    eta = np.empty(n)
    for i in numba.prange(n):
        t = offset[i]
        for j in range(k):
            t += X[i, j] * beta[j]
        eta[i] = t
    return eta


def linear_predictor(X: np.ndarray, beta: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """η = Xβ + o on numba's threads (no BLAS pool); each η summed in column order."""
    X, beta, offset = _as_f64(X), _as_f64(beta), _as_f64(offset)
    return np.asarray(_linear_predictor_numba(X, beta, offset))


def weighted_moments(X: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Σᵢ aᵢ xᵢ, Σᵢ bᵢ xᵢ xᵢᵀ) in one pass over the rows of X on numba's threads.

    The delta method's gradient and Hessian of a margin (a = w h′(η), b = w h″(η)),
    without BLAS, so that nothing competes with the kernels' thread pool. Rows are tiled
    and chunked like ``margin_draws``: the result does not depend on the thread count.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 2.0], [1.0, -1.0]])
    >>> g, H = weighted_moments(X, np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    >>> g, H
    (array([3., 0.]), array([[2., 1.],
           [1., 5.]]))
    """
    X, a, b = _as_f64(X), _as_f64(a), _as_f64(b)
    if X.ndim != 2 or a.shape != (X.shape[0],) or b.shape != (X.shape[0],):
        raise ValueError(f"X must be (rows, columns) with a and b one per row; got {X.shape}")
    cols = np.arange(X.shape[1], dtype=np.int64)
    g, H, _ = _moments_numba(X, a, b, b, _n_chunks(X.shape[0]), cols)
    return np.asarray(g), np.asarray(H)


def weighted_moments_cols(
    X: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Σᵢ aᵢxᵢ, Σᵢ bᵢxᵢxᵢᵀ, Σᵢ cᵢxᵢ) over the columns ``cols`` of X only (xᵢ = X[i, cols]),
    in one pass as :func:`weighted_moments`: the cost is len(cols)² per row."""
    X, a, b, c = _as_f64(X), _as_f64(a), _as_f64(b), _as_f64(c)
    n = X.shape[0]
    if X.ndim != 2 or a.shape != (n,) or b.shape != (n,) or c.shape != (n,):
        raise ValueError(f"X must be (rows, columns) with a, b, c one per row; got {X.shape}")
    cols = np.asarray(cols, dtype=np.int64)
    g, H, cx = _moments_numba(X, a, b, c, _n_chunks(n), cols)
    return np.asarray(g), np.asarray(H), np.asarray(cx)
