"""Parametric bootstrap of a Gaussian linear mixed model: responses simulated from the fit.

Replicate b draws new responses from the fitted model,

    y* = X β̂ + Z u* + e*,    u*_g ~ N(0, Ψ̂) per group,    e* ~ N(0, σ̂² I)

(variance components add their own N(0, σ̂²_k) coefficients per group), from
``SeedSequence(seed).spawn(B)[b]`` — u*, then the variance components, then e*, in that
order — and refits the same specification (REML/ML as fitted) to them, as lme4's
``bootMer`` does. The design never changes, so the fast route keeps every per-group cross
product of ``[Z X]`` and recomputes only those with y* (``Z_gᵀy*``, ``X_gᵀy*``,
``y*ᵀy*``): one pass over the rows per replicate, then the exact sufficient-statistics
refit of :mod:`.lmm_fast`. Models the fast engine does not cover (variance components,
fit options it does not honour) refit through statsmodels, with the same y*.

Each replicate also records its fixed-effects covariance, (XᵀV̂*⁻¹X)⁻¹σ̂*² on the fast
route (lme4's convention) and ``cov_params()``'s block on the statsmodels route, beside
the original fit's by the same estimator (:attr:`ParametricProblem.cov_hat`), for the
studentised (bootstrap-t) interval.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .lmm_criterion import theta_from_cov, unpack
from .lmm_fast import fit_replicate
from .lmm_stats import GroupStatistics, ReplicateStats, group_pass_numba, group_statistics
from .problem import ROUTE_FAST, RefitProblem, Replicate, fit_chain, is_numerical_failure

#: a variance parameter counts as zero below this share of the residual variance: a
#: relative SD below 1e-4, the tolerance of lme4's ``isSingular``
SINGULAR_TOL = 1e-8


@dataclass
class SimulationModel:
    """The fitted model that replicates simulate from (absolute variances)."""

    mean: np.ndarray  # (N,) X β̂
    codes: np.ndarray  # (N,) group of each row, 0..G-1 (statsmodels' group_labels order)
    scale: float  # σ̂²
    exog_re: np.ndarray | None = None  # (N, q)
    cov_re: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (q, q) Ψ̂
    vc_mats: list[list[np.ndarray]] = field(default_factory=list)  # [k][g]: (n_g, m_kg)
    vcomp: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_vc,) σ̂²_k
    cov_fe: np.ndarray | None = None  # the fit's cov_params() fixed-effects block

    def __post_init__(self) -> None:
        n_groups = int(self.codes.max()) + 1 if self.codes.size else 0
        self.n_groups = n_groups
        self._rows = [np.flatnonzero(self.codes == g) for g in range(n_groups)]
        vals, vecs = np.linalg.eigh((self.cov_re + self.cov_re.T) / 2.0)
        self._root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # root·rootᵀ = Ψ̂ (PSD part)

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of y* (u*, then the variance components, then e*, from ``rng``).

        Examples
        --------
        >>> sim = SimulationModel(np.zeros(4), np.array([0, 0, 1, 1]), 1.0,
        ...                       np.ones((4, 1)), np.eye(1))
        >>> sim.simulate(np.random.default_rng(0)).shape
        (4,)
        """
        y = np.array(self.mean, dtype=np.float64, copy=True)
        if self.exog_re is not None and self.cov_re.size:
            u = rng.standard_normal((self.n_groups, self.cov_re.shape[0])) @ self._root.T
            y += np.einsum("ij,ij->i", self.exog_re, u[self.codes])
        for k, mats in enumerate(self.vc_mats):
            sd = float(np.sqrt(max(float(self.vcomp[k]), 0.0)))
            for g, mat in enumerate(mats):
                y[self._rows[g]] += np.asarray(mat) @ (sd * rng.standard_normal(mat.shape[1]))
        y += np.sqrt(self.scale) * rng.standard_normal(y.size)
        return y


def singular_message(sim: SimulationModel) -> str | None:
    """The warning for a fit whose random-effects covariance is singular, or None.

    Singular: Ψ̂/σ̂² has an eigenvalue below :data:`SINGULAR_TOL` (a variance at zero, or a
    correlation at ±1: Ψ̂ not positive definite), or a variance component below it.

    Examples
    --------
    >>> sim = SimulationModel(np.zeros(2), np.array([0, 1]), 1.0, np.ones((2, 1)),
    ...                       np.zeros((1, 1)))
    >>> print(singular_message(sim))  # doctest: +ELLIPSIS
    bootstrap: the fitted random-effects covariance is singular (smallest eigenvalue of...
    """
    what = []
    if sim.cov_re.size:
        rel = np.linalg.eigvalsh((sim.cov_re + sim.cov_re.T) / 2.0) / sim.scale
        if rel[0] < SINGULAR_TOL:
            what.append(f"smallest eigenvalue of Ψ̂/σ̂² {rel[0]:.3g}")
    small = [k for k, v in enumerate(sim.vcomp) if v / sim.scale < SINGULAR_TOL]
    if small:
        what.append(f"variance component(s) {small} at {sim.vcomp[small].tolist()}")
    if not what:
        return None
    return (
        "bootstrap: the fitted random-effects covariance is singular ("
        + "; ".join(what)
        + f", below {SINGULAR_TOL:g} of the residual variance): the parametric bootstrap "
        "simulates from a model in which that variation is absent, so its intervals ignore "
        "it and may undercover; consider simplifying the random effects, or compare with "
        "the cluster bootstrap (bootstrap='cluster')"
    )


@dataclass
class ParametricProblem:
    """What a worker needs for parametric replicates, on either refit route."""

    refit: RefitProblem
    sim: SimulationModel
    route: str  # ROUTE_FAST or ROUTE_STATSMODELS
    stats: GroupStatistics | None = None  # the fast route's group statistics of [Z X y]
    theta0: np.ndarray | None = None  # the fast route's warm start
    reml: bool = True
    fail_hook: Callable[[int], None] | None = None
    _order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    _starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    _za: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [Z X] sorted by group

    def __post_init__(self) -> None:
        if self.stats is not None:
            codes = self.sim.codes
            self._order = np.argsort(codes, kind="stable")
            self._starts = np.searchsorted(codes[self._order], np.arange(self.stats.n_groups))
            z = self.refit.row_arrays["exog_re"]
            self._za = np.column_stack([z, self.refit.exog])[self._order]

    def warm_up(self) -> None:
        """Load (or compile) the numba kernel, so that timing a replicate times the refit."""
        if self.stats is not None and self.theta0 is not None:
            group_pass_numba(unpack(self.theta0, self.stats.q), self.stats.cross[:1], np.ones(1))

    def stats_for(self, y: np.ndarray) -> GroupStatistics:
        """The group statistics with responses ``y``: the [Z X] cross products kept, those
        with y recomputed in one pass over the rows (sorted by group once)."""
        assert self.stats is not None
        st = self.stats
        q, p = st.q, st.p
        ys = y[self._order]
        zay = np.add.reduceat(self._za * ys[:, None], self._starts, axis=0)  # (G, q+p)
        yy = np.add.reduceat(ys * ys, self._starts)
        cross = st.cross.copy()
        cross[:, :, -1] = zay[:, :q]
        k = p + 1
        gram = st.gram.reshape(-1, k, k).copy()
        gram[:, :p, p] = gram[:, p, :p] = zay[:, q:]
        gram[:, p, p] = yy
        return GroupStatistics(st.n, cross, gram.reshape(-1, k * k), q, p)

    def fast_fit(self, y: np.ndarray) -> tuple[Any, np.ndarray | None]:
        """The fast refit to responses ``y`` and its fixed-effects covariance."""
        assert self.stats is not None and self.theta0 is not None
        st = self.stats_for(y)
        rep = ReplicateStats.from_multiplicities(st, np.ones(st.n_groups, dtype=np.intp))
        fit = fit_replicate(rep, st.q, st.p, self.reml, self.theta0)
        cov = fe_cov(fit.theta, rep, st.q, st.p, self.reml) if fit.converged else None
        return fit, cov

    @property
    def cov_hat(self) -> np.ndarray | None:
        """The original fit's fixed-effects covariance by the route's own estimator."""
        if self.route != ROUTE_FAST:
            return self.sim.cov_fe
        assert self.stats is not None
        rep = ReplicateStats.from_multiplicities(
            self.stats, np.ones(self.stats.n_groups, dtype=np.intp)
        )
        theta = theta_from_cov(self.sim.cov_re / self.sim.scale)
        return fe_cov(theta, rep, self.stats.q, self.stats.p, self.reml)


def fe_cov(theta: np.ndarray, rep: ReplicateStats, q: int, p: int, reml: bool = True) -> np.ndarray:
    """σ̂²(XᵀṼ⁻¹X)⁻¹ at θ (Ṽ = I + ZΨZᵀ, σ̂² profiled by REML or ML): lme4's ``vcov``.

    From one group pass: G = [X y]ᵀṼ⁻¹[X y] (the gram minus the Woodbury correction),
    P = G_XX, β̂ = P⁻¹G_Xy and σ̂² = (G_yy − G_yXβ̂)/ν, ν = n − p (REML) or n (ML).
    """
    _, corr, _, _ = group_pass_numba(unpack(theta, q), rep.cross, rep.w)
    G = rep.gram - corr
    P = G[:p, :p]
    P_inv = np.linalg.inv(P)
    beta = P_inv @ G[:p, p]
    scale = float(G[p, p] - G[:p, p] @ beta) / (rep.n - p if reml else rep.n)
    cov = scale * P_inv
    return (cov + cov.T) / 2.0


def parametric_problem(
    problem: RefitProblem, sim: SimulationModel, route: str
) -> ParametricProblem:
    """The parametric replicates' problem on ``route`` (group statistics for the fast one)."""
    reml = bool(problem.fit_kwargs.get("reml", True))
    if route != ROUTE_FAST:
        return ParametricProblem(problem, sim, route, reml=reml, fail_hook=problem.fail_hook)
    codes = np.asarray(problem.clusters, dtype=np.intp)
    stats = group_statistics(
        problem.endog, problem.exog, problem.row_arrays["exog_re"], codes, int(codes.max()) + 1
    )
    start = problem.start_params
    if start is not None and getattr(start, "cov_re", None) is not None:
        theta0 = theta_from_cov(start.cov_re)
    else:  # statsmodels' cold start: Ψ = I
        theta0 = theta_from_cov(np.eye(stats.q))
    return ParametricProblem(problem, sim, route, stats, theta0, reml, problem.fail_hook)


def parametric_refit_once(
    pp: ParametricProblem, b: int, child: np.random.SeedSequence
) -> Replicate:
    """Replicate ``b``: simulate y* from the fit with ``child``'s generator and refit it
    (fast route or statsmodels); numerical failures are returned, never raised."""
    rng = np.random.default_rng(child)
    seed_value = int(child.generate_state(1)[0])
    try:
        if pp.fail_hook is not None:
            pp.fail_hook(b)
        y = pp.sim.simulate(rng)
        if pp.route == ROUTE_FAST:
            fit, cov = pp.fast_fit(y)
            if fit.converged and np.all(np.isfinite(fit.fe_params)):
                name = f"{ROUTE_FAST}:{fit.optimizer}"
                return Replicate(b, fit.fe_params, True, name, seed_value, llf=fit.llf, cov=cov)
            return Replicate(b, None, False, "", seed_value, fit.message or "did not converge")
        prob = pp.refit
        kwargs = dict(prob.init_kwargs)
        kwargs.update(prob.row_arrays)
        kwargs["groups"] = pp.sim.codes
        if prob.vc is not None:
            kwargs["exog_vc"] = copy.deepcopy(prob.vc)
        model = prob.model_cls(y, prob.exog, **kwargs)
        return fit_chain(prob, model, b, seed_value, with_cov=True)
    except Exception as exc:
        if not is_numerical_failure(exc):
            exc.add_note(f"raised in parametric bootstrap replicate {b} (seed {seed_value})")
            raise
        return Replicate(b, None, False, "", seed_value, f"{type(exc).__name__}: {exc}")
