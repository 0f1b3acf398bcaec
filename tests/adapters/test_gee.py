"""GEE: population-averaged margins with the covariance the fit was made with, checked
against statsmodels' own ``get_margeff`` and ``predict`` (issue 15, item 2)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.genmod.families import links

from simmargins import Margins
from simmargins.adapters import StatsmodelsGEEAdapter


@pytest.fixture(scope="module")
def clustered() -> pd.DataFrame:
    """40 clusters of 10 with a shared random intercept: binary, count and positive outcomes."""
    rng = np.random.default_rng(0)
    n = 400
    d = pd.DataFrame(
        {
            "g": np.repeat(np.arange(40), 10),
            "x": rng.normal(size=n),
            "k": rng.choice(["a", "b", "c"], n),
            "t": rng.uniform(1, 2, n),
        }
    )
    u = rng.normal(size=40)[d["g"]]
    eta = 0.2 + 0.5 * d["x"] + 0.3 * (d["k"] == "b") + u
    d["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    d["c"] = rng.poisson(d["t"] * np.exp(0.1 + 0.3 * d["x"] + 0.5 * u))
    d["z"] = rng.gamma(2.0, np.exp(0.2 + 0.1 * d["x"] + 0.2 * u) / 2.0)
    return d


def _gee(formula, d, family, cov_struct=None, cov_type="robust", **kw):
    model = smf.gee(formula, groups="g", data=d, family=family,
                    cov_struct=cov_struct or sm.cov_struct.Exchangeable(), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(cov_type=cov_type)


CASES = [
    ("y ~ x + C(k)", sm.families.Binomial(), "robust"),
    ("y ~ x + C(k)", sm.families.Binomial(links.Probit()), "naive"),
    ("y ~ x + C(k)", sm.families.Binomial(), "bias_reduced"),
    ("c ~ x + C(k)", sm.families.Poisson(), "robust"),
    ("z ~ x", sm.families.Gamma(links.Log()), "robust"),
]


@pytest.mark.parametrize(("formula", "family", "cov_type"), CASES,
                         ids=["logit-robust", "probit-naive", "logit-bias-reduced",
                              "poisson", "gamma-log"])
def test_ame_and_se_match_get_margeff_with_the_fits_covariance(clustered, formula, family,
                                                               cov_type):
    fit = _gee(formula, clustered, family, cov_type=cov_type)
    m = Margins(fit, method="delta", seed=0)
    assert isinstance(m.adapter, StatsmodelsGEEAdapter)
    assert m.adapter.covariance == cov_type
    np.testing.assert_allclose(m.adapter.cov, np.asarray(fit.cov_params()), rtol=1e-14)
    res = m.dydx("x")
    mfx = fit.get_margeff()
    j = [n for n in fit.model.exog_names if n != "Intercept"].index("x")
    # measured agreement: AME ≤ 6.1e-11, SE ≤ 3.6e-11, mean ≤ 2.2e-16 relative
    assert res.estimate[0] == pytest.approx(mfx.margeff[j], rel=1e-9, abs=0)
    assert res.delta_std_err[0] == pytest.approx(mfx.margeff_se[j], rel=3e-10, abs=0)
    assert m.predict().estimate[0] == pytest.approx(float(np.mean(fit.predict())), rel=3e-15)


def test_exposure_and_array_interface(clustered):
    d = clustered
    fit = _gee("c ~ x", d, sm.families.Poisson(), exposure=d["t"])
    m = Margins(fit, method="delta", seed=0)
    assert m.adapter.offset_keys == ("exposure",)
    # the average count at the rows' own exposures, and the rate per unit exposure
    assert m.predict().estimate[0] == pytest.approx(float(np.mean(fit.predict())), rel=1e-13)
    rate = m.predict(atexog={"exposure": 1.0}).estimate[0]
    b = fit.params
    assert rate == pytest.approx(float(np.mean(np.exp(b["Intercept"] + b["x"] * d["x"]))),
                                 rel=1e-13)
    X = sm.add_constant(d[["x"]])
    arr = sm.GEE(d["y"], X, groups=d["g"], family=sm.families.Binomial(),
                 cov_struct=sm.cov_struct.Exchangeable()).fit()
    ma = Margins(arr, training_data=d, method="delta", seed=0)
    assert isinstance(ma.adapter, StatsmodelsGEEAdapter)
    assert ma.dydx("x").estimate[0] == pytest.approx(arr.get_margeff().margeff[0], rel=3e-9)


def test_cluster_bootstrap_by_group_is_reproducible_and_relabels(clustered):
    fit = _gee("y ~ x", clustered, sm.families.Binomial())
    serial = Margins(fit, method="bootstrap", n_boot=30, seed=4, n_jobs=1, progress=False)
    res = serial.dydx("x")
    parallel = Margins(fit, method="bootstrap", n_boot=30, seed=4, n_jobs=2, progress=False)
    res2 = parallel.dydx("x")
    np.testing.assert_array_equal(res.draws.to_numpy(), res2.draws.to_numpy())
    assert res.attrs["n_failed"] == 0 and res.attrs["cluster"] == "groups"
    assert "joblib" in res2.attrs["refit_parallel"]
    # resampling whole groups: the bootstrap SE tracks the robust (cluster) SE, not the
    # naive one that ignores the clustering (30 replicates: SE relative error ~13%)
    naive = _gee("y ~ x", clustered, sm.families.Binomial(), cov_type="naive")
    robust_se = Margins(fit, method="delta", seed=0).dydx("x").delta_std_err[0]
    naive_se = Margins(naive, method="delta", seed=0).dydx("x").delta_std_err[0]
    assert abs(res.draws_std_err[0] / robust_se - 1) < 3 * 0.13
    assert robust_se != pytest.approx(naive_se, rel=0.01)


def test_refit_problem_relabels_groups_and_copies_the_working_correlation(clustered):
    fit = _gee("y ~ x", clustered, sm.families.Binomial())
    problem = StatsmodelsGEEAdapter(fit).refit_problem(None)
    assert problem.relabel == "groups" and problem.fresh == ("cov_struct",)
    assert int(problem.clusters.max()) + 1 == 40
    assert problem.init_kwargs["cov_struct"] is not fit.model.cov_struct
    # groups are codes by first appearance, whatever the labels are
    np.testing.assert_array_equal(problem.clusters, np.repeat(np.arange(40), 10))
