"""Hypotheses on results (issue 13, item 1): Rθ = r by both routes, joint Wald tests,
equivalence (TOST), and results of one session combined with their covariance.

Independent routes: in a linear model the AMEs of linearly entering variables are their
coefficients, so statsmodels' ``t_test`` / ``wald_test`` on ``cov_params()`` are the truth
for the delta route; the draws' joint test is checked against the χ² within Monte-Carlo
error; the TOST's size in a small simulation against a binomial band.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import special, stats

from simmargins import Margins, MarginsResult, MarginsTypeError, MarginsValueError, combine, load


@pytest.fixture(scope="module")
def lin():
    """OLS with four linear terms: every AME is a coefficient."""
    rng = np.random.default_rng(3)
    x, z = rng.normal(size=(2, 400))
    df = pd.DataFrame({"x": x, "z": z, "w": rng.uniform(0, 2, 400)})
    df["g"] = rng.choice(["a", "b", "c"], 400)
    df["y"] = 1 + 0.5 * x + 0.4 * z - 0.2 * df.w + 0.3 * (df.g == "b") + rng.normal(size=400)
    fit = smf.ols("y ~ x + z + w + C(g)", df).fit()
    m = Margins(fit, seed=11, n_sims=4000)
    return df, fit, m, m.dydx(["x", "z", "w", "g"])


COEF = {"x": "x", "z": "z", "w": "w", "g=b - g=a": "C(g)[T.b]", "g=c - g=a": "C(g)[T.c]"}


def _coef_rows(fit, R: np.ndarray, labels: list[str]) -> np.ndarray:
    """R over AME labels → R over the fit's coefficients (AME = coefficient here)."""
    out = np.zeros((R.shape[0], len(fit.params)))
    for j, lab in enumerate(labels):
        out[:, list(fit.params.index).index(COEF[lab])] = R[:, j]
    return out


# -- the delta route against statsmodels -------------------------------------------------
def test_difference_of_two_ames_is_the_difference_of_coefficients(lin):
    _, fit, m, res = lin
    t = res.test("x", "z", equal=True)
    v = _coef_rows(fit, np.array([[1.0, -1.0]]), ["x", "z"])[0]
    V = fit.cov_params().to_numpy()
    tt = fit.t_test(v)
    assert t.hypotheses == ["x − z = 0"]
    np.testing.assert_allclose(t.estimate, [v @ fit.params.to_numpy()], atol=1e-9)  # FD AMEs
    np.testing.assert_allclose(t.combination.delta_std_err, [np.sqrt(v @ V @ v)], rtol=1e-9)
    np.testing.assert_allclose(t.combination.delta_std_err, tt.sd.ravel(), rtol=1e-9)
    np.testing.assert_allclose(t.statistic, float(tt.tvalue.ravel()[0]), atol=1e-7)
    assert t.p_delta == pytest.approx(2 * special.ndtr(-abs(t.statistic)), rel=1e-12)
    assert t.combination.kappa[0] == 0.0
    # the same difference from two separate calls of the session, with their covariance
    diff = m.dydx("x") - m.dydx("z")
    assert isinstance(diff, MarginsResult) and diff.labels == ["x − z"]
    np.testing.assert_allclose(diff.estimate, t.estimate, rtol=1e-12)
    np.testing.assert_allclose(diff.delta_std_err, t.combination.delta_std_err, rtol=1e-12)
    np.testing.assert_allclose(
        diff.draws.to_numpy()[:, 0],
        res.draws.sel(label="x") - res.draws.sel(label="z"),
        rtol=0,
        atol=1e-10,  # separate calls: the FD AMEs agree to rounding, not to the bit
    )


def test_joint_wald_matches_statsmodels(lin):
    _, fit, _, res = lin
    t = res.test("x", "z", "g=b - g=a", value=[0.45, 0.45, 0.2])
    R = _coef_rows(fit, np.eye(3), ["x", "z", "g=b - g=a"])
    sm = fit.wald_test((R, np.array([0.45, 0.45, 0.2])), use_f=False, scalar=True)
    assert t.df == 3
    assert t.statistic == pytest.approx(float(sm.statistic), rel=1e-8)
    assert t.p_delta == pytest.approx(float(sm.pvalue), rel=1e-7)
    assert len(t.to_frame()) == 4 and t.to_frame()["hypothesis"].iloc[-1] == "joint"


def test_all_equal_and_linear_combinations_match_statsmodels(lin):
    _, fit, _, res = lin
    labels = ["x", "z", "g=b - g=a"]
    t = res.test(*labels, equal=True)
    R = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]])
    sm = fit.wald_test((_coef_rows(fit, R, labels), np.zeros(2)), use_f=False, scalar=True)
    assert t.df == 2 and t.statistic == pytest.approx(float(sm.statistic), rel=1e-8)
    # weights as a DataFrame with label columns, and as numbers over named quantities
    W = pd.DataFrame([[1.0, 1.0, 0.0], [0.0, 0.5, -2.0]], columns=labels)
    t2 = res.test(weights=W, value=[1.0, 0.3])
    t3 = res.test(*labels, weights=W.to_numpy(), value=[1.0, 0.3])
    sm2 = fit.wald_test(
        (_coef_rows(fit, W.to_numpy(), labels), np.array([1.0, 0.3])), use_f=False, scalar=True
    )
    assert t2.statistic == pytest.approx(float(sm2.statistic), rel=1e-8)
    assert t3.statistic == pytest.approx(t2.statistic, rel=1e-12)
    # a single linear combination by dict (labels or positions), and lincom
    t4 = res.test(weights={"x": 2.0, 1: -1.0}, value=0.5)
    tt = fit.t_test((_coef_rows(fit, np.array([[2.0, -1.0]]), ["x", "z"]), np.array([0.5])))
    assert t4.statistic == pytest.approx(float(tt.tvalue.ravel()[0]), abs=1e-6)  # FD AMEs
    lc = res.lincom({"x": 2.0, "z": -1.0})
    assert lc.labels == ["2·x − z"]
    np.testing.assert_allclose(lc.estimate + 0.0, t4.estimate, rtol=1e-12)


def test_rank_deficient_restrictions_use_the_rank(lin):
    _, _, _, res = lin
    t = res.test(weights=[[1, -1, 0, 0, 0], [2, -2, 0, 0, 0]])  # the same restriction twice
    single = res.test(weights=[1, -1, 0, 0, 0])
    assert t.df == 1 and t.statistic == pytest.approx(single.statistic**2, rel=1e-8)


# -- the draws route ---------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [(1.0, 1.0), (1.5, -0.5), (0.5, 2.0), (-2.0, 1.5)])
def test_joint_test_from_the_draws_agrees_with_the_delta_chi2(lin, shift):
    """Linear model: the draws are exactly N(θ̂, C), so the share of draws beyond the null's
    Mahalanobis distance estimates the χ² tail — within Monte-Carlo error. Nulls at
    ``shift`` delta SEs from the estimates."""
    _, _, _, res = lin
    null = res.estimate[:2] + np.asarray(shift) * res.delta_std_err[:2]
    t = res.test("x", "z", value=list(null))
    p, s = t.p_delta, res.n_draws
    assert 0.01 < p < 0.9  # a null in the body of the distribution, not in its far tail
    # binomial error of a share, plus the centre's and covariance's error (≈ the same size)
    tol = 4.0 * np.sqrt(2.0 * p * (1 - p) / s)
    assert abs(t.p_draws - p) < tol, (t.p_draws, p, tol)
    assert t.p_value == t.p_draws  # simulation headline
    assert t.draws_statistic == pytest.approx(t.statistic, rel=0.1)


def test_one_restriction_from_the_draws_is_the_tables_p_value(lin):
    _, _, _, res = lin
    t = res.test("g=c - g=a")
    assert t.p_draws == res.p_value()[4] and t.p_delta == res.p_value(method="delta")[4]
    shifted = res.test("x", value=0.45)  # the percentile interval reaches 0.45 at level 1 − p
    ci = res.conf_int(level=1 - shifted.p_draws * 1.0001)[0]
    assert not (ci[0] <= 0.45 <= ci[1])
    ci = res.conf_int(level=1 - shifted.p_draws * 0.9999)[0]
    assert ci[0] <= 0.45 <= ci[1]


def test_headline_follows_the_method(lin):
    _, fit, _, _ = lin
    res = Margins(fit, seed=11, n_sims=500, method="delta").dydx(["x", "z"])
    t = res.test("x", "z", equal=True)
    assert t.route == "delta" and t.p_value == t.p_delta
    assert "Headline (delta)" in t.summary()


# -- equivalence ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bounds", [(0.3, 0.7), (0.45, 0.62), (0.2, 0.5)])
def test_tost_is_dual_to_the_interval_at_level_one_minus_two_alpha(lin, bounds):
    _, _, _, res = lin
    lo, hi = bounds
    t = res.test("x", equivalence=bounds)
    est, se = res.estimate[0], res.delta_std_err[0]
    p_delta = max(special.ndtr((lo - est) / se), special.ndtr((est - hi) / se))
    assert t.p_delta == pytest.approx(p_delta, rel=1e-9, abs=1e-300)
    for alpha in (0.01, 0.05, 0.1, 0.25):
        for method, p in (("simulation", t.p_draws), ("delta", t.p_delta)):
            ci = res.conf_int(level=1 - 2 * alpha, method=method)[0]
            assert (p < alpha) == bool(lo < ci[0] and ci[1] < hi), (method, alpha, p, ci)
    frame = t.to_frame()
    assert {"p_lower_delta", "p_upper_draws"} <= set(frame.columns)
    assert frame["p_draws"].iloc[0] == max(frame["p_lower_draws"].iloc[0],
                                           frame["p_upper_draws"].iloc[0])  # fmt: skip


def test_equivalence_test_rejects_at_its_level_in_a_small_simulation():
    """True slope on the upper bound: a 5%-level TOST rejects in ≈ 5% of 300 samples.

    n = 100 gives an SE near 0.1, so the lower bound (4 SE away) plays no part and the
    size is that of the one-sided z-test with an estimated SE (5.1%). Band: 3 binomial SDs.
    """
    rng = np.random.default_rng(2024)
    reps, alpha = 300, 0.05
    rejected = {"delta": 0, "draws": 0}
    for i in range(reps):
        x = rng.normal(size=100)
        df = pd.DataFrame({"x": x, "y": 0.2 * x + rng.normal(size=100)})
        res = Margins(smf.ols("y ~ x", df).fit(), seed=i, n_sims=1000).dydx("x")
        t = res.test("x", equivalence=(-0.2, 0.2))
        rejected["delta"] += t.p_delta < alpha
        rejected["draws"] += t.p_draws < alpha
    band = 3 * np.sqrt(alpha * (1 - alpha) / reps)
    for route, k in rejected.items():
        assert abs(k / reps - alpha) < band, (route, k / reps)


# -- results combined across calls -----------------------------------------------------------
def test_combine_pushes_draws_through_fn_with_a_numerical_or_supplied_gradient(logit_glm):
    m = Margins(logit_glm, seed=5, n_sims=1000)
    p = m.predict(atexog={"g": ["b", "c"]})
    a = m.predict(atexog={"g": "a"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ratio's delta-vs-draws check is not under test
        ratio = combine([p, a], lambda u, v: u / v, labels=["b/a", "c/a"])
        exact = combine(
            [p, a],
            lambda u, v: u / v,
            gradient=lambda u, v: np.column_stack([np.diag(1 / v[0] * np.ones(2)), -u / v**2]),
            labels=["b/a", "c/a"],
        )
    np.testing.assert_allclose(ratio.estimate, p.estimate / a.estimate[0], rtol=1e-12)
    np.testing.assert_allclose(
        ratio.draws.to_numpy(), p.draws.to_numpy() / a.draws.to_numpy(), rtol=1e-12
    )
    np.testing.assert_allclose(ratio.delta_std_err, exact.delta_std_err, rtol=1e-6)
    assert np.all(np.isnan(ratio.kappa))
    # the sum of a nonlinear and a linear-in-β quantity: κ not available, its bound finite
    diff = p - a
    assert np.all(np.isnan(diff.kappa)) and np.all(np.isfinite(diff.to_dataset()["kappa_bound"]))
    np.testing.assert_allclose(
        diff.delta_std_err,
        combine([p, a], lambda u, v: u - v).delta_std_err,
        rtol=1e-6,
    )
    assert "κ: max=nan" in diff.summary() and "exact here" not in diff.summary()


def test_scalar_multiples_and_broadcasting(lin):
    _, _, m, res = lin
    np.testing.assert_allclose((2 * res).estimate, 2 * res.estimate)
    np.testing.assert_allclose((res * 0.5).delta_std_err, 0.5 * res.delta_std_err)
    np.testing.assert_allclose((-res).estimate, -res.estimate)
    one = m.dydx("x")
    d = res - one  # a one-label result is broadcast over the other's labels
    np.testing.assert_allclose(d.estimate, res.estimate - one.estimate[0])
    assert d.delta_std_err[0] == pytest.approx(0.0, abs=1e-12)
    assert (res + res).test(1).p_delta == pytest.approx(res.test("z").p_delta, rel=1e-9)


def test_combination_result_round_trips_through_netcdf(lin, tmp_path):
    _, _, m, _ = lin
    d = m.dydx("x") - m.dydx("z")
    back = load(d.to_netcdf(tmp_path / "d.nc"))
    np.testing.assert_allclose(back.estimate, d.estimate)
    assert back.attrs["quantity"] == "combination"
    assert back.test("x − z").p_delta == pytest.approx(d.test(0).p_delta, rel=1e-12)


# -- bad input ---------------------------------------------------------------------------------
def test_results_that_do_not_share_draws_are_refused(lin):
    df, fit, _, res = lin
    other_seed = Margins(fit, seed=12, n_sims=4000).dydx("x")
    with pytest.raises(MarginsValueError, match=r"seed \(11 vs 12\)"):
        res - other_seed
    fewer = Margins(fit, seed=11, n_sims=1000).dydx("x")
    with pytest.raises(MarginsValueError, match=r"n_sims.*number of draws"):
        res - fewer
    refit = smf.ols("y ~ x + z + w + C(g)", df.iloc[:-1]).fit()
    with pytest.raises(MarginsValueError, match="data_fingerprint"):
        combine([res, Margins(refit, seed=11, n_sims=4000).dydx("x")], lambda a, b: a - b)
    unseeded = Margins(fit, n_sims=100)
    with pytest.raises(MarginsValueError, match="integer seed"):
        unseeded.dydx("x") - unseeded.dydx("z")
    # the same fit and seed in another session: the same coefficient draws, so allowed
    same = Margins(fit, seed=11, n_sims=4000).dydx("z")
    assert (res - same).delta_std_err.shape == (5,)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"quantities": ("xx",)}, MarginsValueError, r"quantities: unknown label 'xx'.*'x'"),
        ({"quantities": (9,)}, MarginsValueError, "quantities: position 9 is out of range"),
        ({"quantities": (1.5,)}, MarginsTypeError, "quantities: expected a label"),
        ({"quantities": ("x", "x")}, MarginsValueError, "quantities: a quantity is named twice"),
        ({"quantities": ("x",), "equal": True}, MarginsValueError, "equal: needs at least two"),
        ({"equal": True, "weights": [1, 2, 3, 4, 5]}, MarginsValueError, "equal: give either"),
        ({"weights": [1, -1]}, MarginsValueError, r"weights: expected 5 weights per row"),
        ({"weights": {"x": 1, "q": 2}}, MarginsValueError, "weights: unknown label 'q'"),
        ({"weights": [0, 0, 0, 0, 0]}, MarginsValueError, "weights: every row"),
        ({"weights": "x - z"}, MarginsTypeError, "weights: expected numbers"),
        ({"quantities": ("x", "z"), "value": [1, 2, 3]}, MarginsValueError, "value: expected"),
        ({"equivalence": (0.5, 0.2)}, MarginsValueError, r"equivalence: .*lo < hi"),
        ({"equivalence": (0.5, 0.5)}, MarginsValueError, r"equivalence: .*lo < hi"),
        ({"equivalence": 0.3}, MarginsTypeError, r"equivalence: expected a pair"),
        ({"equivalence": (-1, 1), "value": 0.2}, MarginsValueError, "value: not used"),
    ],
)
def test_bad_arguments_name_themselves(lin, kwargs, exc, match):
    _, _, _, res = lin
    kw = dict(kwargs)
    q = kw.pop("quantities", ())
    with pytest.raises(exc, match=match):
        res.test(*q, **kw)


def test_bad_combinations_name_themselves(lin):
    _, _, m, res = lin
    with pytest.raises(MarginsValueError, match="fn: must return one value per row"):
        combine([res], lambda a: a.sum())
    with pytest.raises(MarginsValueError, match=r"labels: expected 1 names"):
        combine([res], lambda a: a.sum(axis=1), labels=["a", "b"])
    with pytest.raises(MarginsValueError, match=r"gradient: expected a Jacobian of shape \(1, 5\)"):
        combine([res], lambda a: a.sum(axis=1), gradient=lambda a: np.ones(3))
    with pytest.raises(MarginsTypeError, match="results: expected a list"):
        combine(res, lambda a: a)  # type: ignore[arg-type]
    with pytest.raises(MarginsValueError, match="the results have 5 and 2 labels"):
        res - m.dydx(["x", "z"])
    with pytest.raises(MarginsTypeError, match="multiplied by a number only"):
        res * "2"
    with pytest.raises(MarginsTypeError, match="combine with results"):
        res + 1.0
    with pytest.raises(MarginsValueError, match="labels: expected 1 names"):
        res.lincom({"x": 1, "z": -1}, labels=["a", "b"])


def test_summary_says_what_each_route_computed(lin):
    _, _, _, res = lin
    text = res.test("x", "z").summary()
    assert "Wald, 2 restrictions jointly" in text and "χ²(2) = " in text
    assert "share of draws at least as far from their mean" in text
    assert "Headline (simulation)" in text and "seed = 11" in text
    eq = res.test("x", equivalence=(0.3, 0.7)).summary()
    assert "equivalence (TOST): 0.3 < Rθ < 0.7" in eq and "level 1 − 2α" in eq
    assert stats.chi2.sf(1.0, 1) > 0  # scipy present for the χ² route


def test_single_quantity_restrictions_keep_the_results_small_sample_df(lin):
    """With a ``df`` variable (Satterthwaite/Kenward–Roger), a restriction on one quantity
    is tested with t as its table row is; combinations of several use normal theory."""
    _, _, _, res = lin
    ds = res.to_dataset()
    ds["df"] = ("label", np.array([8.0, 12.0, 20.0, 30.0, 30.0]))
    small = MarginsResult(ds)
    t = small.test("x")
    assert t.p_delta == pytest.approx(small.p_value(method="delta")[0], rel=1e-12)
    assert t.p_delta > res.test("x", value=0.0).p_delta  # t tails are heavier
    lo, hi = 0.3, 0.7
    eq = small.test("x", equivalence=(lo, hi))
    for alpha in (0.05, 0.1):
        ci = small.conf_int(level=1 - 2 * alpha, method="delta")[0]
        assert (eq.p_delta < alpha) == bool(lo < ci[0] and ci[1] < hi)
    both = small.test("x", "z", equal=True)
    assert both.p_delta == pytest.approx(res.test("x", "z", equal=True).p_delta, rel=1e-12)


def test_the_delta_method_alone_tests_and_combines_without_draws(lin):
    """method='delta' makes no draws: tests, TOST and combinations across calls still work
    (the joint covariance is G V̂ Gᵀ, so no seed is needed), the draws' p-values are NaN
    and the summary says they were not computed; nothing warns."""
    _, fit, _, _ = lin
    v = _coef_rows(fit, np.array([[1.0, -1.0]]), ["x", "z"])[0]
    V = fit.cov_params().to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = Margins(fit, method="delta")  # unseeded, no draws
        res = m.dydx(["x", "z"])
        t = res.test("x", "z", equal=True)
        tost = res.test("x", equivalence=(0.3, 0.7))
        diff = m.dydx("x") - m.dydx("z")
    assert res.n_draws == 0 and np.isnan(t.p_draws) and np.all(np.isnan(tost.row_p_draws))
    np.testing.assert_allclose(t.combination.delta_std_err, [np.sqrt(v @ V @ v)], rtol=1e-9)
    np.testing.assert_allclose(diff.delta_std_err, [np.sqrt(v @ V @ v)], rtol=1e-9)
    se = float(np.sqrt(fit.cov_params().loc["x", "x"]))  # the AME of x is its coefficient
    b = fit.params["x"]
    p_tost = max(special.ndtr(-(b - 0.3) / se), special.ndtr(-(0.7 - b) / se))
    assert tost.p_delta == pytest.approx(p_tost, rel=1e-9)
    assert "Draws: not computed (no draws" in t.summary()
