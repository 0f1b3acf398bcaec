"""Parametric bootstrap of Gaussian mixed models: simulation, statistics, both refit routes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.formula.api as smf

from simmargins import sleepstudy_data
from simmargins.adapters import adapter_for
from simmargins.resampling import bootstrap as boot
from simmargins.resampling.lmm_stats import group_statistics
from simmargins.resampling.parametric import (
    SimulationModel,
    parametric_problem,
    singular_message,
)
from simmargins.resampling.problem import ROUTE_FAST, ROUTE_STATSMODELS


@pytest.fixture(scope="module")
def sleep_rs():
    df = sleepstudy_data()
    return smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()


@pytest.fixture(scope="module")
def vc_fit():
    """Random intercept per group plus a variance component (class within group)."""
    rng = np.random.default_rng(5)
    n_g, per = 12, 12
    g = np.repeat(np.arange(n_g), per)
    cls = np.tile(np.repeat([0, 1, 2], per // 3), n_g)
    x = rng.normal(size=n_g * per)
    y = (1 + 0.5 * x + rng.normal(0, 1.0, n_g)[g] + rng.normal(0, 0.7, (n_g, 3))[g, cls]
         + rng.normal(0, 1, n_g * per))  # fmt: skip
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g": g, "cls": cls})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm(
            "y ~ x", df, groups="g", re_formula="1", vc_formula={"cls": "0 + C(cls)"}
        ).fit()


def _run(fit, refit, n_boot=10, seed=3, n_jobs=1):
    ad = adapter_for(fit)
    return boot.run_bootstrap(
        ad.refit_problem(None), n_boot, seed, n_jobs, False, 0.05, 0.25, refit=refit,
        sim=ad.simulation_model(),
    )  # fmt: skip


def test_simulated_responses_have_the_fitted_moments(sleep_rs):
    """Mean Xβ̂ and, within a subject, covariance Z Ψ̂ Zᵀ + σ̂² I (closed form)."""
    sim = adapter_for(sleep_rs).simulation_model()
    rng = np.random.default_rng(0)
    S = 4000
    ys = np.stack([sim.simulate(rng) for _ in range(S)])
    rows = np.flatnonzero(sim.codes == 0)
    Z = np.asarray(sleep_rs.model.exog_re)[rows]
    X = np.asarray(sleep_rs.model.exog)[rows]
    cov = Z @ np.asarray(sleep_rs.cov_re) @ Z.T + sleep_rs.scale * np.eye(len(rows))
    mean = X @ np.asarray(sleep_rs.fe_params)
    # MC SE of a mean is sd/√S, of a covariance entry √((Σ_ii Σ_jj + Σ_ij²)/S)
    se_mean = np.sqrt(np.diag(cov) / S)
    assert np.all(np.abs(ys[:, rows].mean(0) - mean) < 4.5 * se_mean)
    d = np.diag(cov)
    se_cov = np.sqrt((np.outer(d, d) + cov**2) / S)
    assert np.all(np.abs(np.cov(ys[:, rows], rowvar=False) - cov) < 4.5 * se_cov)
    # different groups are independent
    other = np.flatnonzero(sim.codes == 1)[0]
    assert abs(np.corrcoef(ys[:, rows[0]], ys[:, other])[0, 1]) < 4.5 / np.sqrt(S)


def test_simulation_includes_variance_components(vc_fit):
    """Two rows of one group and one class share σ̂²_g + σ̂²_class; of another class σ̂²_g."""
    sim = adapter_for(vc_fit).simulation_model()
    assert sim.vcomp.shape == (1,) and len(sim.vc_mats[0]) == 12
    rng = np.random.default_rng(1)
    S = 6000
    ys = np.stack([sim.simulate(rng) for _ in range(S)])
    var_g, var_c = float(np.asarray(vc_fit.cov_re)[0, 0]), float(sim.vcomp[0])
    same = np.cov(ys[:, 0], ys[:, 1])[0, 1]  # rows 0, 1: group 0, class 0
    cross = np.cov(ys[:, 0], ys[:, 4])[0, 1]  # rows 0, 4: group 0, classes 0 and 1
    total = var_g + var_c + vc_fit.scale
    se = total * np.sqrt(2.0 / S)  # MC SE of a covariance, at most √((σ_ii σ_jj + σ_ij²)/S)
    assert abs(same - (var_g + var_c)) < 4.5 * se
    assert abs(cross - var_g) < 4.5 * se


def test_statistics_with_new_responses_equal_a_fresh_pass(sleep_rs):
    ad = adapter_for(sleep_rs)
    problem = ad.refit_problem(None)
    pp = parametric_problem(problem, ad.simulation_model(), ROUTE_FAST)
    y = pp.sim.simulate(np.random.default_rng(2))
    got = pp.stats_for(y)
    codes = problem.clusters
    want = group_statistics(y, problem.exog, problem.row_arrays["exog_re"], codes, 18)
    for a, b in ((got.cross, want.cross), (got.gram, want.gram), (got.n, want.n)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


def test_fast_and_statsmodels_refits_agree_replicate_by_replicate(sleep_rs):
    """The same y* (same child seed) through both routes: the same REML estimates."""
    fast = _run(sleep_rs, "fast")
    slow = _run(sleep_rs, "statsmodels")
    assert (fast.route, slow.route) == (ROUTE_FAST, ROUTE_STATSMODELS)
    assert fast.kind == slow.kind == "parametric"
    assert fast.n_failed == slow.n_failed == 0
    np.testing.assert_allclose(fast.params, slow.params, rtol=1e-6)
    # replicate covariances: lme4's (XᵀV⁻¹X)⁻¹σ² against statsmodels' cov_params() block,
    # which inverts the joint observed Hessian: not the same estimator, so they agree only
    # to ~1e-4 on the correlation scale on this balanced design (0.2–0.9% when unbalanced)
    sd = np.sqrt(np.einsum("bii->bi", slow.cov))
    scaled = (fast.cov - slow.cov) / (sd[:, :, None] * sd[:, None, :])
    assert np.max(np.abs(scaled)) < 1e-3


def test_cov_hat_is_the_dense_gls_covariance(sleep_rs):
    """(XᵀV̂⁻¹X)⁻¹ with V̂ = blockdiag(Z_g Ψ̂ Z_gᵀ + σ̂² I), built densely."""
    fast = _run(sleep_rs, "fast", n_boot=2)
    m = sleep_rs.model
    X, Z = np.asarray(m.exog), np.asarray(m.exog_re)
    V = np.zeros((len(X), len(X)))
    for rows in m.row_indices.values():
        V[np.ix_(rows, rows)] = Z[rows] @ sleep_rs.cov_re @ Z[rows].T + sleep_rs.scale * np.eye(
            len(rows)
        )
    want = np.linalg.inv(X.T @ np.linalg.solve(V, X))
    np.testing.assert_allclose(fast.cov_hat, want, rtol=1e-6)


def test_variance_components_fall_back_to_statsmodels(vc_fit):
    res = _run(vc_fit, "auto", n_boot=6)
    assert res.route == ROUTE_STATSMODELS and "variance components" in res.route_reason
    assert res.params.shape == (6, 2) and np.all(np.isfinite(res.params))
    assert res.cov.shape == (6, 2, 2)
    np.testing.assert_array_equal(res.cov_hat, adapter_for(vc_fit).cov)


def test_same_seed_same_draws_for_any_n_jobs(sleep_rs, monkeypatch):
    monkeypatch.setattr(boot, "_FAST_PARALLEL_MIN_SECONDS", 0.0)  # the rest through joblib
    serial = _run(sleep_rs, "fast", n_boot=12, n_jobs=1)
    parallel = _run(sleep_rs, "fast", n_boot=12, n_jobs=2)
    assert serial.parallel.startswith("in-process")
    assert parallel.parallel.startswith("joblib"), parallel.parallel
    np.testing.assert_array_equal(serial.params, parallel.params)
    np.testing.assert_array_equal(serial.cov, parallel.cov)
    other = _run(sleep_rs, "fast", n_boot=12, seed=4)
    assert not np.allclose(serial.params, other.params)


def test_singular_message():
    codes = np.array([0, 0, 1, 1])
    ok = SimulationModel(np.zeros(4), codes, 2.0, np.ones((4, 1)), np.eye(1))
    assert singular_message(ok) is None
    at_zero = SimulationModel(np.zeros(4), codes, 2.0, np.ones((4, 1)), np.full((1, 1), 1e-9))
    assert "singular" in singular_message(at_zero)
    perfect = np.array([[1.0, 2.0], [2.0, 4.0]])  # correlation +1: rank 1
    z = np.column_stack([np.ones(4), np.arange(4.0)])
    assert "Ψ̂/σ̂²" in singular_message(SimulationModel(np.zeros(4), codes, 1.0, z, perfect))
    vc = SimulationModel(np.zeros(4), codes, 1.0, vc_mats=[[np.ones((2, 1))] * 2],
                         vcomp=np.array([0.0]))  # fmt: skip
    assert "variance component" in singular_message(vc)
