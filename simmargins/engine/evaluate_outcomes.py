"""Stage function: quantities of a multi-outcome model, one per outcome category.

Every verb's quantities are θ = W μ over scenario margins, as for single-outcome models
(:func:`.evaluate.evaluate_linear`), with one margin per outcome j:
μ_{s,j}(θ) = Σᵢ wᵢ p_ij(x_{s,i}; θ) / Σᵢ wᵢ (:mod:`.multinomial`). The delta method uses the
analytic gradient and Hessian of each outcome's margin; the draws come from the kernel
:func:`.multinomial_kernels.outcome_margins`, one pass over the rows per setting giving
every outcome at once.

Rows of the returned :class:`.evaluate.Evaluated` are ordered quantity-major, then
outcome, then group: the (outcome, group) pairs play the role the groups alone play for
other models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .design import CounterfactualData, Setting
from .evaluate import Designs, Evaluated
from .multinomial import OutcomeModel, outcome_moments


def _rows(
    rows: Designs, setting: Setting, w: np.ndarray, at_mean: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float]:
    """The design, offset, weights normalised to sum 1, and the clipped-step ratio
    (a margin is ratio · Σ wn p) of one setting over one group's rows."""
    X, off = rows.design(setting)
    scale = rows.row_scale(setting)
    ratio = 1.0
    if scale is not None:  # each row divides by its own (clipped) step
        ratio = float((w * scale).sum() / w.sum())
        w = w * scale
    keep = w > 0
    X, w = X[keep], w[keep]
    off = None if off is None else off[keep]
    wn = w / w.sum()
    if at_mean:
        X = (wn @ X)[None, :]
        off = None if off is None else np.array([wn @ off])
        wn = np.ones(1)
    return X, off, wn, ratio


def evaluate_outcomes(
    cf: CounterfactualData,
    settings: list[Setting],
    W: np.ndarray,
    group_weights: list[np.ndarray],
    model: OutcomeModel,
    theta: np.ndarray,
    B: np.ndarray,
    factor: np.ndarray,
    at_mean: bool,
    sources: Sequence[Designs | None] | None = None,
) -> Evaluated:
    """θ_{r,j,g} = Σ_s W_rs μ_{s,j,g} with its gradient, Hessian (times ``factor``) and draws.

    Parameters
    ----------
    cf : CounterfactualData
        The rows and the fit's design builder.
    settings : list of Setting
        The scenarios whose margins W combines.
    W : (R, n_settings) array
        Each quantity's weights over the settings.
    group_weights : list of (N,) arrays
        Each ``by`` group's row weights (one entry: no groups).
    model : OutcomeModel
        The multi-outcome family and its shape.
    theta, B : (P,) and (S, P) arrays
        The estimates and the coefficient draws.
    factor : (P, P) array
        L with L Lᵀ = V̂ (the Hessian is returned as H·L, for κ).
    at_mean : bool
        Evaluate at the weighted mean design row instead of averaging over rows.
    sources : sequence, optional
        Per setting, a replacement for ``cf`` as the source of its design (None: ``cf``).
    """
    from .multinomial_kernels import outcome_margins  # numba loads only here

    J, P, S = model.n_outcomes, model.n_params, B.shape[0]
    n_grp, n_set = len(group_weights), len(settings)
    values = np.empty((n_set, J, n_grp))
    grads = np.empty((n_set, J, n_grp, P))
    hessians = np.empty((n_set, J, n_grp, P, P))
    draws = np.empty((S, n_set, J, n_grp))
    for s, setting in enumerate(settings):
        src = sources[s] if sources is not None else None
        rows: Designs = cf if src is None else src
        for g, w_g in enumerate(group_weights):
            X, off, wn, ratio = _rows(rows, setting, w_g, at_mean)
            v, gr, h = outcome_moments(model, X, off, wn, theta)
            values[s, :, g], grads[s, :, g], hessians[s, :, g] = ratio * v, ratio * gr, ratio * h
            if S:
                draws[:, s, :, g] = ratio * outcome_margins(model, X, off, wn, B)
    n_q = W.shape[0]
    estimate = np.einsum("qs,sjg->qjg", W, values).reshape(-1)
    grad = np.einsum("qs,sjgp->qjgp", W, grads).reshape(-1, P)
    draw_out = np.einsum("qs,dsjg->dqjg", W, draws).reshape(S, n_q * J * n_grp)
    hess: list[np.ndarray | None] = []
    for q in range(n_q):
        used = np.flatnonzero(W[q])
        for j in range(J):
            for g in range(n_grp):
                h = np.zeros((P, P))
                for s_used in used:
                    h += W[q, s_used] * hessians[s_used, j, g]
                hess.append(h @ factor)
    return Evaluated(estimate, grad, hess, draw_out)
