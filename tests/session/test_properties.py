"""Invariants that must hold for any data (hypothesis property tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simmargins import Margins, all_pairwise, pairwise

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw):
    """A small regression data set: numeric x, z, a 3-level factor g, outcome y."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(30, 120))
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(draw(st.floats(-5, 5)), draw(st.floats(0.1, 10)), n),
            "z": rng.normal(size=n),
            "g": np.tile(["a", "b", "c"], n // 3 + 1)[:n],
        }
    )
    b = draw(st.lists(st.floats(-3, 3), min_size=3, max_size=3))
    df["y"] = b[0] * df["x"] + b[1] * df["z"] ** 2 + b[2] * (df["g"] == "b") + rng.normal(size=n)
    return df


FORMULA = "y ~ x + z + I(z**2) + C(g) + x:z"


@SETTINGS
@given(frames(), st.integers(0, 1000))
def test_swapping_a_contrast_flips_its_sign(df, seed):
    m = Margins.linear_scale(smf.ols(FORMULA, df).fit(), seed=seed, n_sims=50)
    a = m.contrasts(*pairwise("g", ["a", "c"]))
    b = m.contrasts(*pairwise("g", ["c", "a"]))
    np.testing.assert_allclose(a.estimate, -b.estimate, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.draws.to_numpy(), -b.draws.to_numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.delta_std_err, b.delta_std_err, rtol=1e-12)


@SETTINGS
@given(frames(), st.randoms(use_true_random=False))
def test_permuting_rows_changes_nothing(df, rnd):
    order = list(range(len(df)))
    rnd.shuffle(order)
    m1 = Margins.linear_scale(smf.ols(FORMULA, df).fit(), seed=1, n_sims=20)
    m2 = Margins.linear_scale(smf.ols(FORMULA, df.iloc[order]).fit(), seed=1, n_sims=20)
    for call in (lambda m: m.dydx(["x", "z", "g"]), lambda m: m.predict(atexog={"g": ["a", "b"]})):
        r1, r2 = call(m1), call(m2)
        np.testing.assert_allclose(r1.estimate, r2.estimate, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(r1.delta_std_err, r2.delta_std_err, rtol=1e-7)


@SETTINGS
@given(frames(), st.floats(0.01, 100).filter(lambda c: abs(c - 1) > 1e-3))
def test_rescaling_a_covariate_rescales_its_ame(df, c):
    r1 = Margins.linear_scale(smf.ols(FORMULA, df).fit(), seed=0, n_sims=20).dydx("x")
    df2 = df.assign(x=df["x"] * c)
    r2 = Margins.linear_scale(smf.ols(FORMULA, df2).fit(), seed=0, n_sims=20).dydx("x")
    np.testing.assert_allclose(r2.estimate, r1.estimate / c, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(r2.delta_std_err, r1.delta_std_err / c, rtol=1e-6)


@SETTINGS
@given(frames(), st.floats(-1e3, 1e3))
def test_adding_a_constant_to_the_outcome_shifts_margins(df, k):
    r1 = Margins.linear_scale(smf.ols(FORMULA, df).fit(), seed=0, n_sims=20)
    r2 = Margins.linear_scale(smf.ols(FORMULA, df.assign(y=df["y"] + k)).fit(), seed=0, n_sims=20)
    atexog = {"x": [-1.0, 2.0], "g": ["b"]}
    p1, p2 = r1.predict(atexog=atexog), r2.predict(atexog=atexog)
    np.testing.assert_allclose(p2.estimate, p1.estimate + k, rtol=1e-8, atol=1e-7)
    np.testing.assert_allclose(p2.delta_std_err, p1.delta_std_err, rtol=1e-6)
    # AMEs do not move at all
    np.testing.assert_allclose(r2.dydx("x").estimate, r1.dydx("x").estimate, rtol=1e-6, atol=1e-8)


@SETTINGS
@given(frames(), st.floats(-3, 3))
def test_linear_delta_se_is_sqrt_gvg_and_float64(df, xval):
    fit = smf.ols(FORMULA, df).fit()
    res = Margins.linear_scale(fit, at={"x": xval}, seed=0, n_sims=20).predict(
        atexog={"g": ["a", "b", "c"]}
    )
    V = fit.cov_params().to_numpy()
    for j, g in enumerate("abc"):
        cf = df.assign(x=xval, g=g)
        # g = mean design row, here rebuilt by hand from the formula's terms
        X = np.column_stack(
            [
                np.ones(len(cf)),
                cf["g"] == "b",
                cf["g"] == "c",
                cf["x"],
                cf["z"],
                cf["z"] ** 2,
                cf["x"] * cf["z"],
            ]
        ).astype(float)
        names = list(fit.params.index)
        assert names == ["Intercept", "C(g)[T.b]", "C(g)[T.c]", "x", "z", "I(z ** 2)", "x:z"]
        gbar = X.mean(axis=0)
        assert np.isclose(res.delta_std_err[j], np.sqrt(gbar @ V @ gbar), rtol=1e-10)
    for arr in (res.estimate, res.delta_std_err, res.draws.to_numpy(), res.kappa):
        assert arr.dtype == np.float64


@SETTINGS
@given(frames(), st.integers(0, 2**31))
def test_same_seed_same_draws(df, seed):
    fit = smf.ols(FORMULA, df).fit()
    a = Margins.linear_scale(fit, seed=seed, n_sims=30).contrasts(*all_pairwise("g", list("abc")))
    b = Margins.linear_scale(fit, seed=seed, n_sims=30).contrasts(*all_pairwise("g", list("abc")))
    np.testing.assert_array_equal(a.draws.to_numpy(), b.draws.to_numpy())
