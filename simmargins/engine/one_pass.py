"""Every setting of a request from one base design: draws and delta moments (issue 12).

A setting is a change of some columns of the base design (:class:`.design.ScenarioUpdate`:
columns set to one value, moved by one step, or given per row). Nothing of size rows ×
K is built per setting:

* the draws of all settings come from :func:`.scenario_kernels.scenario_draws`, in
  batches whose row-varying columns hold at most ``max_bytes``;
* the delta moments (μ, ∇μ, H) of a setting are one weighted pass over the *base* rows,
  H₀ = Σ bᵢ xᵢxᵢᵀ with bᵢ = wᵢh″(ηᵢ) at the setting's own η, and small products for the
  changed columns. Every row of the setting's design is a linear map of
  eᵢ = (xᵢ, vᵢ, 1) (base row, row-varying values, a one): x′ᵢ = Tᵀeᵢ, so
  Σ bᵢx′ᵢx′ᵢᵀ = Tᵀ(Σ bᵢeᵢeᵢᵀ)T and Σ aᵢx′ᵢ = Tᵀ(Σ aᵢeᵢ), with T the (K + V + 1) × K
  matrix that keeps unchanged columns, sets constants, adds steps and picks the values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .delta import _NUMBA_ROWS, Moments
from .design import OFFSET_SETTINGS, CounterfactualData, ScenarioUpdate, Setting
from .links import InverseLink

# bytes of row-varying column values one batch of settings may hold (the draws' route)
_UPDATE_BYTES = 64 << 20


@dataclass
class OnePass:
    """Per setting: the margin draws (settings, S) or None when no draws were asked for,
    the delta moments (None when not asked for) and the weighted mean offset."""

    draws: np.ndarray | None
    moments: list[Moments] | None
    offsets_bar: np.ndarray
    # quantity → (∇, H) of θ_r = Σₛ W_rs μₛ where one pass gave them (see one_pass)
    quantities: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _eligible(cf: CounterfactualData, settings: list[Setting]) -> bool:
    """Whether every setting is a change of the base design's columns."""
    for setting in settings:
        if any(n in OFFSET_SETTINGS and n not in cf.variables for n, _ in setting.values):
            return False  # an offset or exposure setting changes the offset, not X
        if setting.clip and setting.perturb is not None:
            return False  # per-row steps carry per-row weights
    if cf.spec is None:
        return False
    cf.base_design()
    return cf.scenario_update(Setting()) is not None


class _BaseRows:
    """The base design with what every setting's moments reuse: Xβ̂ and Σ wᵢxᵢ."""

    def __init__(self, cf: CounterfactualData, weights: np.ndarray, beta: np.ndarray) -> None:
        self.X = cf.base_design()[0]
        self.n = self.X.shape[0]
        self.wn = weights / weights.sum()
        self.beta = beta
        self._xb: dict[tuple[int, ...], np.ndarray] = {}
        self.xbar = self.wn @ self.X

    def xb_without(self, cols: np.ndarray) -> np.ndarray:
        """Xβ̂ without the columns ``cols`` (those a setting sets to constants), kept per
        set of columns: a factor's levels or a grid's points share one."""
        key = tuple(int(c) for c in cols)
        if key not in self._xb:
            if not self._xb:
                from .moments import linear_predictor  # numba: only for nonlinear links

                self._xb[()] = linear_predictor(self.X, self.beta, np.zeros(self.n))
            xb = self._xb[()].copy()
            for c in key:
                xb -= self.X[:, c] * self.beta[c]
            if len(self._xb) > _XB_KEPT:  # memory: a few vectors of N, oldest dropped first
                del self._xb[next(k for k in self._xb if k)]
            self._xb[key] = xb
        return self._xb[key]


def _gram(
    X: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Σ aᵢxᵢ, Σ bᵢxᵢxᵢᵀ, Σ cᵢxᵢ) with xᵢ = X[i, cols]: on numba's pool for many rows (no
    BLAS thread fight), else numpy.

    (Measured against BLAS in blocks of rows with one thread, as a request runs: 34–66 ms
    against 89 ms for N = 10⁶, K = 30; a 4 × 4 register-blocked tile was no faster.)
    """
    if X.shape[0] >= _NUMBA_ROWS:
        from .moments import weighted_moments_cols

        return weighted_moments_cols(X, a, b, c, cols)
    Xc = X[:, cols]
    return a @ Xc, (Xc * b[:, None]).T @ Xc, c @ Xc


# column sets whose Xβ̂ without them is kept (each a vector of N)
_XB_KEPT = 4

def _transform(k: int, kept: np.ndarray, u: ScenarioUpdate) -> np.ndarray:
    """T with x′ = Tᵀ(x_kept, v, 1): the columns a setting leaves (or only shifts) taken
    from the base row, constants and steps from the one, new values from v."""
    nk, nv = kept.size, u.vary_cols.size
    T = np.zeros((nk + nv + 1, k))
    T[np.arange(nk), kept] = 1.0
    T[nk + nv, u.const_cols] = u.const_vals
    T[nk + nv, u.shift_cols] = u.shift_vals
    T[nk + np.arange(nv), u.vary_cols] = 1.0
    return T


def _weighted_derivatives(
    base: _BaseRows, u: ScenarioUpdate, off: np.ndarray, link: InverseLink
) -> tuple[float, np.ndarray, np.ndarray]:
    """μ = Σ wₙh(η) and the per-row aᵢ = wₙh′(ηᵢ), bᵢ = wₙh″(ηᵢ) at the setting's η."""
    h, dh, d2h = link.all_three(_eta(base, u, off))
    return float(base.wn @ h), base.wn * dh, base.wn * d2h


def _eta(base: _BaseRows, u: ScenarioUpdate, off: np.ndarray) -> np.ndarray:
    """The setting's η = x′β̂ + o from the base Xβ̂ and the changed columns."""
    X, beta = base.X, base.beta
    eta = base.xb_without(u.const_cols) + (off + float(u.const_vals @ beta[u.const_cols]))
    for c, step in zip(u.shift_cols, u.shift_vals, strict=True):
        eta += step * beta[c]
    for m, c in enumerate(u.vary_cols):
        eta += (u.vary_vals[:, m] - X[:, c]) * beta[c]
    return eta


def _one_row(k: int, u: ScenarioUpdate) -> np.ndarray:
    """t: the part of x′ that does not come from the base row (constants and steps)."""
    t = np.zeros(k)
    t[u.const_cols] = u.const_vals
    t[u.shift_cols] += u.shift_vals
    return t


def _kept(k: int, u: ScenarioUpdate) -> np.ndarray:
    return np.setdiff1d(np.arange(k), np.concatenate([u.const_cols, u.vary_cols]))


def combined_moments(
    base: _BaseRows,
    updates: list[ScenarioUpdate],
    weights: np.ndarray,
    derivatives: Callable[[int], tuple[float, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """∇ and H of θ = Σₛ Wₛμₛ over settings that keep the same base columns, have no
    row-varying columns and whose one-rows tₛ share at most one non-zero column m, in one
    weighted pass: Σₛ Wₛ Tₛᵀ G(bₛ) Tₛ = Kᵀ H(b̃) K + Kᵀ Xᵀc e_mᵀ + e_m cᵀX K + Σₛ Wₛ Σbₛ tₛtₛᵀ
    with b̃ = Σ Wₛbₛ and c = Σ Wₛ tₛ[m] bₛ (G is linear in b): an AME's two steps, or a
    factor level against the reference, cost one pass instead of two. ``derivatives(s)``
    gives setting s's (μ, a, b) (see :func:`_weighted_derivatives`)."""
    k = base.X.shape[1]
    kept = _kept(k, updates[0])
    ts = [_one_row(k, u) for u in updates]
    support = sorted({int(i) for t in ts for i in np.flatnonzero(t)})
    a_sum, b_sum, c_sum = np.zeros(base.n), np.zeros(base.n), np.zeros(base.n)
    grad = np.zeros(k)
    hess = np.zeros((k, k))
    for pos, (t, w) in enumerate(zip(ts, weights, strict=True)):
        _, a, b = derivatives(pos)
        a_sum += w * a
        b_sum += w * b
        if support:
            c_sum += (w * t[support[0]]) * b
        grad += (w * a.sum()) * t
        hess += (w * b.sum()) * np.outer(t, t)
    g0, H0, cx = _gram(base.X, a_sum, b_sum, c_sum, kept)
    grad[kept] += g0
    hess[np.ix_(kept, kept)] += H0
    if support:
        hess[kept, support[0]] += cx
        hess[support[0], kept] += cx
    return grad, 0.5 * (hess + hess.T)


def combinable(k: int, updates: list[ScenarioUpdate]) -> bool:
    """Whether :func:`combined_moments` applies to these settings of a K-column design."""
    if len(updates) < 2 or any(u.vary_cols.size for u in updates):
        return False
    key = sorted(int(c) for c in updates[0].const_cols)
    if any(sorted(int(c) for c in u.const_cols) != key for u in updates):
        return False
    support = {int(i) for u in updates for i in np.flatnonzero(_one_row(k, u))}
    return len(support) <= 1


def update_moments(
    base: _BaseRows, u: ScenarioUpdate, link: InverseLink
) -> tuple[Moments, float]:
    """The setting's (μ, ∇μ, H) at β̂ and its weighted mean offset, from the base rows.

    The weighted pass runs over the base columns the setting keeps (or only shifts): a
    factor's level sets its indicator columns, so its pass costs (K − levels)² per row.
    """
    X, wn, beta, k = base.X, base.wn, base.beta, base.X.shape[1]
    off = np.zeros(base.n) if u.offset is None else np.asarray(u.offset, dtype=np.float64)
    off_bar = float(wn @ off)
    V = u.vary_vals
    kept = _kept(k, u)
    T = _transform(k, kept, u)
    if link.is_identity:
        e_bar = np.concatenate([base.xbar[kept], wn @ V, [1.0]])
        xbar = T.T @ e_bar
        return Moments(float(xbar @ beta) + off_bar, xbar, None), off_bar
    value, a, b = _weighted_derivatives(base, u, off, link)
    # Σ aᵢxᵢ and Σ bᵢxᵢxᵢᵀ over the kept base columns: the one pass of cost K² per row
    g0, H0, q = _gram(X, a, b, b, kept)
    nk, nv = kept.size, V.shape[1]
    G = np.empty((nk + nv + 1, nk + nv + 1))
    G[:nk, :nk] = H0
    G[:nk, nk + nv] = G[nk + nv, :nk] = q
    G[nk + nv, nk + nv] = b.sum()
    gE = np.concatenate([g0, a @ V, [a.sum()]])
    if nv:
        bV = b[:, None] * V
        G[:nk, nk : nk + nv] = (X.T @ bV)[kept]
        G[nk : nk + nv, :nk] = G[:nk, nk : nk + nv].T
        G[nk : nk + nv, nk : nk + nv] = V.T @ bV
        G[nk : nk + nv, nk + nv] = G[nk + nv, nk : nk + nv] = b @ V
    H = T.T @ G @ T
    return Moments(value, T.T @ gE, 0.5 * (H + H.T)), off_bar


def one_pass(
    cf: CounterfactualData,
    settings: list[Setting],
    weights: np.ndarray,
    link: InverseLink,
    beta: np.ndarray | None,
    B: np.ndarray | None,
    max_bytes: int = _UPDATE_BYTES,
    W: np.ndarray | None = None,
) -> OnePass | None:
    """Draws (when ``B`` is given and the link is nonlinear) and delta moments (when
    ``beta`` is given) of every setting over the rows of ``cf`` with ``weights``, from its
    base design; None when a setting is not a change of the base design's columns (an
    array fit, an offset or exposure setting, a clipped step): the caller then builds
    each setting's design.

    With ``W`` (quantities × settings), a quantity whose settings :func:`combinable`
    accepts gets its ∇ and H from :func:`combined_moments` (in ``OnePass.quantities``),
    and a setting used only by such quantities gets no moments of its own (its
    ``Moments.grad`` is NaN, its ``hess`` None). Settings go in batches whose row-varying
    columns hold at most ``max_bytes``; each batch is one pass of the draws kernel.
    """
    if not _eligible(cf, settings):
        return None
    X0, off0 = cf.base_design()
    n, k = X0.shape
    want_draws = B is not None and B.shape[0] > 0 and not link.is_identity
    draws = np.empty((len(settings), B.shape[0])) if want_draws and B is not None else None
    offsets_bar = np.empty(len(settings))
    base = _BaseRows(cf, weights, beta) if beta is not None else None
    base_off = np.zeros(n) if off0 is None else np.asarray(off0, dtype=np.float64)
    batch: list[tuple[int, ScenarioUpdate]] = []

    def flush() -> None:
        if batch and draws is not None and B is not None:
            from .scenario_kernels import scenario_draws  # numba loads only for nonlinear links

            got = scenario_draws(X0, base_off, weights, B, [u for _, u in batch], link.code,
                                 link.power)  # fmt: skip
            draws[[j for j, _ in batch]] = got
        batch.clear()

    held = 0
    wn = weights / weights.sum()
    moments: list[Moments | None] = [None] * len(settings)
    small: dict[int, ScenarioUpdate] = {}  # settings without row-varying columns
    for j, setting in enumerate(settings):
        u = cf.scenario_update(setting)
        assert u is not None  # _eligible: the spec is read by term
        offsets_bar[j] = float(wn @ u.offset) if u.offset is not None else 0.0
        if base is not None and u.vary_cols.size:
            moments[j], _ = update_moments(base, u, link)  # now: its values are not kept
        elif base is not None:
            small[j] = u
        if draws is None:
            continue
        if batch and held + u.vary_vals.nbytes > max_bytes:
            flush()
            held = 0
        batch.append((j, u))
        held += u.vary_vals.nbytes
    flush()
    quantities: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if base is None:
        return OnePass(draws, None, offsets_bar, quantities)
    combined: set[int] = set()
    if W is not None and not link.is_identity:
        for r in range(W.shape[0]):
            used = [int(j) for j in np.flatnonzero(W[r])]
            if all(j in small for j in used) and combinable(k, [small[j] for j in used]):
                combined.add(r)
    alone = set(range(len(settings)))
    if W is not None:
        alone = {
            int(j) for r in range(W.shape[0]) if r not in combined for j in np.flatnonzero(W[r])
        }
        alone |= {j for j in range(len(settings)) if not np.any(W[:, j])}
    for j, u in small.items():
        if j in alone:
            moments[j], _ = update_moments(base, u, link)
    # settings only in combined quantities: μ, a, b once each (kept while several use them)
    uses = Counter(int(j) for r in combined for j in np.flatnonzero(W[r]))  # type: ignore[index]
    kept: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}

    def derivatives(j: int) -> tuple[float, np.ndarray, np.ndarray]:
        if j in kept:
            return kept[j]
        u = small[j]
        off = np.zeros(n) if u.offset is None else np.asarray(u.offset, dtype=np.float64)
        got = _weighted_derivatives(base, u, off, link)  # type: ignore[arg-type]
        if j not in alone:
            moments[j] = Moments(got[0], np.full(k, np.nan), None)
        if uses[j] > 1:
            kept[j] = got
        return got

    for r in sorted(combined):
        assert W is not None
        used = [int(j) for j in np.flatnonzero(W[r])]

        def of_used(pos: int, on: list[int] = used) -> tuple[float, np.ndarray, np.ndarray]:
            return derivatives(on[pos])

        quantities[r] = combined_moments(base, [small[j] for j in used], W[r, used], of_used)
        for j in used:
            uses[j] -= 1
            if uses[j] == 0:
                kept.pop(j, None)
    return OnePass(draws, [m for m in moments if m is not None], offsets_bar, quantities)


def scenario_margin_draws(
    cf: CounterfactualData,
    settings: list[Setting],
    weights: np.ndarray,
    B: np.ndarray,
    link: InverseLink,
    max_bytes: int = _UPDATE_BYTES,
) -> np.ndarray | None:
    """(settings, S) margins over the draws ``B`` of every setting (a nonlinear link), or
    None when a setting is not a change of the base design's columns."""
    got = one_pass(cf, settings, weights, link, None, B, max_bytes)
    return None if got is None else got.draws
