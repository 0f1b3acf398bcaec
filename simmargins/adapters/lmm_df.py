"""Small-sample degrees of freedom for linear combinations Lβ of a linear mixed model.

Margins, AMEs and contrasts of a MixedLM are linear in β (identity link), so each row of
the gradient matrix G (label, coef) is the L of a t-test. Two methods, both starting, as
lme4 does, from the fixed-effects covariance at the fitted variance parameters

    V(φ) = σ² (Xᵀ V_rel(θ)⁻¹ X)⁻¹,    V_rel = I + Z Λ(θ) Λ(θ)ᵀ Zᵀ,

not from statsmodels' ``cov_params()`` (which inverts the joint observed Hessian of β and the
variance parameters; 0.2–0.9% apart on unbalanced data).

**Satterthwaite** (as lmerTest): φ = (θ, σ) with θ lme4's relative Cholesky factor (and
σ_j/σ for each variance component); A = 2 H⁻¹ with H the Hessian of the (RE)ML deviance in φ
(β profiled out, σ not), and for each row l

    df = 2 (l V lᵀ)² / (gᵀ A g),    g_k = l (∂V/∂φ_k) lᵀ.

H and ∂V/∂φ are central differences with Richardson extrapolation (four halvings), on a
deviance computed from per-group Gram matrices (Woodbury), so the cost does not grow with
the group sizes. REML and ML fits.

**Kenward–Roger** (as pbkrtest 0.5, REML fits only): linear variance parameters γ (the
entries of σ²Ψ, each variance component's variance, σ²), Σ = Σ_r γ_r G_r, Φ = V; with
P_r = −XᵀΣ⁻¹G_rΣ⁻¹X, Q_rs = XᵀΣ⁻¹G_rΣ⁻¹G_sΣ⁻¹X, W = 2·IE⁻¹ (IE_rs = tr(Σ⁻¹G_rΣ⁻¹G_s)
− 2 tr(ΦQ_rs) + tr(ΦP_rΦP_s)), the adjusted covariance Φ_A = Φ + 2Φ[Σ_rs W_rs(Q_rs −
P_rΦP_s)]Φ and pbkrtest's ``Lb_ddf`` df for each row. Σ is block diagonal by group; each
group's block is formed densely (cost Σ_g n_g³ per parameter pair).

Covered: random intercepts, correlated random slopes (``re_formula``) and variance
components (``vc_formula``) of statsmodels' MixedLM (one grouping factor, no weights).
Agreement with lmerTest/pbkrtest is checked in ``tests/adapters/test_lmm_df.py`` against
values from ``validation/r_reference_df.R``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import CovarianceWarning, MarginsTypeError, MarginsValueError, warn_user
from ..resampling.lmm_criterion import theta_from_cov

DF_METHODS = ("asymptotic", "satterthwaite", "kenward-roger")


@dataclass(frozen=True)
class SmallSampleDF:
    """Per-label df and the coefficient covariance the t-tests use.

    ``df`` has one entry per row of G (``inf`` for ``"asymptotic"``); ``cov`` is K×K in the
    fit's fixed-effect order: lme4's σ²(XᵀV⁻¹X)⁻¹ for Satterthwaite, pbkrtest's Φ_A for
    Kenward–Roger, the adapter's V̂ for ``"asymptotic"``.
    """

    method: str
    df: np.ndarray
    cov: np.ndarray


# -- the model's pieces --------------------------------------------------------------------
@dataclass(frozen=True)
class _Pieces:
    """Per-group data of a MixedLM fit and its variance parameters φ̂ = (θ_re, θ_vc, σ)."""

    X: list[np.ndarray]
    y: list[np.ndarray]
    Z: list[np.ndarray]  # [exog_re, vc columns (padded per component)] of each group
    q_re: int
    vc_sizes: tuple[int, ...]  # padded width of each variance component
    reml: bool
    phi: np.ndarray

    @property
    def q(self) -> int:
        return self.q_re + sum(self.vc_sizes)

    @property
    def p(self) -> int:
        return int(self.X[0].shape[1])

    @property
    def n(self) -> int:
        return int(sum(len(v) for v in self.y))


def _results(fit_or_adapter: Any) -> Any:
    fit = getattr(fit_or_adapter, "fit", fit_or_adapter)
    if callable(fit):  # a statsmodels model (it has .fit()), not results
        raise MarginsTypeError("fit: expected a fitted MixedLM results object or its adapter")
    if type(getattr(fit, "model", None)).__name__ != "MixedLM":
        raise MarginsTypeError(
            "df: small-sample degrees of freedom are defined for linear mixed models "
            f"(statsmodels MixedLM); got {type(getattr(fit, 'model', fit)).__name__}"
        )
    return fit


def _pieces(fit: Any) -> _Pieces:
    model = fit.model
    k_fe = int(model.k_fe)
    G = len(model.group_labels)
    X = [np.asarray(x, dtype=np.float64)[:, :k_fe] for x in model.exog_li]
    y = [np.asarray(v, dtype=np.float64) for v in model.endog_li]
    q_re = int(model.k_re)
    re = (
        [np.asarray(z, dtype=np.float64) for z in model.exog_re_li]
        if q_re
        else [np.zeros((len(v), 0)) for v in y]
    )
    scale = float(fit.scale)
    vc_blocks: list[list[np.ndarray]] = []
    vc_sizes: list[int] = []
    theta_vc: list[float] = []
    if int(getattr(model, "k_vc", 0)):
        for j, mats in enumerate(model.exog_vc.mats):
            width = max(int(np.shape(m)[1]) for m in mats)
            vc_sizes.append(width)
            vc_blocks.append(
                [
                    np.pad(np.asarray(m, dtype=np.float64), ((0, 0), (0, width - np.shape(m)[1])))
                    for m in mats
                ]
            )
            theta_vc.append(float(np.sqrt(max(float(fit.vcomp[j]), 0.0) / scale)))
    Z = [np.hstack([re[g]] + [blk[g] for blk in vc_blocks]) for g in range(G)]
    theta_re = np.zeros(0)
    if q_re:
        # lme4's θ: the lower triangle of Ψ's Cholesky factor (row by row), Ψ = cov_re/σ²
        theta_re = theta_from_cov(np.asarray(fit.cov_re, dtype=np.float64) / scale)
    phi = np.concatenate([theta_re, theta_vc, [np.sqrt(scale)]])
    reml = bool(getattr(fit, "reml", getattr(model, "reml", True)))
    return _Pieces(X, y, Z, q_re, tuple(vc_sizes), reml, phi)


# -- Satterthwaite ------------------------------------------------------------------------
class _Deviance:
    """lme4's (RE)ML deviance and σ²(XᵀV_rel⁻¹X)⁻¹ as functions of φ = (θ_re, θ_vc, σ)."""

    def __init__(self, pc: _Pieces) -> None:
        self.pc = pc
        XY = [np.column_stack([x, v]) for x, v in zip(pc.X, pc.y, strict=True)]
        self.cross = sum(w.T @ w for w in XY)  # [X y]ᵀ[X y]
        self.ZtZ = np.stack([z.T @ z for z in pc.Z])  # (G, q, q)
        self.ZtXY = np.stack([z.T @ w for z, w in zip(pc.Z, XY, strict=True)])  # (G, q, p+1)
        self.tril = np.tril_indices(pc.q_re)

    def _lam(self, phi: np.ndarray) -> np.ndarray:
        pc = self.pc
        lam = np.zeros((pc.q, pc.q))
        k = len(self.tril[0])
        if pc.q_re:
            lam[: pc.q_re, : pc.q_re][self.tril] = phi[:k]
        start = pc.q_re
        for j, w in enumerate(pc.vc_sizes):
            lam[start + np.arange(w), start + np.arange(w)] = phi[k + j]
            start += w
        return lam

    def parts(self, phi: np.ndarray) -> tuple[float, np.ndarray, float]:
        """(Σ log|M_g| + the r² term pieces) → (ML part without σ, XᵀV_rel⁻¹X, r²)."""
        pc = self.pc
        p = pc.p
        lam = self._lam(phi)
        if pc.q:
            U = lam.T @ self.ZtZ @ lam
            M = U + np.eye(pc.q)
            R = np.linalg.cholesky(M)
            logdet = 2.0 * float(np.sum(np.log(np.diagonal(R, axis1=1, axis2=2))))
            C = lam.T @ self.ZtXY
            T = self.cross - np.einsum("gqi,gqj->ij", C, np.linalg.solve(M, C))
        else:
            logdet, T = 0.0, self.cross
        XtVX = T[:p, :p]
        beta = np.linalg.solve(XtVX, T[:p, p])
        r2 = float(T[p, p] - T[:p, p] @ beta)
        return logdet, XtVX, r2

    def deviance(self, phi: np.ndarray) -> float:
        pc = self.pc
        sigma2 = float(phi[-1]) ** 2
        logdet, XtVX, r2 = self.parts(phi)
        dev = logdet + r2 / sigma2 + pc.n * np.log(2.0 * np.pi * sigma2)
        if pc.reml:
            dev += float(np.linalg.slogdet(XtVX)[1]) - pc.p * np.log(2.0 * np.pi * sigma2)
        return float(dev)

    def vcov(self, phi: np.ndarray) -> np.ndarray:
        _, XtVX, _ = self.parts(phi)
        V = float(phi[-1]) ** 2 * np.linalg.inv(XtVX)
        return np.asarray((V + V.T) / 2.0)


#: eigenvalues of the deviance's Hessian at or below this count as not positive (lmerTest's
#: ``as_lmerModLT`` tolerance)
_EIGEN_TOL = 1e-8


def _steps(x: np.ndarray, rel: float) -> np.ndarray:
    # θ are ratios of SDs (order 1); σ is on the response's scale
    return np.asarray(rel * np.maximum(np.abs(x), 0.1))


def _richardson(estimates: list[Any]) -> Any:
    """Eliminate the h², h⁴, ... error terms of estimates at steps h, h/2, h/4, ..."""
    table = list(estimates)
    for m in range(1, len(table)):
        factor = 4.0**m
        table = [(factor * table[i + 1] - table[i]) / (factor - 1.0) for i in range(len(table) - 1)]
    return table[0]


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, levels: int = 4) -> np.ndarray:
    k = x.size
    h0 = _steps(x, 1e-2)
    f0 = f(x)
    per_level = []
    for lev in range(levels):
        h = h0 / 2.0**lev
        H = np.empty((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            H[i, i] = (f(x + ei) - 2.0 * f0 + f(x - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                H[i, j] = H[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4.0 * h[i] * h[j])
        per_level.append(H)
    return np.asarray(_richardson(per_level))


def _jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, levels: int = 4) -> np.ndarray:
    """∂f/∂x_k stacked along the first axis: (k, *f.shape)."""
    h0 = _steps(x, 1e-2)
    out = []
    for k in range(x.size):
        per_level = []
        for lev in range(levels):
            e = np.zeros(x.size)
            e[k] = h0[k] / 2.0**lev
            per_level.append((f(x + e) - f(x - e)) / (2.0 * e[k]))
        out.append(_richardson(per_level))
    return np.stack(out)


#: φ-dependent covariance of an adapter whose coefficients extend β with random effects:
#: (σ²Ψ, σ², lme4's σ²(XᵀV⁻¹X)⁻¹) ↦ the covariance of all its coefficients
ExtendedCov = Callable[[np.ndarray, float, np.ndarray], np.ndarray]


def satterthwaite(
    fit_or_adapter: Any, G: np.ndarray, extended: ExtendedCov | None = None
) -> SmallSampleDF:
    """Satterthwaite df for each row of ``G`` (label × coef, the fit's fixed-effect order).

    lmerTest's construction (see the module docstring); REML and ML fits. With
    ``extended`` the coefficients are β followed by random effects (``random_effects="new"``
    or ``"blup"``, whose adapters give their covariance as a function of the variance
    parameters, ``extended_cov``): the variance of each row and its gradient in φ are those
    of that whole covariance — for a new cluster l V lᵀ + z̄ σ²ΛΛᵀ z̄ᵀ, the classical df of a
    prediction for a new group (in a balanced one-way design, those of MSB(1/n + 1/(Jn)) −
    MSW/n); for the BLUPs Henderson's σ²C⁻¹, the df of a predictable function.
    """
    return _satterthwaite(_pieces(_results(fit_or_adapter)), G, extended)


def _satterthwaite(
    pc: _Pieces, G: np.ndarray, extended: ExtendedCov | None = None
) -> SmallSampleDF:
    dev = _Deviance(pc)
    vcov: Callable[[np.ndarray], np.ndarray] = dev.vcov
    if extended is not None:
        if pc.vc_sizes or not pc.q_re:
            raise MarginsValueError(
                "df='satterthwaite' with random effects as coefficients covers random "
                "intercepts and slopes (re_formula), not variance components"
            )
        vcov = _extended_vcov(dev, extended)
    V = vcov(pc.phi)
    G = _check_gradient(G, V.shape[0])
    H = _hessian(dev.deviance, pc.phi)
    H = (H + H.T) / 2.0
    vals, vecs = np.linalg.eigh(H)
    pos = vals > _EIGEN_TOL
    if not pos.all():
        warn_user(
            "df='satterthwaite': the Hessian of the deviance in the variance parameters is not "
            f"positive definite (eigenvalues {', '.join(f'{v:.1e}' for v in vals[~pos])}: a "
            "variance estimate on the boundary?); as lmerTest does, it is inverted on its "
            "positive eigenvalues only, and the df may be unreliable",
            CovarianceWarning,
        )
    # lmerTest's A: 2 H⁻¹ on the eigenvectors of positive eigenvalues (a negative one would
    # make gᵀAg, and so the df, negative)
    A = 2.0 * (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    J = _jacobian(vcov, pc.phi)  # (φ, K, K)
    var = np.einsum("lk,kj,lj->l", G, V, G)
    grad = np.einsum("lk,pkj,lj->lp", G, J, G)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / np.einsum("lp,pq,lq->l", grad, A, grad)
    return SmallSampleDF("satterthwaite", df, V)


def _extended_vcov(dev: _Deviance, extended: ExtendedCov) -> Callable[[np.ndarray], np.ndarray]:
    """φ ↦ the extended adapter's covariance at the variance parameters φ."""
    q = dev.pc.q_re

    def vcov(phi: np.ndarray) -> np.ndarray:
        lam = dev._lam(phi)[:q, :q]
        sigma2 = float(phi[-1]) ** 2
        return extended(sigma2 * (lam @ lam.T), sigma2, dev.vcov(phi))

    return vcov


# -- Kenward–Roger ---------------------------------------------------------------------------
def _linear_structure(pc: _Pieces) -> tuple[np.ndarray, list[Callable[[int], np.ndarray]]]:
    """γ̂ (σ²Ψ entries (a ≥ b), each variance component's variance, σ²) and, per γ_r, the
    function giving group g's block of G_r = ∂Σ/∂γ_r."""
    sigma2 = float(pc.phi[-1]) ** 2
    k = pc.q_re * (pc.q_re + 1) // 2
    low = np.zeros((pc.q_re, pc.q_re))
    low[np.tril_indices(pc.q_re)] = pc.phi[:k]
    cov_re = sigma2 * low @ low.T
    gamma: list[float] = []
    mats: list[Callable[[int], np.ndarray]] = []

    def pair(a: int, b: int) -> Callable[[int], np.ndarray]:
        def block(g: int) -> np.ndarray:
            za, zb = pc.Z[g][:, a], pc.Z[g][:, b]
            out = np.outer(za, zb)
            return out + out.T if a != b else out

        return block

    def component(cols: slice) -> Callable[[int], np.ndarray]:
        def block(g: int) -> np.ndarray:
            z = pc.Z[g][:, cols]
            return np.asarray(z @ z.T)

        return block

    for a, b in zip(*np.tril_indices(pc.q_re), strict=True):
        gamma.append(float(cov_re[a, b]))
        mats.append(pair(int(a), int(b)))
    start = pc.q_re
    for j, w in enumerate(pc.vc_sizes):
        gamma.append(sigma2 * float(pc.phi[k + j]) ** 2)
        mats.append(component(slice(start, start + w)))
        start += w
    gamma.append(sigma2)
    mats.append(lambda g: np.eye(len(pc.y[g])))
    return np.asarray(gamma), mats


def kenward_roger(fit_or_adapter: Any, G: np.ndarray) -> SmallSampleDF:
    """Kenward–Roger df and adjusted covariance Φ_A for each row of ``G`` (REML fits only).

    pbkrtest's construction (see the module docstring). Raises for an ML fit.
    """
    return _kenward_roger(_pieces(_results(fit_or_adapter)), G)


def _kenward_roger(pc: _Pieces, G: np.ndarray) -> SmallSampleDF:
    if not pc.reml:
        raise MarginsValueError(
            "df='kenward-roger' is defined for REML fits only; this MixedLM was fitted by "
            "maximum likelihood (reml=False). Refit with reml=True, or use df='satterthwaite', "
            "which covers ML fits"
        )
    G = _check_gradient(G, pc.p)
    gamma, mats = _linear_structure(pc)
    R = gamma.size
    p = pc.p
    XtSX = np.zeros((p, p))
    P = np.zeros((R, p, p))
    Q = np.zeros((R, R, p, p))
    K = np.zeros((R, R))
    for g in range(len(pc.y)):
        blocks = [m(g) for m in mats]
        S = np.linalg.inv(sum(gm * blk for gm, blk in zip(gamma, blocks, strict=True)))
        X = pc.X[g]
        SX = S @ X
        XtSX += X.T @ SX
        Hs = [blk @ S for blk in blocks]  # G_r Σ⁻¹
        GSX = [h @ X for h in Hs]  # G_r Σ⁻¹ X
        SO = [S @ o for o in GSX]
        for r in range(R):
            P[r] -= GSX[r].T @ SX
            for s in range(R):
                Q[r, s] += GSX[r].T @ SO[s]
                K[r, s] += np.sum(Hs[r].T * Hs[s])
    Phi = np.linalg.inv(XtSX)
    Phi = (Phi + Phi.T) / 2.0
    PhiP = np.einsum("ij,rjk->rik", Phi, P)
    IE = K - 2.0 * np.einsum("ij,rsji->rs", Phi, Q) + np.einsum("rij,sji->rs", PhiP, PhiP)
    IE = (IE + IE.T) / 2.0
    if np.min(np.abs(np.linalg.eigvalsh(IE))) > 1e-10:
        W = 2.0 * np.linalg.inv(IE)
    else:
        W = 2.0 * np.linalg.pinv(IE)
    U = np.einsum("rs,rsij->ij", W, Q) - np.einsum("rs,rij,jk,skl->il", W, P, Phi, P)
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    PhiA = (PhiA + PhiA.T) / 2.0
    df = np.array([_kr_ddf(row, Phi, P, W) for row in G])
    return SmallSampleDF("kenward-roger", df, PhiA)


def _kr_ddf(row: np.ndarray, Phi: np.ndarray, P: np.ndarray, W: np.ndarray) -> float:
    """pbkrtest's ``Lb_ddf`` for one row l (a one-dimensional hypothesis)."""
    v = float(row @ Phi @ row)
    if not v > 0:
        return float("nan")
    # u_r = Θ Φ P_r Φ with Θ = lᵀl / v has rank one: tr(u_r) = c_r and tr(u_r u_s) = c_r c_s
    c = np.einsum("i,rij,j->r", row @ Phi, P, Phi @ row) / v
    A1 = A2 = float(c @ W @ c)
    B = 0.5 * (A1 + 6.0 * A2)
    g = (2.0 * A1 - 5.0 * A2) / (3.0 * A2)
    c1 = g / (3.0 + 2.0 * (1.0 - g))
    c2 = (1.0 - g) / (3.0 + 2.0 * (1.0 - g))
    c3 = (3.0 - g) / (3.0 + 2.0 * (1.0 - g))
    V0 = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = (1.0 - A2) / V1 if abs(V1) > 1e-14 else float("inf")
    rho = ratio**2 * V0 / V2
    return float(4.0 + 3.0 / (rho - 1.0))


# -- the entry point for a session ------------------------------------------------------------
def _check_gradient(G: Any, k: int) -> np.ndarray:
    arr = np.atleast_2d(np.asarray(G, dtype=np.float64))
    if arr.ndim != 2 or arr.shape[1] != k:
        raise MarginsValueError(
            f"G: expected a (label, coef) matrix with {k} columns (the fixed effects), "
            f"got shape {np.shape(G)}"
        )
    return arr


def small_sample_df(
    fit_or_adapter: Any, G: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label df and the coefficient covariance for t-based inference on G·β.

    Parameters
    ----------
    fit_or_adapter : MixedLMResults or StatsmodelsMixedLMAdapter
        The fitted linear mixed model (an adapter is unwrapped through ``.fit``).
    G : array (label, coef)
        Gradient rows of the quantities, columns in the fit's fixed-effect order (the
        adapter's ``coef_names``). Identity-link quantities are exactly ``G·β``.
    method : {"asymptotic", "satterthwaite", "kenward-roger"}
        ``"asymptotic"`` returns ``inf`` df and the adapter's V̂ (``cov_params()``).

    Returns
    -------
    df : array (label,)
    cov : array (coef, coef)
        The covariance the SEs and draws should use: lme4's σ²(XᵀV⁻¹X)⁻¹ for
        Satterthwaite, the Kenward–Roger adjusted Φ_A for Kenward–Roger.

    Raises
    ------
    MarginsValueError
        For an unknown method, a G of the wrong width, or Kenward–Roger on an ML fit.
    """
    if method not in DF_METHODS:
        raise MarginsValueError(f"df: expected one of {DF_METHODS}, got {method!r}")
    if method == "asymptotic":
        cov = getattr(fit_or_adapter, "cov", None)
        if cov is None:  # results, not an adapter: the fixed-effects block of cov_params()
            from ._base import align_cov

            fit = _results(fit_or_adapter)
            cov = align_cov(fit.cov_params(), tuple(str(n) for n in fit.fe_params.index))
        cov = np.asarray(cov, dtype=np.float64)
        G = _check_gradient(G, cov.shape[0])
        return np.full(G.shape[0], np.inf), cov
    # random_effects="new" / "blup": coefficients beyond β are random effects
    extended = getattr(fit_or_adapter, "extended_cov", None)
    if method == "satterthwaite":
        res = satterthwaite(fit_or_adapter, G, extended)
    elif extended is not None:
        raise MarginsValueError(
            "df: 'kenward-roger' adjusts the fixed effects' covariance and has no df for "
            "predictions that include random effects; use df='satterthwaite'"
        )
    else:
        res = kenward_roger(fit_or_adapter, G)
    return res.df, res.cov


def t_scaled_draws(centred: np.ndarray, df: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multivariate-t draws of the quantities from normal draws, one df per label.

    ``centred`` (draw, label) holds G·(β⁽ᵈ⁾ − β̂) with β⁽ᵈ⁾ ~ N(β̂, V); each draw d gets one
    uniform u_d (from ``rng``) shared by every label, and label j is scaled by
    √(ν_j / χ²_{ν_j}⁻¹(u_d)). Each label's draws are then exactly t with ν_j df (scale its
    SE), and with a common ν the draws are the multivariate t β̂ + L z·√(ν/χ²_ν); with
    different ν the labels stay comonotone in the shared χ² (ν = inf leaves a label normal).
    Add the estimates afterwards.
    """
    from scipy import special

    centred = np.asarray(centred, dtype=np.float64)
    nu: np.ndarray = np.array(np.broadcast_to(np.asarray(df, dtype=np.float64), centred.shape[1:]))
    nu_f = nu[np.isfinite(nu)]
    u = rng.random((int(centred.shape[0]),))
    factor = np.ones((centred.shape[0], nu.size))
    finite = np.isfinite(nu)
    if finite.any():
        chi2 = special.chdtri(nu_f[None, :], u[:, None])  # upper-tail inverse: P(X > x) = u
        factor[:, finite] = np.sqrt(nu_f[None, :] / chi2)
    return np.asarray(centred * factor)
