"""What a session checks of the fit before any margin (issue 10, items 4 and 6): finite
estimates, convergence, the fit's own weights, and warnings that name their criterion and
point at the user's line."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins import ConvergenceWarning, DeltaMethodWarning, Margins, MarginsValueError


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    df = sm.datasets.fair.load_pandas().data.copy()
    df["affair"] = (df["affairs"] > 0).astype(float)
    return df


def _only(record, category):
    hits = [w for w in record if issubclass(w.category, category)]
    assert len(hits) == 1, [str(w.message) for w in record]
    return hits[0]


def test_a_diverged_fit_is_refused_at_margins():
    # statsmodels' default NegativeBinomial fit of cpunish diverges (alpha -> inf); main
    # used to fail with "LinAlgError: SVD did not converge" deep inside dydx
    d = sm.datasets.cpunish.load_pandas().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.negativebinomial(
            "EXECUTIONS ~ INCOME + PERPOVERTY + PERBLACK + VC100k96 + SOUTH + DEGREE", d
        ).fit(disp=0)
    assert not np.all(np.isfinite(fit.params))  # the premise: it really diverged
    with pytest.raises(MarginsValueError, match="did not produce finite estimates"):
        Margins(fit)


def test_a_non_finite_covariance_is_refused(logit_xz):
    _, fit = logit_xz

    class Broken:  # a results object whose covariance went NaN
        model = fit.model
        params = fit.params

        def cov_params(self):
            cov = fit.cov_params().copy()
            cov.iloc[1, 1] = np.nan
            return cov

    with pytest.raises(MarginsValueError, match=r"did not produce finite estimates.*\['x'\]"):
        Margins(Broken())


def test_a_fit_that_did_not_converge_warns_once_at_the_callers_line(fair):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.logit("affair ~ age + educ + yrs_married", fair).fit(disp=0, maxiter=2)
    assert not fit.mle_retvals["converged"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        Margins(fit, method="delta")
    w = _only(record, ConvergenceWarning)
    assert w.filename == __file__
    assert "did not converge" in str(w.message)


def test_delta_warning_names_kappa_and_points_at_the_user(logit_xz):
    _, fit = logit_xz
    m = Margins(fit, at={"x": 2.3}, seed=0, n_sims=500)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = m.dydx("x")
    w = _only(record, DeltaMethodWarning)
    assert w.filename == __file__
    text = str(w.message)
    assert f"κ = {res.kappa[0]:.3g} > 0.3" in text


def test_bootstrap_disagreement_blames_the_covariance_not_the_delta_method():
    # OLS with strongly heteroskedastic errors: the quantity is linear (κ = 0), so the gap
    # between the classical SE and the row bootstrap's is the model's covariance at fault
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.uniform(0, 4, 400)})
    d["y"] = 1.0 + 0.5 * d["x"] + rng.normal(0, 1, 400) * d["x"] ** 2
    fit = smf.ols("y ~ x", d).fit()
    m = Margins(fit, method="bootstrap", n_boot=200, seed=1, refit="statsmodels")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = m.dydx("x")
    w = _only(record, DeltaMethodWarning)
    text = str(w.message)
    assert res.kappa[0] == 0.0
    assert f"disagree by {100 * res.disagreement[0]:.1f}%" in text
    assert "model-based covariance" in text and "misspecified" in text
    assert "κ =" not in text


def test_freq_weights_of_the_fit_are_honoured_by_default(fair):
    """Collapsed data with freq_weights must give the uncollapsed data's AME (Stata's fweights).

    Today's main averaged the 227 collapsed rows equally: 0.020366 against 0.019877."""
    formula = "affair ~ rate_marriage + age + yrs_married"
    cols = ["affair", "rate_marriage", "age", "yrs_married"]
    full = smf.glm(formula, fair, family=sm.families.Binomial()).fit()
    collapsed = fair.groupby(cols).size().reset_index(name="n")
    fit = smf.glm(
        formula, collapsed, family=sm.families.Binomial(), freq_weights=collapsed["n"]
    ).fit()
    truth = full.get_margeff().margeff  # the uncollapsed AMEs, statsmodels' own route
    m = Margins(fit, method="delta")
    res = m.dydx(["rate_marriage", "age", "yrs_married"])
    # measured agreement 1.2e-11 relative; asserted at 10x that
    np.testing.assert_allclose(res.estimate, truth, rtol=1e-10)
    assert res.attrs["weights"] == "the fit's freq_weights"
    equal = Margins(fit, method="delta", weights=np.ones(len(collapsed)))
    res_eq = equal.dydx("yrs_married")
    assert abs(res_eq.estimate[0] - truth[2]) > 1e-4  # the override really overrides
    assert "freq_weights not used for averaging" in res_eq.attrs["weights"]


def test_precision_weights_are_not_used_and_provenance_says_so(fair):
    fit = smf.wls("rate_marriage ~ age + educ", fair, weights=fair["children"] + 1).fit()
    res = Margins(fit, method="delta").predict()
    # measured 3.6e-14 relative
    assert res.estimate[0] == pytest.approx(float(np.mean(fit.fittedvalues)), rel=5e-13)
    assert res.attrs["weights"] == "equal (the fit's weights not used for averaging)"


def test_summary_names_the_weights_when_rows_do_not_count_equally(logit_xz):
    _, fit = logit_xz
    plain = Margins(fit, seed=0, n_sims=50).predict()
    assert "Weights:" not in plain.summary()
    weighted = Margins(fit, seed=0, n_sims=50, weights=np.arange(100.0) + 1)
    assert "Weights: weights= (array)" in weighted.predict().summary()


def test_few_clusters_warn_at_the_callers_line_with_the_study_figures():
    import simmargins

    rng = np.random.default_rng(5)
    d = pd.DataFrame({"g": np.repeat(np.arange(12), 8), "x": rng.normal(size=96)})
    d["y"] = 1.0 + 0.5 * d["x"] + rng.normal(size=12)[d["g"]] + rng.normal(size=96)
    fit = smf.ols("y ~ x", d).fit()
    m = Margins(fit, method="bootstrap", n_boot=20, seed=0, cluster="g", progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        m.dydx("x")
    w = _only(record, simmargins.FewClustersWarning)
    assert w.filename == __file__
    assert "12 clusters" in str(w.message) and "86.5–91.5%" in str(w.message)
    rows = Margins(fit, method="bootstrap", n_boot=20, seed=0, progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = rows.dydx("x")
    assert not [w for w in record if issubclass(w.category, simmargins.FewClustersWarning)]
    # both refit routes record each replicate's log-likelihood beside its convergence flag
    assert res.to_dataset()["boot_llf"].dims == ("draw",)
    assert np.all(np.isfinite(res.to_dataset()["boot_llf"].to_numpy()))
