"""Effects at representative values: conditional AMEs (dydx with atexog), covariates at
medians or at per-variable summaries, and emmeans' balanced reference grid, each checked
against a closed form or statsmodels' own predictions on a frame built by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsTypeError, MarginsValueError


@pytest.fixture(scope="module")
def ols_xz(ols_frame):
    return smf.ols("y ~ x * z + C(g)", ols_frame).fit()


@pytest.fixture(scope="module")
def logit_gh():
    rng = np.random.default_rng(8)
    n = 500
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(1.0, 2.0, n),
            "g": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "h": rng.choice(["u", "v"], n, p=[0.7, 0.3]),
        }
    )
    eta = 0.2 + 0.5 * df["x"] + 0.4 * (df["g"] == "b") - 0.3 * df["z"]
    eta += 0.6 * (df["h"] == "v") * (df["g"] == "c")
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return df, smf.logit("y ~ x + C(g) * C(h) + z", df).fit(disp=0)


def test_conditional_ame_in_an_interaction_is_beta_x_plus_beta_xz_z(ols_xz):
    p, V = ols_xz.params, ols_xz.cov_params()
    zs = [-1.0, 0.0, 2.5]
    res = Margins.linear_scale(ols_xz, seed=0).dydx("x", atexog={"z": zs})
    for j, z in enumerate(zs):
        g = pd.Series(0.0, index=p.index)
        g["x"], g["x:z"] = 1.0, z
        assert res.estimate[j] == pytest.approx(p["x"] + p["x:z"] * z, rel=1e-9)
        assert res.delta_std_err[j] == pytest.approx(np.sqrt(g @ V @ g), rel=1e-8)
    frame = res.to_frame()
    assert frame["z"].tolist() == zs
    assert frame["term"].tolist() == ["x"] * 3
    assert res.labels == ["x | z=-1", "x | z=0", "x | z=2.5"]


def test_conditional_effects_on_a_logit_match_hand_derivatives(logit_gh):
    df, fit = logit_gh
    b = fit.params
    m = Margins(fit, seed=0)
    res = m.dydx(["x", "g"], atexog={"z": [0.0, 2.0]})
    assert res.to_frame()["term"].tolist() == ["x", "x", "g", "g", "g", "g"]
    for j, z in enumerate([0.0, 2.0]):
        p = fit.predict(df.assign(z=z)).to_numpy()
        assert res.estimate[j] == pytest.approx(np.mean(b["x"] * p * (1 - p)), rel=1e-7)
        pa = fit.predict(df.assign(z=z, g="a")).mean()
        pb = fit.predict(df.assign(z=z, g="b")).mean()
        assert res.estimate[2 + 2 * j] == pytest.approx(pb - pa, rel=1e-10)
    assert res.labels[2] == "g=b - g=a | z=0"


def test_at_median_sets_every_variable_at_its_median_or_mode(logit_gh):
    df, fit = logit_gh
    m = Margins(fit, seed=0, at="median")
    row = {"x": df["x"].median(), "z": df["z"].median(), "g": "a", "h": "u"}
    assert m.at_values == row
    p = float(fit.predict(pd.DataFrame([row]))[0])
    assert m.predict().estimate[0] == pytest.approx(p, rel=1e-12)
    assert m.dydx("x").estimate[0] == pytest.approx(fit.params["x"] * p * (1 - p), rel=1e-7)


def test_at_dict_summaries_equal_the_values_they_stand_for(logit_gh):
    df, fit = logit_gh
    a = Margins(fit, seed=0, at={"z": "mean", "x": "median", "h": "mode"})
    b = Margins(fit, seed=0, at={"z": df["z"].mean(), "x": df["x"].median(), "h": "u"})
    assert a.at_values == b.at_values
    np.testing.assert_array_equal(a.dydx("g").estimate, b.dydx("g").estimate)
    shown = {"z": float(df["z"].mean()), "x": float(df["x"].median()), "h": "u"}
    assert a.predict().attrs["at"] == repr(shown)


def test_weighted_median_and_mode_follow_the_analysis_weights(logit_gh):
    df, fit = logit_gh
    w = np.where(df["h"] == "v", 10.0, 1.0)
    m = Margins(fit, seed=0, at="median", weights=w)
    assert m.at_values["h"] == "v"  # 150 rows x 10 outweigh 350 rows x 1


def _emmeans_grid(df):
    cells = list(itertools.product(["a", "b", "c"], ["u", "v"]))
    grid = pd.DataFrame(cells, columns=["g", "h"])
    return grid.assign(x=df["x"].mean(), z=df["z"].mean())


def test_balanced_grid_is_emmeans_reference_grid(logit_gh):
    """emmeans' marginal means: the linear predictor averaged over every combination of
    factor levels, each once, with numeric covariates at their means."""
    df, fit = logit_gh
    grid = _emmeans_grid(df)
    eta = fit.predict(grid, which="linear")
    lin = Margins.linear_scale(fit, seed=0, at="balanced")
    assert lin.predict().estimate[0] == pytest.approx(eta.mean(), rel=1e-12)
    emm_g = lin.predict(atexog={"g": ["a", "b", "c"]}).estimate
    expected = [eta[grid["g"] == g].mean() for g in ["a", "b", "c"]]
    np.testing.assert_allclose(emm_g, expected, rtol=1e-12)
    # contrasts of EMMs: level minus reference, averaged over h with equal weight
    np.testing.assert_allclose(
        lin.dydx("g").estimate, [expected[1] - expected[0], expected[2] - expected[0]], rtol=1e-10
    )
    # the response scale averages the probabilities of the cells (not emmeans' back-transform)
    prob = Margins(fit, seed=0, at="balanced").predict(atexog={"h": ["u", "v"]}).estimate
    p = fit.predict(grid)
    np.testing.assert_allclose(prob, [p[grid["h"] == h].mean() for h in "uv"], rtol=1e-12)


def test_balanced_grid_by_a_factor(logit_gh):
    df, fit = logit_gh
    grid = _emmeans_grid(df)
    res = Margins(fit, seed=0, at="balanced").predict(by="h")
    p = fit.predict(grid)
    np.testing.assert_allclose(res.estimate, [p[grid["h"] == h].mean() for h in "uv"], rtol=1e-12)


def test_at_median_includes_the_offset(glm_frame, poisson_glm):
    m = Margins(poisson_glm, seed=0, at="median")
    off = np.median(np.log(glm_frame["t"]))
    assert m.at_values["offset"] == pytest.approx(off, rel=1e-12)
    row = pd.DataFrame([{k: v for k, v in m.at_values.items() if k != "offset"}])
    expected = poisson_glm.predict(row, offset=np.array([off]))[0]
    assert m.predict().estimate[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"at": "medain"}, MarginsValueError, "at: "),
        ({"at": {"z": "avg"}}, MarginsValueError, "at: 'avg' for 'z'"),
        ({"at": {"g": "mean"}}, MarginsValueError, "at: 'mean' .*'g' is categorical"),
        ({"at": {"g": "zz"}}, MarginsValueError, "at: 'zz' is not a level of 'g'"),
        ({"at": 3}, MarginsTypeError, "at: expected"),
    ],
)
def test_bad_at_names_the_argument(logit_gh, kwargs, error, pattern):
    _, fit = logit_gh
    with pytest.raises(error, match=pattern):
        Margins(fit, seed=0, **kwargs)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda m: m.dydx("x", atexog={"nope": [1]}), MarginsValueError, "atexog"),
        (lambda m: m.dydx("x", atexog={"z": ["a"]}), MarginsTypeError, "atexog: 'z' is numeric"),
        (lambda m: m.dydx("x", atexog=[1]), MarginsTypeError, "atexog: expected a dict"),
        (lambda m: m.dydx("x", atexog={}), MarginsValueError, "atexog: give at least"),
        (lambda m: m.dydx("x", slope="eyex", atexog={"z": 1}), MarginsValueError, "atexog: not"),
        (lambda m: m.dydx("g", atexog={"g": ["a"]}), MarginsValueError, "atexog: 'g' is the"),
    ],
)
def test_bad_dydx_atexog_names_the_argument(logit_gh, call, error, pattern):
    _, fit = logit_gh
    with pytest.raises(error, match=pattern):
        call(Margins(fit, seed=0, n_sims=20))
