"""Subgroup averages (``by=``), elasticities and the diagnostics, against closed forms."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.numdiff import approx_fprime_cs

from simmargins import Margins, MarginsValueError, all_pairwise, pairwise


def test_predict_by_group_is_the_group_mean_of_fitted_values(ols_frame, ols_fit):
    res = Margins.linear_scale(ols_fit, seed=0).predict(by="g")
    groups = sorted(ols_frame["g"].unique())
    assert res.to_frame()["g"].tolist() == groups
    assert res.labels == [f"overall | g={g}" for g in groups]
    for j, g in enumerate(groups):
        mask = (ols_frame["g"] == g).to_numpy()
        assert res.estimate[j] == pytest.approx(ols_fit.fittedvalues[mask].mean(), rel=1e-14, abs=0)
        X = np.asarray(ols_fit.model.exog)[mask].mean(axis=0)
        V = ols_fit.cov_params().to_numpy()
        assert res.delta_std_err[j] == pytest.approx(np.sqrt(X @ V @ X), rel=3e-14, abs=0)


def test_ame_by_group_follows_the_interaction(ols_frame, ols_fit):
    p = ols_fit.params
    res = Margins.linear_scale(ols_fit, seed=0).dydx(["x", "z"], by="g")
    frame = res.to_frame()
    assert frame[["term", "g"]].to_numpy().tolist() == [
        ["x", "hi"], ["x", "lo"], ["x", "mid"], ["z", "hi"], ["z", "lo"], ["z", "mid"]
    ]  # fmt: skip
    expected_x = {
        "hi": p["x"],
        "lo": p["x"] + p["x:C(g)[T.lo]"],
        "mid": p["x"] + p["x:C(g)[T.mid]"],
    }
    for j, g in enumerate(["hi", "lo", "mid"]):
        assert res.estimate[j] == pytest.approx(expected_x[g], rel=3e-10)
        zbar = ols_frame.loc[ols_frame["g"] == g, "z"].mean()
        assert res.estimate[3 + j] == pytest.approx(p["z"] + 2 * p["I(z ** 2)"] * zbar, rel=1e-9)


def test_contrast_by_group(ols_frame, ols_fit):
    scen, w = pairwise("b", [True, False])
    res = Margins.linear_scale(ols_fit, seed=0).contrasts(scenarios=scen, contrasts=w, by="g")
    np.testing.assert_allclose(res.estimate, ols_fit.params["b[T.True]"], rtol=1e-14)
    assert len(res.labels) == 3


def _closed_form_elasticity(fit, df, kind):
    """eyex/eydx/dyex of x in y ~ x*C(g) + ...: ∂ŷ/∂x per row is β_x + β_{x:g}."""
    names = list(fit.params.index)
    X = np.asarray(fit.model.exog)
    x = df["x"].to_numpy()
    lo = (df["g"] == "lo").to_numpy()
    mid = (df["g"] == "mid").to_numpy()

    def f(beta):
        b = dict(zip(names, beta, strict=True))
        slope = b["x"] + b["x:C(g)[T.lo]"] * lo + b["x:C(g)[T.mid]"] * mid
        yhat = X @ beta
        if kind == "eyex":
            return np.mean(slope * x / yhat)
        if kind == "eydx":
            return np.mean(slope / yhat)
        return np.mean(slope * x)

    return f


@pytest.mark.parametrize("kind", ["eyex", "eydx", "dyex"])
def test_elasticities_match_closed_form_and_numeric_delta(ols_frame, kind):
    import statsmodels.formula.api as smf

    df = ols_frame.assign(x=ols_frame["x"] - ols_frame["x"].min() + 0.5, y=ols_frame["y"] + 10)
    fit = smf.ols("y ~ x * C(g) + z", df).fit()
    f = _closed_form_elasticity(fit, df, kind)
    beta = fit.params.to_numpy()
    g = approx_fprime_cs(beta, lambda b: f(b.real) if np.isrealobj(b) else f(b))
    V = fit.cov_params().to_numpy()
    m = Margins.linear_scale(fit, seed=4, n_sims=4000)
    res = getattr(m, kind)("x")
    assert res.estimate[0] == pytest.approx(f(beta), rel=3e-10)
    assert res.delta_std_err[0] == pytest.approx(np.sqrt(g @ V @ g), rel=3e-10)
    # draws: the elasticity evaluated at each coefficient draw, by brute force
    draws = m.coefficient_draws.to_numpy()
    brute = np.array([f(b) for b in draws[:50]])
    np.testing.assert_allclose(res.draws.to_numpy()[:50, 0], brute, rtol=3e-10)
    if kind == "dyex":
        assert res.kappa[0] == 0.0  # linear in β
    else:
        assert res.kappa[0] > 0.0


def test_elasticity_bad_input(ols_frame, ols_fit):
    m = Margins.linear_scale(ols_fit, seed=0)
    with pytest.raises(
        MarginsValueError,
        match=re.escape("slope='eyex' needs a numeric variable, but 'g' is categorical"),
    ):
        m.eyex("g")
    with pytest.raises(
        MarginsValueError, match=re.escape("'z', which must be positive in every row")
    ):
        m.dyex("z")
    with pytest.raises(MarginsValueError, match="slope: got 'elasticity'"):
        m.dydx("x", slope="elasticity")
    with pytest.raises(MarginsValueError, match="by: 'gg' is not a variable"):
        m.predict(by="gg")


def test_diagnostics_frame_and_interval_mcse(lmm_ri):
    m = Margins.linear_scale(lmm_ri, seed=21, n_sims=4000)
    res = m.predict(atexog={"treated": [0, 1]})
    diag = res.diagnostics()
    assert list(diag.columns) == [
        "label", "kappa", "disagreement", "mc_noise", "asymmetry",
        "ci_lower_mcse", "ci_upper_mcse", "delta_trustworthy",
    ]  # fmt: skip
    # for normal draws the 2.5% quantile's MC SE is sqrt(p(1-p)/S)/φ(z_p)·SD ≈ 0.0675·SD at S=4000
    expected = np.sqrt(0.025 * 0.975 / 4000) / 0.05844 * res.delta_std_err
    np.testing.assert_allclose(diag["ci_lower_mcse"], expected, rtol=0.35)
    assert diag["delta_trustworthy"].all()
    np.testing.assert_allclose(diag["asymmetry"], 1.0, atol=0.15)


def test_mean_and_dict_at_on_the_ratio_route(ols_frame):
    import statsmodels.formula.api as smf

    df = ols_frame.assign(y=ols_frame["y"] + 10)
    fit = smf.ols("y ~ x + z", df).fit()
    p = fit.params
    res = Margins.linear_scale(fit, at="mean", seed=0).eyex("x")
    xbar, zbar = df["x"].mean(), df["z"].mean()
    assert res.estimate[0] == pytest.approx(
        p["x"] * xbar / (p["Intercept"] + p["x"] * xbar + p["z"] * zbar), rel=3e-10
    )
    res = Margins.linear_scale(fit, at={"x": 2.0}, seed=0).eydx("x")
    yhat = p["Intercept"] + p["x"] * 2.0 + p["z"] * df["z"]
    assert res.estimate[0] == pytest.approx(np.mean(p["x"] / yhat), rel=3e-10)


def test_by_skips_groups_without_weight_and_keeps_labels_aligned(ols_frame, ols_fit):
    w = np.where(ols_frame["g"] == "lo", 0.0, 1.0)  # the 'lo' group has no analysis weight
    res = Margins.linear_scale(ols_fit, weights=w, seed=0).predict(by="g")
    assert res.to_frame()["g"].tolist() == ["hi", "mid"]
    for j, g in enumerate(["hi", "mid"]):
        mask = (ols_frame["g"] == g).to_numpy()
        assert res.estimate[j] == pytest.approx(ols_fit.fittedvalues[mask].mean(), rel=1e-14, abs=0)


def test_by_column_with_missing_values_is_refused(ols_frame, ols_fit):
    import statsmodels.formula.api as smf

    df = ols_frame.assign(site=np.where(np.arange(len(ols_frame)) % 7 == 0, None, "s1"))
    fit = smf.ols("y ~ x + z", df).fit()
    with pytest.raises(MarginsValueError, match="by: column 'site' has 43 missing values"):
        Margins.linear_scale(fit, seed=0).predict(by="site")


# -- the one-pass route (one_pass.one_pass) against the setting-by-setting one -------------
def _nonlinear_fits():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(12)
    n = 600
    df = pd.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, n),
            "z": rng.uniform(-1, 1, n),
            "g": rng.choice(["a", "b", "c"], n),
            "s": rng.choice(["u", "v"], n),
        }
    )
    eta = -0.3 + 0.8 * df["x"] - 0.5 * df["z"] + 0.4 * (df["g"] == "b") + 0.3 * df["x"] * df["z"]
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    df["c"] = rng.poisson(np.exp(0.2 + 0.5 * eta))
    formula = " ~ x * z + C(g) + x:C(g) + s + I(z ** 2)"
    logit = smf.logit("y" + formula, df).fit(disp=0)
    poisson = smf.glm("c" + formula, df, family=sm.families.Poisson()).fit()
    return {"logit": logit, "poisson": poisson}


@pytest.mark.parametrize("model", ["logit", "poisson"])
def test_one_pass_route_equals_setting_by_setting(model, monkeypatch):
    """Predict grids, AMEs (numeric and factor) and contrasts with by= groups: estimates,
    delta SEs and draws of the one-pass route (draws and moments from the base design)
    equal those of each setting's own design (margin_draws, scenario_moments) to 1e-12."""
    import simmargins.engine.evaluate as ev

    fit = _nonlinear_fits()[model]
    calls = []
    real = ev.one_pass

    def counted(*a, **k):
        got = real(*a, **k)
        calls.append(got is not None)
        return got

    def verbs(m):
        scen, w = all_pairwise("g", ["a", "b", "c"])
        return [
            m.predict(atexog={"x": [-1.0, 0.0, 1.5], "s": ["u", "v"]}, by="s"),
            m.predict(by=["g", "s"]),
            m.dydx(["x", "z", "g"], by="g"),
            m.dydx(["x", "g"]),
            m.contrasts(scen, w, by="s"),
            m.contrasts(shift={"x": 1.0}, by="g"),
        ]

    monkeypatch.setattr(ev, "one_pass", counted)
    m = Margins(fit, seed=3, n_sims=200)
    fast = verbs(m)
    assert calls and all(calls)  # the one-pass route ran, every time
    monkeypatch.setattr(ev, "one_pass", lambda *a, **k: None)
    slow = verbs(Margins(fit, seed=3, n_sims=200))
    for a, b in zip(fast, slow, strict=True):
        assert a.labels == b.labels
        # a numeric AME is (μ⁺ − μ⁻)/2ε: compare μ⁺ − μ⁻, whose rounding 1/2ε would magnify
        scale = np.ones(len(a.labels))
        if a.attrs["quantity"] == "dydx":
            for i, term in enumerate(a.to_frame()["term"]):
                if term in ("x", "z"):
                    scale[i] = 2.0 * m._cf.fd_step(term)
        for got, want in ((a.estimate, b.estimate), (a.delta_std_err, b.delta_std_err)):
            # atol: a few ulps of μ± (≈ 0.5), which the difference μ⁺ − μ⁻ keeps in absolute
            np.testing.assert_allclose(got * scale, want * scale, rtol=1e-12, atol=1e-15)
        da, db = a.draws.to_numpy() * scale, b.draws.to_numpy() * scale
        assert np.all(np.isfinite(da))
        np.testing.assert_allclose(da, db, rtol=1e-12, atol=1e-14)
