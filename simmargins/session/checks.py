"""Checks a session makes on the fit before any margin: finite estimates, convergence,
the fit's own weights; and the text of the delta-method warning a result triggers.

Each check speaks once, at the user's line (``warn_user``), in terms of what happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ConvergenceWarning, warn_user
from .._validate import fit_converged

if TYPE_CHECKING:
    from ..adapters import ModelAdapter
    from ..results.result import MarginsResult


def _short_of_optimum(adapter: ModelAdapter) -> str | None:
    """The words for a MixedLM fit whose (RE)ML criterion still rises beyond its estimates;
    '' when the fit is at its optimum; None when that cannot be checked."""
    base: Any = getattr(adapter, "base", adapter)  # the cluster-specific adapters wrap it
    check = getattr(base, "optimum_check", None)
    found = check() if callable(check) else None
    if found is None:
        return None
    if not found.short:
        return ""
    crit = "REML" if found.reml else "ML"
    said = "reported convergence" if fit_converged(base.fit) else "reported no convergence"
    return (
        f"this MixedLM fit is short of its {crit} optimum: the criterion rises by "
        f"{found.gap:.3g} (from {found.llf_fit:.6g} to {found.llf_opt:.6g}) when the "
        f"random-effects covariance moves from statsmodels' {_cov_text(found.cov_re_fit)} "
        f"to {_cov_text(found.cov_re_opt)}, which changes the fixed effects' standard errors "
        f"by up to {100 * found.se_change:.2g}% (statsmodels {said}). Every interval, "
        "small-sample df and parametric bootstrap rests on these variance parameters: refit, "
        "e.g. model.fit(method=['powell']) (in a simmargins spec: [model.fit] method = "
        f"\"powell\"), until fit.llf reaches {found.llf_opt:.6g}, before trusting the margins"
    )


def _cov_text(cov: np.ndarray) -> str:
    cov = np.atleast_2d(cov)
    if cov.shape == (1, 1):
        return f"{cov[0, 0]:.4g}"
    rows = "; ".join(", ".join(f"{v:.4g}" for v in row) for row in cov)
    return f"[{rows}]"


def convergence_problem(adapter: ModelAdapter) -> str | None:
    """What is wrong with how the fit was optimised, in words, or None.

    A Gaussian MixedLM fit (one grouping factor, no variance components) is checked against
    the optimum of its criterion, whatever statsmodels reported (see
    :mod:`simmargins.resampling.lmm_optimum`); other fits are taken at statsmodels' word.
    """
    short = _short_of_optimum(adapter)
    if short is not None:
        return short or None
    fit = getattr(adapter, "fit", None)
    if fit is not None and not fit_converged(fit):
        return (
            f"statsmodels reports that this {adapter.model_class} fit did not converge, "
            "so β̂ and V̂ (and every margin built on them) may not be the optimum; refit "
            "with more iterations or another optimiser before trusting the margins"
        )
    return None


def warn_if_not_converged(adapter: ModelAdapter) -> None:
    """Warn when the fit is not at its optimum (or statsmodels says it did not converge)."""
    problem = convergence_problem(adapter)
    if problem is not None:
        warn_user(f"fit: {problem}", ConvergenceWarning)


def _given(values: Any, n: int) -> np.ndarray | None:
    """A per-row weight array the user actually gave (None when absent or all ones)."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n or np.all(arr == 1.0):
        return None
    return arr


def fit_weight_kinds(adapter: ModelAdapter) -> dict[str, np.ndarray]:
    """The weights the fit was made with, by statsmodels' name: ``freq_weights`` (GLM),
    ``var_weights`` (GLM) or ``weights`` (WLS); only those not all equal to one."""
    model = getattr(adapter, "model", None)
    if model is None:
        return {}
    n = len(adapter.data)
    found: dict[str, np.ndarray] = {}
    names = ("freq_weights", "var_weights") if adapter.model_class == "GLM" else ("weights",)
    if adapter.model_class not in ("GLM", "WLS"):
        return {}
    for name in names:
        arr = _given(getattr(model, name, None), n)
        if arr is not None:
            found[name] = arr
    return found


def delta_warning_text(res: MarginsResult, quantity: str) -> str:
    """Name the criterion that fired for each label, with its value.

    κ > 0.3 is curvature the delta method's linearisation ignores. A disagreement with κ
    = 0 can only come from bootstrap draws (simulation draws of a linear quantity match
    the delta SE up to noise): there the model-based covariance itself is in question.
    """
    from ..results.criteria import TRUST_KAPPA, TRUST_NOISE_MULTIPLE

    bootstrap = res.attrs.get("draws_kind") == "bootstrap"
    noise = res.noise
    parts = []
    flagged = set(res.untrustworthy_labels())
    curved = False
    for lab, k, dis in zip(res.labels, res.kappa, res.disagreement, strict=True):
        if lab not in flagged:
            continue
        curved |= bool(k > TRUST_KAPPA)
        reasons = []
        if k > TRUST_KAPPA:
            reasons.append(f"relative curvature κ = {k:.3g} > {TRUST_KAPPA}")
        if np.isfinite(dis) and dis > TRUST_NOISE_MULTIPLE * noise:
            versus = "the bootstrap" if bootstrap else "the simulation draws"
            reasons.append(
                f"its SE and that of {versus} disagree by {100 * dis:.1f}% (Monte-Carlo noise "
                f"{100 * noise:.1f}%, threshold {TRUST_NOISE_MULTIPLE:g}×)"
            )
        parts.append(f"{lab!r}: " + " and ".join(reasons))
    text = f"{quantity}: the delta method is not trustworthy for " + "; ".join(parts)
    if bootstrap and not curved:
        text += (
            ". The quantity is (near-)linear in β, so the two SEs differ because the "
            "model-based covariance V̂ and the bootstrap disagree, which usually means the "
            "model's covariance is misspecified (e.g. a missing random slope, "
            "heteroskedasticity or unmodelled clustering); report the bootstrap"
        )
    elif res.n_draws == 0:
        text += "; rerun with draws (n_sims >= 2, not 0) and report them"
    else:
        text += "; report the draws"
    return text
