"""Stage function: population-averaged margins of a mixed GLM, random effects integrated out.

The coefficient vector is θ = (β, v) with v the log-SDs of the C independent normal
variance components (σ_c = exp(v_c)); each row's design, as the adapter builds it, is
(x, Z2) with Z2 the row's Σ z² per component, so that the row's random-effects term z·u
is N(0, s²) with s² = Z2·exp(2v). A scenario's margin is

    μ_s(θ) = Σᵢ wᵢ g(x_{s,i}·β + oᵢ, sᵢ) / Σᵢ wᵢ,    g(η, s) = E[h(η + s ε)],

computed by a quadrature rule (:mod:`.quadrature`; closed forms for the log and identity
links) at θ̂ with its analytic gradient and Hessian in θ (the delta method and κ), and for
every draw θ⁽ᵈ⁾ — β and v together, so each draw integrates with its own σ — by the
kernel :func:`.integrated.integrated_draws`. The rule's size grows by √2 from 4 nodes: n
nodes are accepted when every quantity θ = Wμ computed with n and 2n nodes differs by at
most ``rel_tol`` × its delta SE, at θ̂ and at the draw with the largest variance; that
difference is reported as the integration error. This plays the role of
:func:`.evaluate.evaluate_linear` for these models (same inputs, same :class:`Evaluated`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import warn_user
from .design import CounterfactualData, Setting
from .evaluate import Designs, Evaluated
from .links import LOG, InverseLink
from .quadrature import closed_form, gauss_hermite, row_expectations, sobol_normal

INTEGRATION_METHODS = ("gauss-hermite", "qmc")


class IntegrationWarning(UserWarning):
    """The integration error of a population-averaged margin stays above its tolerance."""


@dataclass(frozen=True)
class IntegrationSpec:
    """How the random effects are integrated: θ = (β (``k_fixed``), v (``n_components``))."""

    k_fixed: int
    n_components: int
    method: str = "gauss-hermite"
    rel_tol: float = 1e-3  # integration error allowed, as a share of the delta SE
    start_nodes: int = 4
    max_nodes: int = 512
    seed: int = 0  # scrambling of the quasi-Monte Carlo points

    def nodes(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return gauss_hermite(n) if self.method == "gauss-hermite" else sobol_normal(n, self.seed)


@dataclass
class IntegrationReport:
    """The rule used and each quantity's estimated integration error (|θ_n − θ_2n|)."""

    method: str  # "gauss-hermite", "qmc" or "closed form"
    nodes: int
    error: np.ndarray  # (R,)
    tolerance: np.ndarray  # (R,)

    @property
    def met(self) -> bool:
        return bool(np.all(self.error <= self.tolerance))


@dataclass
class _Rows:
    X: np.ndarray
    Z2: np.ndarray
    off: np.ndarray
    wn: np.ndarray  # weights normalised to sum 1
    ratio: float  # clipped-step rows: μ = ratio · Σ wn g


def _collect(
    cf: CounterfactualData,
    settings: list[Setting],
    group_weights: list[np.ndarray],
    at_mean: bool,
    k: int,
    sources: Sequence[Designs | None] | None,
) -> list[list[_Rows]]:
    out: list[list[_Rows]] = [[] for _ in group_weights]
    for j, setting in enumerate(settings):
        src = sources[j] if sources is not None else None
        rows: Designs = cf if src is None else src
        XZ, off_all = rows.design(setting)
        off_all = np.zeros(XZ.shape[0]) if off_all is None else off_all
        scale = rows.row_scale(setting)
        for g, w_g in enumerate(group_weights):
            X, Z2, off, w, ratio = XZ[:, :k], XZ[:, k:], off_all, w_g, 1.0
            if scale is not None:
                ratio = float((w * scale).sum() / w.sum())
                w = w * scale
            keep = w > 0
            X, Z2, off, w = X[keep], Z2[keep], off[keep], w[keep]
            wn = w / w.sum()
            if at_mean:
                X, Z2, off, wn = (wn @ X)[None], (wn @ Z2)[None], np.array([wn @ off]), np.ones(1)
            out[g].append(_Rows(X, Z2, off, wn, ratio))
    return out


def _values(rows: list[list[_Rows]], points: np.ndarray, k: int, link: InverseLink,
            t: np.ndarray, omega: np.ndarray) -> np.ndarray:  # fmt: skip
    """(points, groups, settings) margins at parameter points (rows of ``points``), by the
    kernel (the node choice evaluates many rules; numpy would hold rows × nodes)."""
    from .integrated import integrated_draws  # numba loads only here

    out = np.empty((points.shape[0], len(rows), len(rows[0])))
    sig2 = np.exp(2.0 * points[:, k:])
    for g, per_set in enumerate(rows):
        for j, r in enumerate(per_set):
            out[:, g, j] = r.ratio * integrated_draws(
                r.X, r.Z2, r.off, r.wn, points[:, :k], sig2, t, omega, link.code, link.power
            )
    return out


def _moments(r: _Rows, theta: np.ndarray, k: int, link: InverseLink, t: np.ndarray,
             omega: np.ndarray) -> tuple[float, np.ndarray, np.ndarray | None]:  # fmt: skip
    """μ(θ̂), ∇μ and the Hessian in θ = (β, v) (None for the identity link)."""
    beta, v = theta[:k], theta[k:]
    sig2 = np.exp(2.0 * v)
    var = r.Z2 @ sig2
    eta = r.X @ beta + r.off
    g, a, b, c, d, e = row_expectations(eta, var, link, t, omega)
    s = np.sqrt(var)
    safe = np.where(s > 0, s, 1.0)
    ds = np.where(s[:, None] > 0, r.Z2 * sig2[None, :] / safe[:, None], 0.0)  # ∂s/∂v
    wn = r.wn
    value = float(wn @ g)
    grad = np.concatenate([(wn * a) @ r.X, (wn * b) @ ds])
    if link.is_identity:
        return r.ratio * value, r.ratio * grad, None
    h_bb = r.X.T @ (r.X * (wn * c)[:, None])
    h_bv = r.X.T @ (ds * (wn * d)[:, None])
    # ∂²s/∂v_c∂v_d = 2δ_cd ∂s/∂v_c − ∂s/∂v_c ∂s/∂v_d / s
    h_vv = ds.T @ (ds * (wn * (e - b / safe))[:, None]) + np.diag(2.0 * ((wn * b) @ ds))
    hess = np.block([[h_bb, h_bv], [h_bv.T, h_vv]])
    return r.ratio * value, r.ratio * grad, r.ratio * hess


def _choose_nodes(
    spec: IntegrationSpec,
    rows: list[list[_Rows]],
    W: np.ndarray,
    link: InverseLink,
    theta: np.ndarray,
    B: np.ndarray,
    se: np.ndarray,
) -> IntegrationReport:
    """Grow the rule until θ with n and 2n nodes agree to ``rel_tol``·SE (module doc)."""
    k = spec.k_fixed
    if closed_form(link):
        zero = np.zeros(se.shape[0])
        return IntegrationReport("closed form", 0, zero, zero)
    points = [theta]
    if B.shape[0] and spec.n_components:  # the draw whose variances are largest
        points.append(B[int(np.argmax(B[:, k:].max(axis=1)))])
    cache: dict[int, list[np.ndarray]] = {}

    def quantities(n: int) -> list[np.ndarray]:
        if n not in cache:
            t, omega = spec.nodes(n)
            mu = _values(rows, np.array(points), k, link, t, omega)
            cache[n] = [(W @ m.T).ravel() for m in mu]
        return cache[n]

    n = spec.start_nodes
    while True:
        lo, hi = quantities(n), quantities(2 * n)
        err = np.max([np.abs(x - y) for x, y in zip(lo, hi, strict=True)], axis=0)
        tol = np.maximum(spec.rel_tol * se, 1e-13 * (1.0 + np.abs(hi[0])))
        if np.all(err <= tol) or 2 * n >= spec.max_nodes:
            return IntegrationReport(spec.method, n, err, tol)
        n = max(n + 1, round(n * np.sqrt(2.0)))  # 4, 6, 8, 11, 16, 23, 32, …


def evaluate_integrated(
    cf: CounterfactualData,
    settings: list[Setting],
    W: np.ndarray,
    group_weights: list[np.ndarray],
    link: InverseLink,
    theta: np.ndarray,
    B: np.ndarray,
    factor: np.ndarray,
    at_mean: bool,
    spec: IntegrationSpec,
    sources: Sequence[Designs | None] | None = None,
) -> tuple[Evaluated, IntegrationReport]:
    """θ_{r,g} = Σ_s W_rs μ_{s,g}(θ) with the random effects integrated out (module doc).

    Rows are ordered quantity-major, group-minor, as in :func:`.evaluate.evaluate_linear`.
    """
    k = spec.k_fixed
    rows = _collect(cf, settings, group_weights, at_mean, k, sources)
    n_grp, n_set, p, s = len(rows), len(settings), theta.shape[0], B.shape[0]
    n_q = W.shape[0]
    # the gradient at a small rule is enough to scale the tolerance (the SE's order)
    t0, w0 = spec.nodes(spec.start_nodes)
    grads0 = np.array([[_moments(r, theta, k, link, t0, w0)[1] for r in per] for per in rows])
    se = np.array(
        [np.linalg.norm(factor.T @ (W[q] @ grads0[g])) for q in range(n_q) for g in range(n_grp)]
    )
    report = _choose_nodes(spec, rows, W, link, theta, B, se)
    if not report.met:
        warn_user(
            f"random_effects: the integration error stays above {spec.rel_tol:g} × the "
            f"delta SE with {2 * report.nodes} {report.method} nodes (largest error "
            f"{float(report.error.max()):.3g}); the margins carry that error",
            IntegrationWarning,
        )
    t, omega = (np.zeros(1), np.ones(1)) if report.nodes == 0 else spec.nodes(report.nodes)
    values = np.empty((n_grp, n_set))
    grads = np.empty((n_grp, n_set, p))
    hessians: list[list[np.ndarray | None]] = [[None] * n_set for _ in range(n_grp)]
    mu_draws = np.empty((n_grp, s, n_set))
    lognormal = link.code == LOG
    sig2 = np.exp(2.0 * B[:, k:])
    for g in range(n_grp):
        for j, r in enumerate(rows[g]):
            values[g, j], grads[g, j], hessians[g][j] = _moments(r, theta, k, link, t, omega)
            if s:
                from .integrated import integrated_draws  # numba loads only here

                mu_draws[g, :, j] = r.ratio * integrated_draws(
                    r.X, r.Z2, r.off, r.wn, B[:, :k], sig2, t, omega, link.code,
                    link.power, lognormal,
                )
    estimate = np.empty(n_q * n_grp)
    grad = np.empty((n_q * n_grp, p))
    draws = np.empty((s, n_q * n_grp))
    hess: list[np.ndarray | None] = []
    for q in range(n_q):
        for g in range(n_grp):
            i = q * n_grp + g
            estimate[i] = W[q] @ values[g]
            grad[i] = W[q] @ grads[g]
            draws[:, i] = mu_draws[g] @ W[q]
            h = np.zeros((p, p))
            for jj in np.flatnonzero(W[q]):
                hj = hessians[g][int(jj)]
                if hj is not None:
                    h += W[q, jj] * hj
            hess.append(None if link.is_identity else h @ factor)
    return Evaluated(estimate, grad, hess, draws), report
