"""Stage functions: settings × groups → estimates, gradients, Hessians and draws.

Two shapes of quantity exist. *Linear in the margins*: θ = W μ over scenario margins
(predictions, AMEs as ±1/2ε differences, contrasts). *Row ratios*: elasticities whose
per-row value divides by that row's own prediction, which no W over margins expresses.
Both return the same :class:`Evaluated`, rows ordered quantity-major, group-minor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .delta import scenario_moments
from .design import CounterfactualData, Setting
from .links import InverseLink
from .one_pass import OnePass, one_pass

# elements of the draws × rows block the ratio route may hold at once (32 MiB of float64)
_BLOCK_ELEMENTS = 1 << 22


@dataclass
class Evaluated:
    estimate: np.ndarray  # (R,)
    grad: np.ndarray  # (R, K)
    hess_factor: list[np.ndarray | None]  # H·L per row; None where the Hessian is zero
    draws: np.ndarray  # (S, R)

    def rows(self, sl: slice) -> Evaluated:
        """The quantities in rows ``sl``."""
        return Evaluated(
            self.estimate[sl], self.grad[sl], self.hess_factor[sl], self.draws[:, sl]
        )


class Designs(Protocol):
    """What an evaluation needs of its rows: the design (and offset) under a setting, and
    the per-row weights of clipped differences. :class:`CounterfactualData` is one."""

    def design(self, setting: Setting) -> tuple[np.ndarray, np.ndarray | None]: ...

    def row_scale(self, setting: Setting) -> np.ndarray | None: ...


class Rescaled:
    """The rows of ``cf`` with columns multiplied after the setting (``scale=`` scenarios).

    A per-row transformation rather than a value: x becomes c·x in every row, after the
    ``at`` settings and the scenario's values, as a perturbation is.
    """

    def __init__(self, cf: CounterfactualData, factors: Sequence[tuple[str, float]]) -> None:
        self.cf, self.factors = cf, tuple(factors)

    def design(self, setting: Setting) -> tuple[np.ndarray, np.ndarray | None]:
        frame = self.cf.frame(setting).copy(deep=False)
        for name, c in self.factors:
            frame[name] = frame[name].to_numpy(dtype=np.float64) * c
        return self.cf.design_fn(frame), self.cf.offset_fn(frame)

    def row_scale(self, setting: Setting) -> np.ndarray | None:
        return self.cf.row_scale(setting)


def _mean_row(
    X: np.ndarray, off: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wn = w / w.sum()
    return (wn @ X)[None, :], np.array([wn @ off]), np.ones(1)


def _group_rows(cf: CounterfactualData, keep: np.ndarray) -> CounterfactualData:
    """``cf`` restricted to the rows ``keep``: the same spec, variables and ``at`` values."""
    data = cf.data.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    return CounterfactualData(
        data, cf.variables, cf.design_fn, cf.offset_fn, dict(cf.base_values), cf.offset_keys,
        cf.spec,
    )


def one_pass_groups(
    cf: CounterfactualData,
    settings: list[Setting],
    group_weights: list[np.ndarray],
    link: InverseLink,
    beta: np.ndarray,
    B: np.ndarray,
    W: np.ndarray | None = None,
) -> list[OnePass | None]:
    """Per group, every setting's delta moments and (nonlinear links) margin draws from one
    base design (:func:`.one_pass.one_pass`), or None where that route does not apply (the
    caller then builds each setting's design).

    With several groups each runs on its own rows only, as the setting-by-setting route
    does: a row outside the group has weight 0, and 0·h(η) is NaN where h(η) is not
    finite (the log link overflowing, a power link at a negative η).
    """
    n_grp = len(group_weights)
    out: list[OnePass | None] = []
    for w_g in group_weights:
        rows, w = cf, w_g
        if n_grp > 1:
            keep = w_g > 0
            rows, w = _group_rows(cf, keep), w_g[keep]
        got = one_pass(rows, settings, w, link, beta, B, W=W)
        if got is None:  # the same settings fail in every group
            return [None] * n_grp
        out.append(got)
    return out


def evaluate_linear(
    cf: CounterfactualData,
    settings: list[Setting],
    W: np.ndarray,
    group_weights: list[np.ndarray],
    link: InverseLink,
    beta: np.ndarray,
    B: np.ndarray,
    factor: np.ndarray,
    at_mean: bool,
    sources: Sequence[Designs | None] | None = None,
) -> Evaluated:
    """θ_{r,g} = Σ_s W_rs μ_{s,g} with μ_{s,g} = Σᵢ w_gi h(x_si·β + oᵢ) / Σᵢ w_gi.

    ``sources`` optionally gives, per setting, other rows to build it from (e.g.
    :class:`Rescaled`); None entries use ``cf``.
    """
    n_set, n_grp, k, s = len(settings), len(group_weights), beta.shape[0], B.shape[0]
    values = np.empty((n_grp, n_set))
    grads = np.empty((n_grp, n_set, k))
    hessians: list[list[np.ndarray | None]] = [[None] * n_set for _ in range(n_grp)]
    offsets_bar = np.empty((n_grp, n_set))
    mu_draws = None if link.is_identity else np.empty((n_grp, s, n_set))
    fast: list[OnePass | None] = [None] * n_grp
    rebuilt_elsewhere = sources is not None and any(x is not None for x in sources)
    if not at_mean and not rebuilt_elsewhere:
        fast = one_pass_groups(cf, settings, group_weights, link, beta, B, W)
    for g, got in enumerate(fast):
        if got is None:
            continue
        assert got.moments is not None
        for j, mom in enumerate(got.moments):
            values[g, j], grads[g, j], hessians[g][j] = mom.value, mom.grad, mom.hess
        offsets_bar[g] = got.offsets_bar
        if mu_draws is not None and got.draws is not None:
            mu_draws[g] = got.draws.T
    slow = [g for g, got in enumerate(fast) if got is None]
    for j, setting in enumerate(settings):
        if not slow:
            break
        src: Designs | None = sources[j] if sources is not None else None
        rows: Designs = cf if src is None else src
        X_all, off_all = rows.design(setting)
        off_all = np.zeros(X_all.shape[0]) if off_all is None else off_all
        scale = rows.row_scale(setting)
        for g in slow:
            w_g = group_weights[g]
            X, off, w = X_all, off_all, w_g
            # rows with their own difference step carry it as a weight: μ = Σ w·r·h / Σ w
            ratio = 1.0
            if scale is not None:
                ratio = float((w * scale).sum() / w.sum())
                w = w * scale
            if at_mean:
                X, off, w = _mean_row(X, off, w)
            elif n_grp > 1:
                keep = w > 0
                X, off, w = X[keep], off[keep], w[keep]
            mom = scenario_moments(X, off, w, beta, link)
            values[g, j], grads[g, j] = ratio * mom.value, ratio * mom.grad
            hessians[g][j] = None if mom.hess is None else ratio * mom.hess
            offsets_bar[g, j] = ratio * float((w / w.sum()) @ off)
            if mu_draws is not None and s:
                from .kernels import margin_draws  # numba loads only for nonlinear links

                mu_draws[g, :, j] = ratio * margin_draws(X, off, w, B, link.code, link.power)
    n_q = W.shape[0]
    estimate = np.empty(n_q * n_grp)
    grad = np.empty((n_q * n_grp, k))
    draws = np.empty((s, n_q * n_grp))
    hess: list[np.ndarray | None] = []
    for r in range(n_q):
        used = np.flatnonzero(W[r])  # (a setting only in combined quantities has no ∇ alone)
        for g in range(n_grp):
            i = r * n_grp + g
            estimate[i] = W[r] @ values[g]
            got_g = fast[g]
            done = got_g.quantities.get(r) if got_g is not None else None
            grad[i] = done[0] if done is not None else W[r, used] @ grads[g][used]
            if done is not None and mu_draws is not None:
                draws[:, i] = mu_draws[g] @ W[r]
                hess.append(done[1] @ factor)
            elif mu_draws is None:
                # identity: μ_s(β) = x̄_s·β + ō_s, so θ = gβ + Wō with no pass over rows per draw
                draws[:, i] = B @ grad[i] + W[r] @ offsets_bar[g]
                hess.append(None)
            else:
                draws[:, i] = mu_draws[g] @ W[r]
                h = np.zeros((k, k))
                for jj in np.flatnonzero(W[r]):
                    hj = hessians[g][int(jj)]
                    if hj is not None:
                        h += W[r, jj] * hj
                hess.append(h @ factor)
    return Evaluated(estimate, grad, hess, draws)


ELASTICITIES = ("eyex", "eydx", "dyex")


def _ratio_value_grad(
    Xp: np.ndarray,
    Xm: np.ndarray,
    X0: np.ndarray,
    off: np.ndarray,
    c: np.ndarray,
    w: np.ndarray,
    beta: np.ndarray,
    link: InverseLink,
    divide: bool,
) -> tuple[float, np.ndarray]:
    """f(β) = Σ wᵢ cᵢ (h(η⁺ᵢ) − h(η⁻ᵢ)) / h(η⁰ᵢ)^[divide] / Σ wᵢ and its analytic gradient."""
    ep, em = Xp @ beta + off, Xm @ beta + off
    diff = link.h(ep) - link.h(em)
    dgrad = (link.dh(ep))[:, None] * Xp - (link.dh(em))[:, None] * Xm
    wn = w / w.sum()
    if not divide:
        return float(wn @ (c * diff)), (wn * c) @ dgrad
    e0 = X0 @ beta + off
    h0 = link.h(e0)
    value = float(wn @ (c * diff / h0))
    g = (wn * c / h0) @ dgrad - (wn * c * diff * link.dh(e0) / h0**2) @ X0
    return value, g


def evaluate_elasticity(
    cf: CounterfactualData,
    name: str,
    kind: str,
    group_weights: list[np.ndarray],
    link: InverseLink,
    beta: np.ndarray,
    B: np.ndarray,
    factor: np.ndarray,
    at_mean: bool,
) -> Evaluated:
    """Average elasticity of ``name``: eyex = ∂y/∂x·x/y, eydx = ∂y/∂x/y, dyex = ∂y/∂x·x."""
    eps = cf.fd_step(name)
    Xp, off = cf.design(Setting(perturb=(name, eps)))
    Xm, _ = cf.design(Setting(perturb=(name, -eps)))
    X0, _ = cf.design(Setting())
    off = np.zeros(X0.shape[0]) if off is None else off
    x = cf.frame(Setting())[name].to_numpy(dtype=np.float64)
    c = (x if kind in ("eyex", "dyex") else np.ones_like(x)) / (2.0 * eps)
    divide = kind in ("eyex", "eydx")
    k, s = beta.shape[0], B.shape[0]
    n_grp = len(group_weights)
    estimate, grad, draws = np.empty(n_grp), np.empty((n_grp, k)), np.empty((s, n_grp))
    hess: list[np.ndarray | None] = []
    for g, w_g in enumerate(group_weights):
        keep = w_g > 0
        parts = [Xp[keep], Xm[keep], X0[keep], off[keep], c[keep]]
        w = w_g[keep]
        if at_mean:
            wn = w / w.sum()
            parts = [(wn @ p)[None] if p.ndim == 2 else np.array([wn @ p]) for p in parts]
            w = np.ones(1)
        xp, xm, x0, o, cc = parts
        estimate[g], grad[g] = _ratio_value_grad(xp, xm, x0, o, cc, w, beta, link, divide)
        # the Hessian along the whitened directions, by central differences of the gradient
        delta = 1e-4
        hl = np.empty((k, factor.shape[1]))
        for col in range(factor.shape[1]):
            step = delta * factor[:, col]
            gp = _ratio_value_grad(xp, xm, x0, o, cc, w, beta + step, link, divide)[1]
            gm = _ratio_value_grad(xp, xm, x0, o, cc, w, beta - step, link, divide)[1]
            hl[:, col] = (gp - gm) / (2 * delta)
        hess.append(hl)
        wn = w / w.sum()
        block = max(1, _BLOCK_ELEMENTS // max(xp.shape[0], 1))
        for d0 in range(0, s, block):
            Bb = B[d0 : d0 + block]
            diff = link.h(Bb @ xp.T + o) - link.h(Bb @ xm.T + o)
            if divide:
                diff = diff / link.h(Bb @ x0.T + o)
            draws[d0 : d0 + block, g] = (diff * cc) @ wn
    return Evaluated(estimate, grad, hess, draws)


# -- comparisons of two averaged predictions ---------------------------------------------------
COMPARISONS = ("difference", "ratio", "lnratio", "lnor", "lift")


def _comparison_derivatives(
    kind: str, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """f(a, b) and its first and second partial derivatives (f, fa, fb, faa, fab, fbb)."""
    zero, one = np.zeros_like(a), np.ones_like(a)
    if kind == "difference":
        return a - b, one, -one, zero, zero, zero
    if kind in ("ratio", "lift"):
        f = a / b if kind == "ratio" else (a - b) / b
        return f, 1.0 / b, -a / b**2, zero, -1.0 / b**2, 2.0 * a / b**3
    if kind == "lnratio":
        return np.log(a) - np.log(b), 1.0 / a, -1.0 / b, -1.0 / a**2, zero, 1.0 / b**2
    if kind == "lnor":
        va, vb = a * (1.0 - a), b * (1.0 - b)
        f = np.log(a / (1.0 - a)) - np.log(b / (1.0 - b))
        return f, 1.0 / va, -1.0 / vb, (2.0 * a - 1.0) / va**2, zero, -(2.0 * b - 1.0) / vb**2
    raise ValueError(f"unknown comparison {kind!r}")


def comparison_domain_error(kind: str, a: np.ndarray, b: np.ndarray) -> str | None:
    """Why f(a, b) is undefined for some of the values, or None when it is defined for all."""
    if kind in ("ratio", "lift") and np.any(b == 0):
        return "the denominator's margin is 0"
    if kind == "lnratio" and (np.any(a <= 0) or np.any(b <= 0)):
        return "a log ratio needs both margins > 0"
    if kind == "lnor" and (np.any((a <= 0) | (a >= 1)) or np.any((b <= 0) | (b >= 1))):
        return "a log odds ratio needs both margins strictly between 0 and 1 (probabilities)"
    return None


def compare(kind: str, pos: Evaluated, neg: Evaluated, factor: np.ndarray) -> Evaluated:
    """θ = f(a, b) per row from two evaluations a (``pos``) and b (``neg``) of equal shape.

    The gradient is the chain rule fa∇a + fb∇b, and the Hessian along the whitened
    directions (H·L with V̂ = LLᵀ) is fa·HaL + fb·HbL + ∇a(faa∇aᵀL + fab∇bᵀL) +
    ∇b(fab∇aᵀL + fbb∇bᵀL), so κ counts the comparison's own curvature as well as the
    link's. Draws are f applied draw by draw.
    """
    f, fa, fb, faa, fab, fbb = _comparison_derivatives(kind, pos.estimate, neg.estimate)
    grad = fa[:, None] * pos.grad + fb[:, None] * neg.grad
    hess: list[np.ndarray | None] = []
    for r in range(f.shape[0]):
        ga, gb = pos.grad[r], neg.grad[r]
        la, lb = ga @ factor, gb @ factor
        h = np.outer(ga, faa[r] * la + fab[r] * lb) + np.outer(gb, fab[r] * la + fbb[r] * lb)
        for coef, part in ((fa[r], pos.hess_factor[r]), (fb[r], neg.hess_factor[r])):
            if part is not None:
                h = h + coef * part
        hess.append(None if kind == "difference" and not np.any(h) else h)
    draws = _comparison_derivatives(kind, pos.draws, neg.draws)[0]
    return Evaluated(f, grad, hess, draws)
