"""Several scenarios in one pass over the rows: each a low-rank update of one base design.

Per tile and draw block the base η is formed once, and each scenario adds its changed
columns' (new − old)·β before its inverse link; the summation is the margin kernel's
(pairwise within a tile, Neumaier across tiles, fixed chunks), so every scenario's margin
equals :func:`.kernels.margin_draws` on its full design to rounding.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import (  # importing kernels first also sets OMP_WAIT_POLICY
    _DRAW_BLOCK,
    _ROW_TILE,
    _accumulate_tile,
    _as_f64,
    _check_shapes,
    _eta_block,
    _finish,
    _load_tile,
    _n_chunks,
    _pad_draws,
    _weighted_link,
    _zero_padding,
)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _update_block(
    eta: np.ndarray,
    out: np.ndarray,
    dt: np.ndarray,
    cols: np.ndarray,
    m0: int,
    m1: int,
    B: np.ndarray,
    d0: int,
) -> None:
    """out[dd, i] = η[dd, i] + Σ_{m0 ≤ m < m1} dt[m, i] β_(d0+dd),cols[m]: one scenario's η
    from the base η of a tile and its changed columns (dt = new value − base value)."""
    for dd in range(_DRAW_BLOCK):
        e = eta[dd]
        o = out[dd]
        for i in range(_ROW_TILE):
            o[i] = e[i]
        for m in range(m0, m1):
            b = B[d0 + dd, cols[m]]
            dm = dt[m]
            for i in range(_ROW_TILE):
                o[i] += dm[i] * b


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _scenario_draws_numba(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    cols: np.ndarray,
    starts: np.ndarray,
    values: np.ndarray,
    code: int,
    power: float,
    n_chunks: int,
) -> np.ndarray:
    n, k = X.shape
    s = B.shape[0]
    n_scen = starts.shape[0] - 1
    n_upd = cols.shape[0]
    n_tiles = (n + _ROW_TILE - 1) // _ROW_TILE
    acc = np.zeros((n_scen, n_chunks, s))
    comp = np.zeros((n_scen, n_chunks, s))
    for c in numba.prange(n_chunks):
        xt = np.empty((k, _ROW_TILE))
        off_t = np.empty(_ROW_TILE)
        w_t = np.empty(_ROW_TILE)
        dt = np.zeros((max(n_upd, 1), _ROW_TILE))
        eta = np.empty((_DRAW_BLOCK, _ROW_TILE))
        vals = np.empty((_DRAW_BLOCK, _ROW_TILE))
        for tile in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            r0 = tile * _ROW_TILE
            r1 = min(n, r0 + _ROW_TILE)
            _load_tile(X, offset, weights, r0, r1, xt, off_t, w_t)
            for m in range(n_upd):
                for i in range(r1 - r0):
                    dt[m, i] = values[r0 + i, m] - xt[cols[m], i]
                for i in range(r1 - r0, _ROW_TILE):
                    dt[m, i] = 0.0
            for d0 in range(0, s, _DRAW_BLOCK):
                _eta_block(xt, off_t, B, d0, eta)  # the base η: once for every scenario
                for sc in range(n_scen):
                    _update_block(eta, vals, dt, cols, starts[sc], starts[sc + 1], B, d0)
                    _weighted_link(code, power, vals, w_t)
                    if r1 - r0 < _ROW_TILE:
                        _zero_padding(vals, r1 - r0)
                    _accumulate_tile(vals, d0, acc[sc], comp[sc], c)
    out = np.empty((n_scen, s))
    for sc in range(n_scen):
        out[sc] = _finish(acc[sc], comp[sc], weights)
    return out


def scenario_draws(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    updates: list[tuple[np.ndarray, np.ndarray]],
    code: int,
    power: float = 1.0,
) -> np.ndarray:
    """Margins over draws of several scenarios, each a low-rank change of one base design.

    Scenario j's design is X with the columns ``updates[j][0]`` replaced by
    ``updates[j][1]`` (rows × those columns; ``CounterfactualData.design_update`` gives
    exactly this). One pass over the rows: per tile and block of draws the base η = Xβ + o
    is formed once, and each scenario adds Σ (new − old)·β over its changed columns before
    its inverse link. Returns (scenarios, S): row j equals
    ``margin_draws(X_j, offset, weights, B, code, power)`` to rounding (η is summed in
    another order), at a cost per scenario of its changed columns plus the link, not K.

    The caller runs it per block of rows when the updates of all scenarios would not fit
    in memory, summing Σ w·margin over blocks (the result is a weighted mean per block).
    """
    X, offset, weights, B = _as_f64(X), _as_f64(offset), _as_f64(weights), _as_f64(B)
    _check_shapes(X, offset, weights, B)
    n, k = X.shape
    cols_list = [np.asarray(c, dtype=np.int64).reshape(-1) for c, _ in updates]
    vals_list = [np.asarray(v, dtype=np.float64).reshape(n, -1) for _, v in updates]
    for c, v in zip(cols_list, vals_list, strict=True):
        if v.shape[1] != c.size or (c.size and (c.min() < 0 or c.max() >= k)):
            raise ValueError(
                f"each update must be (column indices in 0..{k - 1}, rows × those columns)"
            )
    starts = np.zeros(len(updates) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([c.size for c in cols_list])
    cols = np.concatenate([*cols_list, np.zeros(0, dtype=np.int64)])
    values = (
        np.ascontiguousarray(np.hstack(vals_list)) if cols.size else np.zeros((n, 1), np.float64)
    )
    out = _scenario_draws_numba(
        X,
        offset,
        weights,
        _pad_draws(B),
        cols,
        starts,
        values,
        int(code),
        float(power),
        min(_n_chunks(n), _SCENARIO_CHUNKS),
    )
    return np.asarray(out[:, : B.shape[0]])


# row chunks of the multi-scenario kernel: each holds 2·S accumulators per scenario
_SCENARIO_CHUNKS = 16
