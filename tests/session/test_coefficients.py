"""Bootstrap kinds in a session: the parametric bootstrap, its checks, warnings and records."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import (
    DeltaMethodWarning,
    Margins,
    MarginsValueError,
    SingularCovarianceWarning,
    load,
    pairwise,
)

N_BOOT = 200


@pytest.fixture(scope="module")
def parametric(lmm_ri):
    m = Margins.linear_scale(
        lmm_ri, method="bootstrap", bootstrap="parametric", n_boot=N_BOOT, seed=7,
        progress=False, interval="studentized",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeltaMethodWarning)
        res = m.contrasts(*pairwise("treated", [1, 0]))
        ame = m.dydx("age")
    return m, res, ame


def test_parametric_draws_spread_like_the_model_based_se(parametric):
    """Under the fitted model β* ≈ N(β̂, (XᵀV̂⁻¹X)⁻¹): the draws' SD is the delta SE up to
    Monte-Carlo error (relative SE 1/√(2(B−1)) = 5%) and the REML/Hessian difference."""
    m, res, ame = parametric
    for r in (res, ame):
        noise = 1.0 / np.sqrt(2 * (r.n_draws - 1))
        assert abs(r.draws_std_err[0] / r.delta_std_err[0] - 1) < 3.5 * noise + 0.01
    assert m.bootstrap_record.route == "sufficient-statistics"


def test_attrs_and_summary_name_the_bootstrap_kind(parametric, lmm_ri):
    _, res, _ = parametric
    assert res.attrs["bootstrap"] == "parametric" and res.attrs["n_boot"] == N_BOOT
    assert res.attrs["interval"] == "studentized"
    text = res.summary()
    assert "parametric (responses simulated from the fitted model)" in text
    assert "studentized (bootstrap-t)" in text
    assert res.inference()["interval"] == "studentized"
    cluster = Margins.linear_scale(lmm_ri, method="bootstrap", n_boot=4, seed=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeltaMethodWarning)
        c = cluster.dydx("age")
    assert c.attrs["bootstrap"] == "cluster" and "boot_std_err" not in c.to_dataset()
    assert "resampling groups" in c.summary()


def test_studentized_interval_by_hand(parametric):
    """θ̂ − SE·quantiles of t* = (θ* − θ̂)/SE*, SE* = √(gᵀV*g) from each replicate's own
    covariance and SE from the original fit's by the same estimator."""
    m, res, _ = parametric
    rec = m.bootstrap_record
    g = np.zeros(len(m.adapter.coef_names))
    g[m.adapter.coef_names.index("treated")] = 1.0
    theta = rec.params @ g
    est = m.adapter.params @ g
    t = (theta - est) / np.sqrt(np.einsum("k,bkm,m->b", g, rec.cov, g))
    se = np.sqrt(g @ rec.cov_hat @ g)
    lo, hi = est - se * np.quantile(t, 0.975), est - se * np.quantile(t, 0.025)
    np.testing.assert_allclose(res.conf_int()[0], [lo, hi], rtol=1e-10)
    np.testing.assert_allclose(res.draws.to_numpy()[:, 0], theta, rtol=1e-10)
    # the percentile interval of the same draws is still available
    np.testing.assert_allclose(
        res.conf_int(interval="percentile")[0], np.quantile(theta, [0.025, 0.975])
    )
    # and the p-value matches the interval (p < 0.05 exactly when it excludes 0)
    assert (res.p_value()[0] < 0.05) == (not lo <= 0 <= hi)


def test_studentized_survives_netcdf(parametric, tmp_path):
    _, res, _ = parametric
    back = load(res.to_netcdf(tmp_path / "r.nc"))
    np.testing.assert_array_equal(back.conf_int(), res.conf_int())


def test_singular_fit_warns():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(np.arange(12), 5)})
    df["y"] = 1 + df["x"] + rng.normal(size=60)  # no group effect: Ψ̂ ≈ 1e-9 σ̂²
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ x", df, groups="g").fit()
    assert fit.cov_re.iloc[0, 0] / fit.scale < 1e-8
    m = Margins(fit, method="bootstrap", bootstrap="parametric", n_boot=8, seed=0)
    with pytest.warns(SingularCovarianceWarning, match="singular"):
        draws = m.coefficient_draws
    assert draws.sizes["draw"] >= 6


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"method": "bootstrap", "bootstrap": "wild"}, "bootstrap: got 'wild'; accepted"),
        ({"method": "simulation", "bootstrap": "parametric"}, "bootstrap: 'parametric' is a"),
        ({"method": "bootstrap", "interval": "studentized"}, "interval: 'studentized' needs"),
    ],
)
def test_bad_bootstrap_arguments(lmm_ri, kwargs, msg):
    with pytest.raises(MarginsValueError, match=re.escape(msg)):
        Margins(lmm_ri, **kwargs)


def test_parametric_refused_for_models_that_are_not_gaussian_mixed(ols_fit, logit_glm):
    for fit in (ols_fit, logit_glm):
        with pytest.raises(MarginsValueError, match="bootstrap: 'parametric' simulates"):
            Margins(fit, method="bootstrap", bootstrap="parametric")


def test_studentized_needs_replicate_ses(lmm_ri):
    res = Margins(lmm_ri, n_sims=50, seed=0).dydx("age")
    with pytest.raises(MarginsValueError, match=re.escape("interval: 'studentized' needs")):
        res.conf_int(interval="studentized")
