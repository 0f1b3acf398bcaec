"""Bayesian mixed GLMs (issue 15, item 1): conditional, cluster-specific and population-
averaged margins, each against a route that does not share its code: statsmodels' own
predictions and matrices, brute-force Monte-Carlo integration over 10⁶ draws of u, and a
GEE fit of the same data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import special
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, PoissonBayesMixedGLM

from simmargins import DeltaMethodWarning, Margins, MarginsValueError, pairwise
from simmargins.adapters import (
    BayesIntegratedAdapter,
    StatsmodelsBayesMixedGLMAdapter,
    adapter_for,
)

MC_DRAWS = 1_000_000


@pytest.fixture(scope="session")
def ri_logit() -> pd.DataFrame:
    """150 clusters of 20 from a random-intercept logit, σ = 1.5."""
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(150), 20), "x": rng.normal(size=3000)})
    u = 1.5 * rng.normal(size=150)
    p = special.expit(-0.5 + 1.0 * d["x"] + u[d["g"]])
    d["y"] = (rng.uniform(size=3000) < p).astype(float)
    return d


def _seeded(fit_method, **kwargs):
    """A fit whose random start is fixed: statsmodels 0.14 draws it from numpy's global
    RNG, 0.15 from ``rng=`` (fresh entropy when not given)."""
    np.random.seed(0)  # noqa: NPY002  (0.14's own start uses the legacy global RNG)
    if "rng" in fit_method.__code__.co_varnames:
        kwargs["rng"] = 0
    return fit_method(**kwargs)


@pytest.fixture(scope="session")
def logit_vb(ri_logit):
    vb = BinomialBayesMixedGLM.from_formula("y ~ x", {"g": "0 + C(g)"}, ri_logit)
    return _seeded(vb.fit_vb)


@pytest.fixture(scope="session")
def logit_map(ri_logit):
    # statsmodels' default BFGS runs the variance to 0 on these data; Newton-CG converges
    model = BinomialBayesMixedGLM.from_formula("y ~ x", {"g": "0 + C(g)"}, ri_logit)
    return _seeded(model.fit_map, method="Newton-CG")


@pytest.fixture(scope="session")
def poisson_vb():
    """60 clusters of 10, a random intercept and a random slope of w, a two-level factor."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame(
        {"g": np.repeat(np.arange(60), 10), "x": rng.normal(size=600), "w": rng.normal(size=600)}
    )
    d["t"] = rng.integers(0, 2, 600)
    u, b = 0.6 * rng.normal(size=60), 0.4 * rng.normal(size=60)
    eta = 0.3 + 0.4 * d["x"] + 0.5 * d["t"] + u[d["g"]] + b[d["g"]] * d["w"]
    d["c"] = rng.poisson(np.exp(eta))
    vc = {"g": "0 + C(g)", "gw": "0 + C(g):w"}
    model = PoissonBayesMixedGLM.from_formula("c ~ x + C(t)", vc, d)
    return _seeded(model.fit_map, method="Newton-CG"), d


def _mc_rows(rows_eta, sd, fn, seed=0):
    """Σᵢ E[fn(ηᵢ + sᵢ u)] / N with MC_DRAWS draws of u spread over the rows, and its MC SE."""
    rng = np.random.default_rng(seed)
    n = rows_eta.shape[0]
    m = MC_DRAWS // n
    vals = fn(rows_eta[:, None] + sd[:, None] * rng.standard_normal((n, m)))
    means, var = vals.mean(axis=1), vals.var(axis=1, ddof=1)
    return float(means.mean()), float(np.sqrt(var.sum() / m) / n)


# -- the adapter ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["logit_vb", "logit_map"])
def test_adapter_takes_the_posterior_approximation(which, request):
    fit = request.getfixturevalue(which)
    ad = adapter_for(fit)
    assert isinstance(ad, StatsmodelsBayesMixedGLMAdapter)
    assert ad.fit_kind == which[-3:].lstrip("_")
    assert ad.coef_names == ("Intercept", "x")
    np.testing.assert_array_equal(ad.params, fit.fe_mean)
    cov = fit.cov_params()
    if which == "logit_vb":  # variational Bayes: variances only
        full = np.diag(cov.to_numpy())
        names = list(cov.index)
    else:
        full, names = cov.to_numpy(), list(cov.index)
    pos = [names.index(n) for n in ("Intercept", "x", "g")]
    integ = BayesIntegratedAdapter(ad)
    assert integ.coef_names == ("Intercept", "x", "g")
    np.testing.assert_array_equal(integ.params, np.r_[fit.fe_mean, fit.vcp_mean])
    block = full[np.ix_(pos, pos)]  # MAP's numerical inverse Hessian is symmetrised
    np.testing.assert_allclose(integ.cov, (block + block.T) / 2, rtol=1e-15)
    assert [(c.group, c.slope) for c in ad.components] == [("g", None)]


def test_random_slope_design_matches_statsmodels_exog_vc(poisson_vb):
    fit, _ = poisson_vb
    ad = adapter_for(fit)
    assert [(c.group, c.slope) for c in ad.components] == [("g", None), ("g", "w")]
    vc2 = fit.model.exog_vc2
    Z2 = np.column_stack(
        [np.asarray(vc2[:, fit.model.ident == c].sum(axis=1)).ravel() for c in range(2)]
    )
    np.testing.assert_allclose(ad.squared_z(ad.data), Z2, rtol=1e-14)


# -- conditional and cluster-specific margins ----------------------------------------------------
def test_zero_is_statsmodels_fixed_effects_prediction(logit_vb):
    res = Margins(logit_vb, random_effects="zero", seed=0).predict()
    # statsmodels' predict() uses the fixed effects only: the prediction at u = 0
    assert abs(res.estimate[0] - logit_vb.predict().mean()) < 1e-13
    assert res.attrs["random_effects"] == "zero"


def test_blup_uses_each_clusters_posterior_mean(logit_map):
    model = logit_map.model
    eta = model.exog @ logit_map.fe_mean + model.exog_vc @ logit_map.vc_mean
    m = Margins(logit_map, random_effects="blup", seed=0)
    res = m.predict()
    assert abs(res.estimate[0] - special.expit(eta).mean()) < 1e-13
    with pytest.warns(DeltaMethodWarning):  # single clusters near 0 or 1: κ is large
        by = m.predict(by="g")
    want = pd.Series(special.expit(eta)).groupby(np.asarray(m.adapter.data["g"])).mean()
    np.testing.assert_allclose(by.estimate, want.to_numpy(), rtol=1e-12)


# -- population-averaged margins -------------------------------------------------------------
def test_integrate_is_the_default_and_matches_monte_carlo(logit_vb):
    m = Margins(logit_vb, seed=0)
    assert m.random_effects == "integrate"
    pred, ame = m.predict(), m.dydx("x")
    X = logit_vb.model.exog
    eta = X @ logit_vb.fe_mean
    sd = np.full(eta.shape, np.exp(logit_vb.vcp_mean[0]))
    mc, mc_se = _mc_rows(eta, sd, special.expit)
    assert abs(pred.estimate[0] - mc) < 4 * mc_se
    bx = logit_vb.fe_mean[1]
    mc, mc_se = _mc_rows(eta, sd, lambda v: bx * special.expit(v) * (1 - special.expit(v)), 1)
    assert abs(ame.estimate[0] - mc) < 4 * mc_se
    for res in (pred, ame):
        attrs = res.attrs
        assert attrs["random_effects"] == "integrate"
        assert attrs["integration"] == "gauss-hermite"
        # the estimated integration error is reported and below 1/1000 of the SE
        assert 0 < attrs["integration_error"] <= 1e-3 * res.delta_std_err.min()
        assert "Random effects: integrate" in res.summary()


def test_poisson_integrated_contrast_matches_monte_carlo(poisson_vb):
    fit, d = poisson_vb
    scen, w = pairwise("t", [1, 0])
    res = Margins(fit, seed=0).contrasts(scenarios=scen, contrasts=w)
    assert res.attrs["integration"] == "closed form"
    sig = np.exp(fit.vcp_mean)
    sd = np.sqrt(sig[0] ** 2 + d["w"].to_numpy() ** 2 * sig[1] ** 2)
    base = fit.fe_mean[0] + fit.fe_mean[2] * d["x"].to_numpy()
    # common random numbers: the same draws of u for both levels
    one, se1 = _mc_rows(base + fit.fe_mean[1], sd, np.exp, 2)
    zero, se0 = _mc_rows(base, sd, np.exp, 2)
    # with the same u, each draw at t=1 is exp(β_t) times its draw at t=0: the two MC
    # errors are perfectly correlated, so the difference's MC SE is |se1 − se0|
    diff_se = abs(se1 - se0)
    assert abs(res.estimate[0] - (one - zero)) < 4 * max(diff_se, 1e-3 * se1)


def test_population_averaged_ame_agrees_with_gee(ri_logit, logit_vb, logit_map):
    """Both estimate the population-averaged slope; the conditional AME (u = 0) does not."""
    gee = smf.gee(
        "y ~ x", groups="g", data=ri_logit, family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    ref = Margins(gee, method="delta").dydx("x")
    se = ref.std_err[0]
    for fit in (logit_vb, logit_map):
        pa = Margins(fit, method="delta").dydx("x")
        cond = Margins(fit, method="delta", random_effects="zero").dydx("x")
        assert abs(pa.estimate[0] - ref.estimate[0]) < 2 * se
        assert abs(cond.estimate[0] - ref.estimate[0]) > 3 * se


# -- bad input -------------------------------------------------------------------------------
def test_bad_random_effects_arguments(logit_vb, ri_logit):
    with pytest.raises(MarginsValueError, match=re.escape("'integrate', 'zero', 'blup'")):
        Margins(logit_vb, random_effects="new")
    with pytest.raises(MarginsValueError, match="method: bootstrap refits"):
        Margins(logit_vb, method="bootstrap")
    glm = smf.glm("y ~ x", ri_logit, family=sm.families.Binomial()).fit()
    with pytest.raises(MarginsValueError, match=r"'integrate' is for mixed models .* a GLM"):
        Margins(glm, random_effects="integrate")
    m = Margins(logit_vb, seed=0, n_sims=10)
    with pytest.raises(MarginsValueError, match="slope: 'eyex' is not available"):
        m.dydx("x", slope="eyex")
    blup = Margins(logit_vb, random_effects="blup", n_sims=10)
    new = pd.DataFrame({"x": [0.0], "g": [999]})
    with pytest.raises(MarginsValueError, match="groups the fit never saw: 999"):
        blup.predict(newdata=new)
    with pytest.raises(MarginsValueError, match="rel_tol"):
        BayesIntegratedAdapter(adapter_for(logit_vb), rel_tol=2.0)
