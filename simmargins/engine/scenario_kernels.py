"""Several scenarios in one pass over the rows: each a low-rank change of one base design.

Per tile and draw block the base η is formed once. Scenarios that set the same columns to
constants (the levels of a factor, the points of a grid) share η minus those columns; each
then adds its per-draw constant (the constants and the steps of shifted columns, times β)
and Σ (new − base)·β over its row-varying columns before its inverse link. A numeric
variable's AME (x ± ε on a column that is x itself) and a factor's levels so cost one
addition per row and draw, not K. The summation is the margin kernel's (pairwise within a
tile, Neumaier across tiles, fixed chunks), so every scenario's margin equals
:func:`.kernels.margin_draws` on its full design to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from .kernels import (  # importing kernels first also sets OMP_WAIT_POLICY
    _DRAW_BLOCK,
    _ROW_TILE,
    _accumulate_tile,
    _as_f64,
    _check_shapes,
    _eta_block,
    _exp,
    _expit,
    _finish,
    _load_tile,
    _n_chunks,
    _pad_draws,
    _weighted_link,
    _zero_padding,
)
from .links import LOG, LOGIT


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _group_block(
    eta: np.ndarray, out: np.ndarray, xt: np.ndarray, gcols: np.ndarray, g0: int, g1: int,
    B: np.ndarray, d0: int,
) -> None:  # fmt: skip
    """out[dd, i] = η[dd, i] − Σ_{g0 ≤ m < g1} x_i,gcols[m] β_(d0+dd),gcols[m]: the base η
    without the columns a group of scenarios sets to constants (shared by the group)."""
    for dd in range(_DRAW_BLOCK):
        e = eta[dd]
        o = out[dd]
        for i in range(_ROW_TILE):
            o[i] = e[i]
        for m in range(g0, g1):
            b = B[d0 + dd, gcols[m]]
            xm = xt[gcols[m]]
            for i in range(_ROW_TILE):
                o[i] -= xm[i] * b


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _scenario_block(
    eg: np.ndarray, out: np.ndarray, shift: np.ndarray, sc: int, dt: np.ndarray,
    vcols: np.ndarray, m0: int, m1: int, B: np.ndarray, d0: int, code: int, power: float,
    w_t: np.ndarray,
) -> None:  # fmt: skip
    """out = w·h(η) for one scenario, whose η is its group's η, plus its per-draw constant
    (the constant columns' values and the steps of shifted columns, times β), plus
    Σ (new − base)·β over its row-varying columns (dt). Without row-varying columns the
    logit and log links run in the same loop as the addition (one pass over the block)."""
    if m0 == m1 and (code == LOGIT or code == LOG):
        for dd in range(_DRAW_BLOCK):
            e = eg[dd]
            o = out[dd]
            c = shift[d0 + dd, sc]
            if code == LOGIT:
                for i in range(_ROW_TILE):
                    o[i] = w_t[i] * _expit(e[i] + c)
            else:
                for i in range(_ROW_TILE):
                    o[i] = w_t[i] * _exp(e[i] + c)
        return
    for dd in range(_DRAW_BLOCK):
        e = eg[dd]
        o = out[dd]
        c = shift[d0 + dd, sc]
        for i in range(_ROW_TILE):
            o[i] = e[i] + c
        for m in range(m0, m1):
            b = B[d0 + dd, vcols[m]]
            dm = dt[m]
            for i in range(_ROW_TILE):
                o[i] += dm[i] * b
    _weighted_link(code, power, out, w_t)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _scenario_draws_numba(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    gcols: np.ndarray,
    gstarts: np.ndarray,
    gscen: np.ndarray,
    shift: np.ndarray,
    vcols: np.ndarray,
    vstarts: np.ndarray,
    values: np.ndarray,
    code: int,
    power: float,
    n_chunks: int,
) -> np.ndarray:
    n, k = X.shape
    s = B.shape[0]
    n_grp = gstarts.shape[0] - 1
    n_scen = vstarts.shape[0] - 1
    n_upd = vcols.shape[0]
    n_tiles = (n + _ROW_TILE - 1) // _ROW_TILE
    acc = np.zeros((n_scen, n_chunks, s))
    comp = np.zeros((n_scen, n_chunks, s))
    for c in numba.prange(n_chunks):
        xt = np.empty((k, _ROW_TILE))
        off_t = np.empty(_ROW_TILE)
        w_t = np.empty(_ROW_TILE)
        dt = np.zeros((max(n_upd, 1), _ROW_TILE))
        eta = np.empty((_DRAW_BLOCK, _ROW_TILE))
        eg = np.empty((_DRAW_BLOCK, _ROW_TILE))
        vals = np.empty((_DRAW_BLOCK, _ROW_TILE))
        for tile in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            r0 = tile * _ROW_TILE
            r1 = min(n, r0 + _ROW_TILE)
            _load_tile(X, offset, weights, r0, r1, xt, off_t, w_t)
            for m in range(n_upd):
                for i in range(r1 - r0):
                    dt[m, i] = values[r0 + i, m] - xt[vcols[m], i]
                for i in range(r1 - r0, _ROW_TILE):
                    dt[m, i] = 0.0
            for d0 in range(0, s, _DRAW_BLOCK):
                _eta_block(xt, off_t, B, d0, eta)  # the base η: once for every scenario
                for g in range(n_grp):
                    base = eta
                    if gstarts[g + 1] > gstarts[g]:
                        _group_block(eta, eg, xt, gcols, gstarts[g], gstarts[g + 1], B, d0)
                        base = eg
                    for sc in range(gscen[g], gscen[g + 1]):
                        _scenario_block(
                            base, vals, shift, sc, dt, vcols, vstarts[sc], vstarts[sc + 1], B,
                            d0, code, power, w_t,
                        )  # fmt: skip
                        if r1 - r0 < _ROW_TILE:
                            _zero_padding(vals, r1 - r0)
                        _accumulate_tile(vals, d0, acc[sc], comp[sc], c)
    out = np.empty((n_scen, s))
    for sc in range(n_scen):
        out[sc] = _finish(acc[sc], comp[sc], weights)
    return out


class ColumnChange(Protocol):
    """A scenario as new values of some design columns, by kind of change (each column
    under one kind): set to one value in every row, moved by one step in every row, or
    new values per row. ``design.ScenarioUpdate`` is one."""

    @property
    def const_cols(self) -> np.ndarray: ...
    @property
    def const_vals(self) -> np.ndarray: ...
    @property
    def shift_cols(self) -> np.ndarray: ...
    @property
    def shift_vals(self) -> np.ndarray: ...
    @property
    def vary_cols(self) -> np.ndarray: ...
    @property
    def vary_vals(self) -> np.ndarray: ...


@dataclass(frozen=True)
class _Change:
    const_cols: np.ndarray
    const_vals: np.ndarray
    shift_cols: np.ndarray
    shift_vals: np.ndarray
    vary_cols: np.ndarray
    vary_vals: np.ndarray


def _as_change(update: ColumnChange | tuple[np.ndarray, np.ndarray], n: int) -> ColumnChange:
    if not isinstance(update, tuple):
        return update
    cols, values = update  # (columns, rows × columns): every column varies by row
    none = np.zeros(0, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64).reshape(n, -1)
    return _Change(none, np.zeros(0), none, np.zeros(0), cols, vals)


def scenario_draws(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    updates: Sequence[ColumnChange | tuple[np.ndarray, np.ndarray]],
    code: int,
    power: float = 1.0,
) -> np.ndarray:
    """Margins over draws of several scenarios, each a low-rank change of one base design.

    Scenario j's design is X with some columns changed: a :class:`ColumnChange` (columns
    set to one value in every row, moved by one step, or given per row), or a pair
    ``(columns, rows × columns)`` of new values. One pass over the rows: per tile and
    block of draws the base η = Xβ + o is formed once; scenarios that set the same
    columns to constants share η minus those columns, and each adds a per-draw constant
    (constants and steps times β) and Σ (new − old)·β over its row-varying columns before
    its inverse link. Returns (scenarios, S): row j equals
    ``margin_draws(X_j, offset, weights, B, code, power)`` to rounding (η is summed in
    another order), at a cost per scenario of its row-varying columns plus the link.

    The caller runs it per batch of scenarios when their row-varying columns would not
    fit in memory together.
    """
    X, offset, weights, B = _as_f64(X), _as_f64(offset), _as_f64(weights), _as_f64(B)
    _check_shapes(X, offset, weights, B)
    n, k = X.shape
    changes = [_as_change(u, n) for u in updates]
    for ch in changes:
        cols = np.concatenate([ch.const_cols, ch.shift_cols, ch.vary_cols]).astype(np.int64)
        if (
            ch.vary_vals.shape != (n, ch.vary_cols.size)
            or ch.const_vals.shape != ch.const_cols.shape
            or ch.shift_vals.shape != ch.shift_cols.shape
            or (cols.size and (cols.min() < 0 or cols.max() >= k))
            or np.unique(cols).size != cols.size
        ):
            raise ValueError(
                f"each update must give distinct column indices in 0..{k - 1}, with one "
                "value per constant or shifted column and rows × columns for the others"
            )
    # scenarios grouped by the set of columns they set to constants (e.g. a factor's levels)
    keys = [tuple(sorted(int(c) for c in ch.const_cols)) for ch in changes]
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, key in enumerate(keys):
        groups.setdefault(key, []).append(j)
    order = [j for members in groups.values() for j in members]
    gcols = np.asarray([c for key in groups for c in key], dtype=np.int64)
    gstarts = np.cumsum([0, *(len(key) for key in groups)]).astype(np.int64)
    gscen = np.cumsum([0, *(len(m) for m in groups.values())]).astype(np.int64)
    A = np.zeros((len(order), k))
    for pos, j in enumerate(order):
        ch = changes[j]
        A[pos, np.asarray(ch.const_cols, dtype=np.int64)] = ch.const_vals
        A[pos, np.asarray(ch.shift_cols, dtype=np.int64)] += ch.shift_vals
    Bp = _pad_draws(B)
    shift = np.ascontiguousarray(Bp @ A.T)  # (draws, scenarios): the per-draw constants
    vlist = [np.asarray(changes[j].vary_cols, dtype=np.int64) for j in order]
    vstarts = np.cumsum([0, *(v.size for v in vlist)]).astype(np.int64)
    vcols = np.concatenate([*vlist, np.zeros(0, dtype=np.int64)])
    values = (
        np.ascontiguousarray(np.hstack([changes[j].vary_vals for j in order]), np.float64)
        if vcols.size
        else np.zeros((n, 1), np.float64)
    )
    got = _scenario_draws_numba(
        X, offset, weights, Bp, gcols, gstarts, gscen, shift, vcols, vstarts, values,
        int(code), float(power), min(_n_chunks(n), _SCENARIO_CHUNKS),
    )  # fmt: skip
    out = np.empty((len(order), B.shape[0]))
    out[order] = got[:, : B.shape[0]]
    return out


# row chunks of the multi-scenario kernel: each holds 2·S accumulators per scenario
_SCENARIO_CHUNKS = 16
