"""Array kernel: predictive margins over draws, with no S×N matrix.

``margin_draws(X, offset, weights, B, code, power)`` returns, for each draw row β of ``B``,
Σᵢ wᵢ h(xᵢ·β + oᵢ) / Σᵢ wᵢ. A finite-difference AME is the difference of two such margins
(``_evaluate``); a fused kernel summing h(x⁺β) − h(x⁻β) row by row did the same work (two
η blocks and two inverse links per row and draw) and was no faster (N = 200 000, K = 10,
S = 1000), so it was removed.

How the numba kernels are laid out (``benchmarks/README.md`` has the measured rates):

* rows are cut into tiles of ``_ROW_TILE`` rows; each tile of X is copied once, transposed
  (K × rows, so rows are contiguous), and then *every* draw passes over it in blocks of
  ``_DRAW_BLOCK`` draws. X is read from memory exactly once; B (S×K) stays in L2. The
  rows are split into ``_N_CHUNKS`` chunks whatever the thread count, so the order of
  every addition, and with it every bit of the result, does not depend on the threads.
* η for a block of draws × a tile of rows is a sum over the K columns in column order,
  vectorised across rows: the scalar sum, done 8 rows at a time.
* the inverse link (times the weight) runs over the η block in a branch-free loop; logit
  and log use our own ``exp`` (Cody–Waite reduction, degree-11 polynomial, exponent bits
  set directly; ≤ 1 ulp) because ``math.exp`` is a scalar libm call that LLVM cannot
  vectorise. ``error_model="numpy"`` is what lets a division vectorise.
* each draw's tile sum is pairwise (halving, vectorised, in a fixed order) and the tile
  sums go into one Neumaier-compensated accumulator per draw and chunk, combined at the
  end with the same compensation. The error is a few ulps of Σ|wᵢ hᵢ| for any N.
* only the η and inverse-link helpers allow ``fastmath={"contract"}`` (fused multiply-add,
  no reassociation); the summation code has no fastmath at all.

The ``*_numpy`` twin forms the S×N matrix and is the test oracle. This module knows
nothing of pandas, xarray or statsmodels.

Threads. numba runs these kernels on libgomp's OpenMP threads (the ``omp`` layer), whose
workers spin after a parallel region; on a machine whose cores are busy they then hold the
cores that OpenBLAS's own (spinning) threads need for the products that follow. Two
measures keep the pools from fighting (``benchmarks/bench_threads.py``):

* ``OMP_WAIT_POLICY=PASSIVE`` is set on import unless the user set a policy: workers sleep
  as soon as a region ends. libgomp reads it when it loads, which is numba's first parallel
  launch, so it applies unless another library loaded libgomp earlier.
* the delta method's row passes (η = Xβ + o, ∇ = Σ aᵢxᵢ, H = Σ bᵢxᵢxᵢᵀ) run on the same
  pool (:mod:`.moments`), not through BLAS. Several scenarios in one pass over the rows
  are in :mod:`.scenario_kernels`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

if "OMP_WAIT_POLICY" not in os.environ:  # a user's own choice wins
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numba
import numpy as np

from .links import CAUCHY, CLOGLOG, IDENTITY, INVERSE_POWER, LOG, LOGIT, LOGLOG, PROBIT

# tile sizes: measured best on the benchmark machine (benchmarks/README.md); _ROW_TILE must
# be a power of two ≥ 16 (pairwise halving) and _DRAW_BLOCK even (η is built in pairs)
_ROW_TILE = 128  # rows per tile: X tile (K×128) and η block (8×128) sit in L1 together
_DRAW_BLOCK = 8  # draws whose η is built from one X tile before the link is applied
_N_CHUNKS = 64  # row chunks, each with 2·S accumulators (1 MiB in all for S = 1000)

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm split of ln 2: n·_LN2_HI is exact for |n| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_ROUND_MAGIC = 6755399441055744.0  # 1.5·2^52: adding it rounds to an integer in the low bits
_EXP_MIN = -746.0  # exp underflows to 0 below this; keeps 2^n representable as two factors
_EXP_MAX = 710.0  # exp overflows to inf above this


@numba.njit(cache=True, inline="always", error_model="numpy")
def _h(code: int, eta: float, power: float) -> float:
    """Scalar inverse link, for the links without a vectorised path."""
    if code == IDENTITY:
        return eta
    if code == LOGIT:
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


@numba.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _exp_reduced(x: float) -> float:
    """exp(x) for _EXP_MIN ≤ x ≤ _EXP_MAX (or NaN) to about 1 ulp, with no branches, so that
    a loop over it vectorises: x = n ln2 + r, e^r by a polynomial, 2^n from exponent bits."""
    t = x * _LOG2E + _ROUND_MAGIC
    nf = t - _ROUND_MAGIC  # nearest integer to x / ln 2
    n = np.float64(t).view(np.int64) - np.float64(_ROUND_MAGIC).view(np.int64)
    r = (x - nf * _LN2_HI) - nf * _LN2_LO  # |r| ≤ ln2 / 2
    # degree-11 Chebyshev fit of e^r on |r| ≤ ln2/2 (mpmath.chebyfit; relative error 2e-17
    # with these rounded coefficients): as accurate as Taylor to degree 13, one FMA cheaper
    p = 2.5110037605963777e-08
    p = p * r + 2.763263963904103e-07
    p = p * r + 2.755724091857897e-06
    p = p * r + 2.4801485482328494e-05
    p = p * r + 1.9841269890047113e-04
    p = p * r + 1.3888888952314775e-03
    p = p * r + 8.333333333319601e-03
    p = p * r + 4.16666666664881e-02
    p = p * r + 1.666666666666668e-01
    p = p * r + 5.000000000000019e-01
    p = p * r + 1.0
    p = p * r + 1.0
    # 2^n as two normal factors, so n down to -1077 (subnormal results) and up to 1025 work
    n1 = n >> 1
    s1 = np.int64((n1 + 1023) << 52).view(np.float64)
    s2 = np.int64((n - n1 + 1023) << 52).view(np.float64)
    return (p * s1) * s2


@numba.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _exp(x: float) -> float:
    """exp(x) to about 1 ulp, vectorisable; 0 below -746, inf above 710, NaN stays NaN
    (each clamp is written so that a NaN comparison keeps x)."""
    x = _EXP_MIN if x < _EXP_MIN else x
    x = _EXP_MAX if x > _EXP_MAX else x
    return _exp_reduced(x)


@numba.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _expit(eta: float) -> float:
    """Logistic function, stable in both tails: only ever exp of a non-positive number."""
    x = -abs(eta)
    e = _exp_reduced(_EXP_MIN if x < _EXP_MIN else x)
    num = 1.0 if eta >= 0.0 else e
    return num / (1.0 + e)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _eta_block(xt: np.ndarray, off_t: np.ndarray, B: np.ndarray, d0: int, eta: np.ndarray) -> None:
    """η[dd, i] = o_i + Σ_j x_ij β_(d0+dd),j for a block of draws and a tile of rows.

    ``xt`` is the tile transposed (K × rows). Every η is summed in column order
    j = 0, 1, …, exactly as a scalar loop would; the loops are unrolled (two draws, four
    columns) only so that each load of η and of a column of X feeds several fused
    multiply-adds. The block and tile sizes are compile-time constants, which lets LLVM
    see that the two η rows never overlap.
    """
    k = xt.shape[0]
    for dd in range(0, _DRAW_BLOCK, 2):
        e0 = eta[dd]
        e1 = eta[dd + 1]
        da = d0 + dd
        db = da + 1
        for i in range(_ROW_TILE):
            e0[i] = off_t[i]
            e1[i] = off_t[i]
        j = 0
        while j + 4 <= k:
            x0, x1, x2, x3 = xt[j], xt[j + 1], xt[j + 2], xt[j + 3]
            a0, a1, a2, a3 = B[da, j], B[da, j + 1], B[da, j + 2], B[da, j + 3]
            c0, c1, c2, c3 = B[db, j], B[db, j + 1], B[db, j + 2], B[db, j + 3]
            for i in range(_ROW_TILE):
                y0, y1, y2, y3 = x0[i], x1[i], x2[i], x3[i]
                e0[i] = (((e0[i] + a0 * y0) + a1 * y1) + a2 * y2) + a3 * y3
                e1[i] = (((e1[i] + c0 * y0) + c1 * y1) + c2 * y2) + c3 * y3
            j += 4
        while j < k:
            xj = xt[j]
            a = B[da, j]
            c = B[db, j]
            for i in range(_ROW_TILE):
                e0[i] += a * xj[i]
                e1[i] += c * xj[i]
            j += 1


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _weighted_link(code: int, power: float, eta: np.ndarray, w_t: np.ndarray) -> None:
    """eta[dd, i] ← w_i h(eta[dd, i]) in place; logit and log take the vectorised path."""
    if code == LOGIT:
        for dd in range(_DRAW_BLOCK):
            er = eta[dd]
            for i in range(_ROW_TILE):
                er[i] = w_t[i] * _expit(er[i])
    elif code == LOG:
        for dd in range(_DRAW_BLOCK):
            er = eta[dd]
            for i in range(_ROW_TILE):
                er[i] = w_t[i] * _exp(er[i])
    elif code == IDENTITY:
        for dd in range(_DRAW_BLOCK):
            er = eta[dd]
            for i in range(_ROW_TILE):
                er[i] = w_t[i] * er[i]
    else:
        for dd in range(_DRAW_BLOCK):
            er = eta[dd]
            for i in range(_ROW_TILE):
                er[i] = w_t[i] * _h(code, er[i], power)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _neumaier(total: float, comp: float, v: float) -> tuple[float, float]:
    """One step of Neumaier's compensated sum: (total + v, comp + the bits total + v lost)."""
    t = total + v
    if abs(total) >= abs(v):
        comp += (total - t) + v
    else:
        comp += (v - t) + total
    return t, comp


@numba.njit(cache=True, error_model="numpy")
def _accumulate_tile(vals: np.ndarray, d0: int, acc: np.ndarray, comp: np.ndarray, c: int) -> None:
    """Add each draw's tile sum Σ_i vals[dd, i] to its accumulator for row chunk c.

    The tile is summed pairwise by halving (vals[i] += vals[i + h] for h = 64, 32, 16, 8:
    long contiguous loops that vectorise, with the additions in a fixed order, so no
    reassociation is needed), the last 8 pairwise too; the tile sums then go into a
    Neumaier-compensated running sum. The error is a few ulps of Σ|vals|, whatever N is.
    ``vals`` is overwritten.
    """
    for dd in range(_DRAW_BLOCK):
        vr = vals[dd]
        h = _ROW_TILE // 2
        while h >= 8:
            for i in range(h):
                vr[i] += vr[i + h]
            h //= 2
        t = ((vr[0] + vr[1]) + (vr[2] + vr[3])) + ((vr[4] + vr[5]) + (vr[6] + vr[7]))
        acc[c, d0 + dd], comp[c, d0 + dd] = _neumaier(acc[c, d0 + dd], comp[c, d0 + dd], t)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _load_tile(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    r0: int,
    r1: int,
    xt: np.ndarray,
    off_t: np.ndarray,
    w_t: np.ndarray,
) -> None:
    """Copy rows r0:r1 into the transposed tile; the rest of the tile gets zeros."""
    k = X.shape[1]
    for i in range(_ROW_TILE):
        if r0 + i < r1:
            for j in range(k):
                xt[j, i] = X[r0 + i, j]
            off_t[i] = offset[r0 + i]
            w_t[i] = weights[r0 + i]
        else:
            for j in range(k):
                xt[j, i] = 0.0
            off_t[i] = 0.0
            w_t[i] = 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _zero_padding(vals: np.ndarray, used: int) -> None:
    # 0·h(0) is NaN for some power links, so the padding's values are zeroed, not just weighted
    for dd in range(_DRAW_BLOCK):
        for i in range(used, _ROW_TILE):
            vals[dd, i] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _finish(acc: np.ndarray, comp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per draw: (Σ over chunks of sum + compensation) / Σ w, all compensated."""
    n_chunks, s = acc.shape
    wsum, wcomp = 0.0, 0.0
    for i in range(weights.shape[0]):
        wsum, wcomp = _neumaier(wsum, wcomp, weights[i])
    wsum += wcomp
    out = np.empty(s)
    for d in range(s):
        tot, tcomp = 0.0, 0.0
        for c in range(n_chunks):
            tot, tcomp = _neumaier(tot, tcomp, acc[c, d])
            tot, tcomp = _neumaier(tot, tcomp, comp[c, d])
        out[d] = (tot + tcomp) / wsum
    return out


@numba.njit(cache=True, parallel=True, error_model="numpy")
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
    n_tiles = (n + _ROW_TILE - 1) // _ROW_TILE
    acc = np.zeros((n_chunks, s))
    comp = np.zeros((n_chunks, s))
    for c in numba.prange(n_chunks):
        xt = np.empty((k, _ROW_TILE))
        off_t = np.empty(_ROW_TILE)
        w_t = np.empty(_ROW_TILE)
        eta = np.empty((_DRAW_BLOCK, _ROW_TILE))
        # chunk c takes tiles [c·T/C, (c+1)·T/C): sizes differ by at most one tile
        for tile in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            r0 = tile * _ROW_TILE
            r1 = min(n, r0 + _ROW_TILE)
            _load_tile(X, offset, weights, r0, r1, xt, off_t, w_t)
            for d0 in range(0, s, _DRAW_BLOCK):
                _eta_block(xt, off_t, B, d0, eta)
                _weighted_link(code, power, eta, w_t)
                if r1 - r0 < _ROW_TILE:
                    _zero_padding(eta, r1 - r0)
                _accumulate_tile(eta, d0, acc, comp, c)
    return _finish(acc, comp, weights)


def _n_chunks(n: int) -> int:
    # a fixed number of row chunks (not one per thread) balances the load on any core count
    # and keeps the summation order, hence every bit of the result, independent of threads
    n_tiles = max((n + _ROW_TILE - 1) // _ROW_TILE, 1)
    return min(_N_CHUNKS, n_tiles)


def _pad_draws(B: np.ndarray) -> np.ndarray:
    """B with zero rows appended up to a whole number of draw blocks (the kernels' unit)."""
    extra = -B.shape[0] % _DRAW_BLOCK
    return B if extra == 0 else np.vstack([B, np.zeros((extra, B.shape[1]))])


def _as_f64(a: np.ndarray) -> np.ndarray:
    """float64, C- or Fortran-ordered (no copy when it already is): a fit's exog is often
    Fortran-ordered, and the tile loads read either layout (numba compiles each once)."""
    a = np.asarray(a, dtype=np.float64)
    if a.flags.c_contiguous or a.flags.f_contiguous:
        return a
    return np.ascontiguousarray(a)


def _check_shapes(X: np.ndarray, offset: np.ndarray, weights: np.ndarray, B: np.ndarray) -> None:
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D (rows, columns) design matrix; got shape {X.shape}")
    n, k = X.shape
    if B.ndim != 2 or B.shape[1] != k:
        raise ValueError(f"B must be (draws, {k}) to match X's {k} columns; got {B.shape}")
    if offset.shape != (n,) or weights.shape != (n,):
        raise ValueError(
            f"offset and weights must have one value per row ({n}); "
            f"got {offset.shape} and {weights.shape}"
        )


def margin_draws(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    code: int,
    power: float = 1.0,
) -> np.ndarray:
    """Weighted mean over rows of h(X β + o), for every draw β in the rows of ``B``.

    Parameters
    ----------
    X : (N, K) design matrix. offset, weights : (N,). B : (S, K) coefficient draws.
    code, power : the inverse link's code from ``simmargins.engine.links`` (and its power).

    Returns
    -------
    (S,) array: Σᵢ wᵢ h(xᵢ·β_d + oᵢ) / Σᵢ wᵢ for each draw d.

    Examples
    --------
    >>> import numpy as np
    >>> from simmargins.engine.links import LOGIT
    >>> X = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> B = np.array([[0.0, 0.0], [0.0, 100.0]])
    >>> margin_draws(X, np.zeros(2), np.ones(2), B, LOGIT).round(6)
    array([0.5 , 0.75])
    """
    X, offset, weights, B = _as_f64(X), _as_f64(offset), _as_f64(weights), _as_f64(B)
    _check_shapes(X, offset, weights, B)
    out = _margin_draws_numba(
        X, offset, weights, _pad_draws(B), int(code), float(power), _n_chunks(X.shape[0])
    )
    return out[: B.shape[0]]


def margin_draws_numpy(
    X: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    B: np.ndarray,
    h: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Reference twin: forms the S×N matrix, so only for tests and small problems."""
    eta = B @ X.T + offset[None, :]
    vals = h(eta)
    return np.asarray((vals * weights[None, :]).sum(axis=1) / weights.sum(), dtype=np.float64)
