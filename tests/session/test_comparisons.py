"""Comparisons beyond differences (ratio, log ratio, log odds ratio, lift) and shifted or
scaled scenarios, checked against statsmodels' own predictions and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from simmargins import Margins, MarginsTypeError, MarginsValueError, pairwise


@pytest.fixture(scope="module")
def logit_g():
    rng = np.random.default_rng(3)
    n = 600
    df = pd.DataFrame(
        {"x": rng.normal(1.0, 1.2, n), "g": rng.choice(["a", "b", "c"], n), "z": rng.normal(size=n)}
    )
    eta = -0.3 + 0.5 * df["x"] + 0.6 * (df["g"] == "b") - 0.4 * (df["g"] == "c") - 0.3 * df["z"]
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return df, smf.logit("y ~ x + C(g) + z", df).fit(disp=0)


def _mean_prediction(fit, df, beta, **settings):
    """The average of statsmodels' predict over the data with ``settings`` applied."""
    cf = df.copy()
    for k, v in settings.items():
        cf[k] = v
    exog = fit.model.data.design_info if hasattr(fit.model.data, "design_info") else None
    import patsy

    X = np.asarray(patsy.dmatrix(exog or fit.model.data.model_spec, cf))
    return float(np.mean(fit.model.predict(beta, X)))


FUNCS = {
    "ratio": lambda a, b: a / b,
    "lnratio": lambda a, b: np.log(a / b),
    "lnor": lambda a, b: np.log(a / (1 - a)) - np.log(b / (1 - b)),
    "lift": lambda a, b: (a - b) / b,
    "difference": lambda a, b: a - b,
}


@pytest.mark.parametrize("kind", list(FUNCS))
def test_comparison_delta_se_and_kappa_match_statsmodels_predict(logit_g, kind):
    """Estimate, delta SE and κ against a numerical gradient and Hessian of the comparison
    of two averages of statsmodels' predictions."""
    df, fit = logit_g
    beta, V = fit.params.to_numpy(), fit.cov_params().to_numpy()
    f = FUNCS[kind]

    def theta(b):
        return f(_mean_prediction(fit, df, b, g="b"), _mean_prediction(fit, df, b, g="a"))

    m = Margins(fit, seed=2, n_sims=4000)
    res = m.dydx("g", comparison=kind)
    assert res.estimate[0] == pytest.approx(theta(beta), rel=1e-12)
    grad = approx_fprime(beta, theta, centered=True)
    assert res.delta_std_err[0] == pytest.approx(np.sqrt(grad @ V @ grad), rel=1e-6)
    L = np.linalg.cholesky(V)
    H = approx_hess3(beta, theta)
    kappa = np.linalg.norm(L.T @ H @ L, 2) / np.linalg.norm(L.T @ grad)
    assert res.kappa[0] == pytest.approx(kappa, rel=1e-4)
    # the draws are the comparison of the session's margins, draw by draw
    pred = m.predict(atexog={"g": ["a", "b"]})
    expected = f(pred.draws.to_numpy()[:, 1], pred.draws.to_numpy()[:, 0])
    np.testing.assert_allclose(res.draws.to_numpy()[:, 0], expected, rtol=1e-12)


def test_contrasts_comparison_equals_dydx_comparison(logit_g):
    _, fit = logit_g
    m = Margins(fit, seed=4)
    scen, w = pairwise("g", ["c", "a"])
    res = m.contrasts(scen, w, comparison="ratio")
    ame = m.dydx("g", comparison="ratio")
    assert res.labels == ["g=c / g=a"]
    assert ame.labels == ["g=b / g=a", "g=c / g=a"]
    assert res.estimate[0] == pytest.approx(ame.estimate[1], rel=1e-14)
    assert res.delta_std_err[0] == pytest.approx(ame.delta_std_err[1], rel=1e-12)
    assert res.attrs["comparison"] == "ratio"


def test_ratio_of_averaged_levels_uses_positive_and_negative_weights(logit_g):
    """A row (½, ½, −1) compares the average of two margins with a third."""
    df, fit = logit_g
    beta = fit.params.to_numpy()
    scen = [{"g": "b"}, {"g": "c"}, {"g": "a"}]
    res = Margins(fit, seed=0).contrasts(scen, [[0.5, 0.5, -1.0]], comparison="lift")
    a = 0.5 * (_mean_prediction(fit, df, beta, g="b") + _mean_prediction(fit, df, beta, g="c"))
    b = _mean_prediction(fit, df, beta, g="a")
    assert res.estimate[0] == pytest.approx((a - b) / b, rel=1e-12)
    assert res.labels == ["lift((0.5·[g=b] + 0.5·[g=c]) vs g=a)"]


def test_comparison_by_group(logit_g):
    df, fit = logit_g
    res = Margins(fit, seed=0).dydx("g", comparison="lnratio", by="g")
    beta = fit.params.to_numpy()
    sub = df[df["g"] == "b"]
    expected = np.log(
        _mean_prediction(fit, sub, beta, g="c") / _mean_prediction(fit, sub, beta, g="a")
    )
    frame = res.to_frame()
    row = frame.index[frame["label"] == "ln(g=c / g=a) | g=b"][0]
    assert frame.loc[row, "estimate"] == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def ols_shift(ols_frame):
    return smf.ols("y ~ x + z + C(g)", ols_frame).fit()


def test_shift_in_a_linear_model_is_the_coefficient(ols_frame, ols_shift):
    p, V = ols_shift.params, ols_shift.cov_params()
    sd = float(ols_frame["x"].std(ddof=1))
    m = Margins.linear_scale(ols_shift, seed=0)
    res = m.contrasts(shift={"x": 1, "z": "sd"})
    sd_z = float(ols_frame["z"].std(ddof=1))
    np.testing.assert_allclose(res.estimate, [p["x"], p["z"] * sd_z], rtol=1e-12)
    np.testing.assert_allclose(
        res.delta_std_err, [np.sqrt(V.loc["x", "x"]), sd_z * np.sqrt(V.loc["z", "z"])], rtol=1e-10
    )
    assert res.to_frame()["term"].tolist() == ["x", "z"]
    assert res.labels[0] == "x + 1 - observed"
    res_sd = m.contrasts(shift={"x": "sd"})
    assert res_sd.estimate[0] == pytest.approx(p["x"] * sd, rel=1e-12)


def test_scale_in_a_linear_model_is_the_coefficient_times_the_mean_change(ols_frame, ols_shift):
    p = ols_shift.params
    res = Margins.linear_scale(ols_shift, seed=0).contrasts(scale={"x": 1.1})
    assert res.estimate[0] == pytest.approx(p["x"] * 0.1 * ols_frame["x"].mean(), rel=1e-10)
    assert res.labels == ["x × 1.1 - observed"]


def test_shift_ratio_on_a_logit_matches_statsmodels_predict(logit_g):
    df, fit = logit_g
    beta = fit.params.to_numpy()
    res = Margins(fit, seed=0).contrasts(shift={"x": 0.5}, comparison="ratio")
    a = _mean_prediction(fit, df, beta, x=df["x"] + 0.5)
    b = float(fit.predict(df).mean())
    assert res.estimate[0] == pytest.approx(a / b, rel=1e-12)
    assert res.labels == ["x + 0.5 / observed"]
    # scale: the data with 2·x against the data as observed
    res2 = Margins(fit, seed=0).contrasts(scale={"x": 2.0})
    assert res2.estimate[0] == pytest.approx(
        _mean_prediction(fit, df, beta, x=2 * df["x"]) - b, rel=1e-10
    )


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda m: m.dydx("g", comparison="odds"), MarginsValueError, "comparison"),
        (lambda m: m.dydx("x", comparison="ratio"), MarginsValueError, "numeric"),
        (lambda m: m.contrasts(shift={"g": 1}), MarginsValueError, "shift: 'g' is categorical"),
        (lambda m: m.contrasts(shift={"x": "iqr"}), MarginsValueError, "shift: .*'sd'"),
        (lambda m: m.contrasts(shift={"x": np.inf}), MarginsValueError, "shift: .*finite"),
        (lambda m: m.contrasts(scale={"x": "2"}), MarginsTypeError, "scale: .*number"),
        (lambda m: m.contrasts(shift=[1]), MarginsTypeError, "shift: expected"),
        (lambda m: m.contrasts(shift={"nope": 1}), MarginsValueError, "shift"),
        (
            lambda m: m.contrasts([{"g": "a"}], [[1.0]], shift={"x": 1}),
            MarginsValueError,
            "scenarios: give either",
        ),
        (lambda m: m.contrasts(), MarginsTypeError, "contrasts: give scenarios"),
        (
            lambda m: m.contrasts([{"g": "a"}, {"g": "b"}], [[1.0, 1.0]], comparison="ratio"),
            MarginsValueError,
            "comparison: 'ratio' .* one sign",
        ),
    ],
)
def test_bad_comparison_arguments_name_the_argument(logit_g, call, error, pattern):
    _, fit = logit_g
    with pytest.raises(error, match=pattern):
        call(Margins(fit, seed=0, n_sims=20))


def test_log_ratio_outside_its_domain_is_refused(ols_frame, ols_shift):
    m = Margins.linear_scale(ols_shift, seed=0, n_sims=50)
    scen = [{"x": -5.0}, {"x": 5.0}]
    with pytest.raises(MarginsValueError, match="comparison: 'lnratio' is undefined"):
        m.contrasts(scen, [[1.0, -1.0]], comparison="lnratio")
    with pytest.raises(MarginsValueError, match="comparison: 'lnor' is undefined"):
        m.contrasts(scen, [[1.0, -1.0]], comparison="lnor")


def test_a_ratio_is_tested_against_one_and_agrees_with_its_log(logit_g):
    """p-values of a ratio test μ1/μ0 = 1 (not 0): the delta p equals 2Φ(−|r − 1|/SE), the
    draws' p is the share-based p of log ratios against 0 (percentile intervals follow
    the monotone log), and the interval excludes 1 exactly when p < 5%."""
    from scipy import stats

    _, fit = logit_g
    m = Margins(fit, seed=3, n_sims=2000)
    ratio = m.dydx("g", comparison="ratio")
    log = m.dydx("g", comparison="lnratio")
    assert ratio.null == 1.0 and log.null == 0.0
    np.testing.assert_allclose(ratio.statistic(), (ratio.estimate - 1.0) / ratio.std_err)
    z = (ratio.estimate - 1.0) / ratio.delta_std_err
    np.testing.assert_allclose(
        ratio.p_value(method="delta"), 2 * stats.norm.sf(np.abs(z)), rtol=1e-10
    )
    # the order statistics are the same draws; only the interpolation between two of them
    # (linear in r against linear in log r) moves the crossing, by less than one draw's share
    np.testing.assert_allclose(ratio.p_value(), log.p_value(), rtol=0, atol=1.0 / 2000)
    ci = ratio.conf_int()
    assert np.all((ratio.p_value() < 0.05) == ((ci[:, 0] > 1) | (ci[:, 1] < 1)))
    assert "test a ratio of 1" in ratio.summary()
