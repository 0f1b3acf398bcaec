"""Discrete adapter: Logit, Probit, Poisson, NegativeBinomial against statsmodels itself.

The reference is statsmodels' ``get_margeff(at="overall")``: its AMEs are analytic
derivatives and its SEs delta-method ones with a numerical Jacobian. Our central-difference
AMEs agree to about 5e-9 relative and our analytic-gradient SEs to about 2e-10; each
tolerance below is about 10× the agreement measured on these data.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsValueError, pairwise
from simmargins.adapters import ModelAdapter, StatsmodelsDiscreteAdapter, adapter_for

RHS = "x1 + x2 + k + d"
NUMERIC = ["x1", "x2", "k", "d"]  # get_margeff's default treats every column as continuous
FITTERS = {
    "logit": (smf.logit, "y"),
    "probit": (smf.probit, "y"),
    "poisson": (smf.poisson, "c"),
    "negativebinomial": (smf.negativebinomial, "c"),
}


@pytest.fixture(scope="module", params=list(FITTERS))
def discrete_fit(request, glm_frame):
    fitter, outcome = FITTERS[request.param]
    return fitter(f"{outcome} ~ {RHS}", glm_frame).fit(disp=0)


def _margeff(fit, **kwargs) -> pd.DataFrame:
    return fit.get_margeff(at="overall", method="dydx", **kwargs).summary_frame()


def test_ames_and_ses_match_get_margeff(discrete_fit):
    ref = _margeff(discrete_fit)
    res = Margins.response_scale(discrete_fit, seed=0).dydx(NUMERIC)
    assert res.labels == NUMERIC
    np.testing.assert_allclose(res.estimate, ref.loc[NUMERIC, "dy/dx"], rtol=1e-7)
    np.testing.assert_allclose(res.delta_std_err, ref.loc[NUMERIC, "Std. Err."], rtol=3e-9)


def test_discrete_change_of_a_dummy_matches_get_margeff(discrete_fit):
    # with dummy=True statsmodels averages p(d=1) − p(d=0) over the rows: our contrast
    ref = _margeff(discrete_fit, dummy=True).loc["d"]
    res = Margins.response_scale(discrete_fit, seed=0).contrasts(*pairwise("d", [1, 0]))
    assert res.estimate[0] == pytest.approx(ref["dy/dx"], rel=3e-13, abs=0)
    assert res.delta_std_err[0] == pytest.approx(ref["Std. Err."], rel=1e-13, abs=0)


def test_margins_match_statsmodels_predict(discrete_fit, glm_frame):
    m = Margins.response_scale(discrete_fit, seed=0)
    res = m.predict(atexog={"d": [0, 1], "x1": [-1.0, 0.5]})
    for j, row in enumerate(res.to_frame().itertuples()):
        expected = np.mean(discrete_fit.predict(glm_frame.assign(d=row.d, x1=row.x1)))
        assert res.estimate[j] == pytest.approx(expected, rel=1e-14, abs=0)
    lin = Margins.linear_scale(discrete_fit, seed=0)
    assert lin.predict().estimate[0] == pytest.approx(
        np.mean(discrete_fit.predict(glm_frame, which="linear")), rel=1e-12, abs=0
    )
    assert lin.dydx("x2").estimate[0] == pytest.approx(discrete_fit.params["x2"], rel=3e-11)
    assert lin.dydx("x2").delta_std_err[0] == pytest.approx(
        discrete_fit.bse["x2"], rel=3e-11, abs=0
    )


def test_negative_binomial_leaves_alpha_out_by_name(glm_frame):
    fit = smf.negativebinomial("c ~ x1 + x2", glm_frame).fit(disp=0)
    ad = adapter_for(fit)
    assert isinstance(ad, StatsmodelsDiscreteAdapter) and isinstance(ad, ModelAdapter)
    assert list(fit.params.index) == ["Intercept", "x1", "x2", "alpha"]
    names = ["Intercept", "x1", "x2"]
    assert ad.coef_names == tuple(names)
    np.testing.assert_allclose(ad.params, fit.params[names].to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(ad.cov, fit.cov_params().loc[names, names].to_numpy(), rtol=1e-14)
    assert ad.link.name == "log"

    # the array interface with plain numpy arrays: params and cov_params() are unlabelled
    X = np.column_stack([np.ones(len(glm_frame)), glm_frame[["x1", "x2"]].to_numpy()])
    fit_np = sm.NegativeBinomial(glm_frame["c"].to_numpy(), X).fit(disp=0)
    assert fit_np.model.exog_names == ["const", "x1", "x2", "alpha"]
    ad_np = StatsmodelsDiscreteAdapter(fit_np, training_data=glm_frame)
    assert ad_np.coef_names == ("const", "x1", "x2")
    np.testing.assert_allclose(ad_np.cov, fit_np.cov_params()[:3, :3], rtol=1e-14)
    res = Margins(fit_np, adapter=ad_np, seed=0).dydx(["x1", "x2"])
    me = fit_np.get_margeff(at="overall")
    np.testing.assert_allclose(res.estimate, me.margeff, rtol=1e-9)
    np.testing.assert_allclose(res.delta_std_err, me.margeff_se, rtol=3e-10)


def test_array_interface_logit(glm_frame):
    X = sm.add_constant(glm_frame[["x1", "x2", "k"]])
    fit = sm.Logit(glm_frame["y"], X).fit(disp=0)
    ad = StatsmodelsDiscreteAdapter(fit, training_data=glm_frame)
    res = Margins(fit, adapter=ad, seed=0).dydx(["x1", "x2", "k"])
    ref = _margeff(fit)
    np.testing.assert_allclose(res.estimate, ref["dy/dx"], rtol=3e-9)
    np.testing.assert_allclose(res.delta_std_err, ref["Std. Err."], rtol=3e-10)


def test_poisson_exposure_is_each_rows_own(glm_frame):
    df = glm_frame
    n = len(df)
    fit = smf.poisson("c ~ x1 + x2", df, exposure=df["t"]).fit(disp=0)
    m = Margins.response_scale(fit, seed=0)
    assert m.adapter.offset_keys == ("exposure",)
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.predict()), rel=1e-14, abs=0)
    res = m.predict(atexog={"exposure": [1.0, 2.5]})
    for j, t in enumerate([1.0, 2.5]):
        expected = np.mean(fit.predict(df, exposure=np.full(n, t)))
        assert res.estimate[j] == pytest.approx(expected, rel=1e-14, abs=0)
    # log link: ∂μᵢ/∂x1 = β₁ μᵢ, so the AME is β₁ times the mean prediction (own exposure)
    ame = m.dydx("x1").estimate[0]
    assert ame == pytest.approx(fit.params["x1"] * np.mean(fit.predict()), rel=3e-10)
    # get_margeff predicts with exposure 1 whatever the fit had; that is our at={"exposure": 1}
    ref = _margeff(fit).loc["x1"]
    at1 = Margins.response_scale(fit, at={"exposure": 1.0}, seed=0).dydx("x1")
    assert at1.estimate[0] == pytest.approx(ref["dy/dx"], rel=3e-10)
    assert at1.delta_std_err[0] == pytest.approx(ref["Std. Err."], rel=3e-10)


def test_logit_offset(glm_frame):
    df = glm_frame
    off = 0.3 * df["k"].to_numpy()
    fit = smf.logit("y ~ x1 + x2", df, offset=off).fit(disp=0)
    m = Margins.response_scale(fit, seed=0)
    assert m.adapter.offset_keys == ("offset",)
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.predict()), rel=1e-14, abs=0)
    res = m.predict(atexog={"offset": 0.0, "x2": 1.0})
    expected = np.mean(fit.predict(df.assign(x2=1.0), offset=np.zeros(len(df))))
    assert res.estimate[0] == pytest.approx(expected, rel=1e-14, abs=0)


# -- rows dropped for missing values --------------------------------------------------------
def test_formula_fit_drops_the_same_rows(glm_frame):
    df = glm_frame.copy()
    df.loc[[4, 40, 400], "x1"] = np.nan
    df.loc[[7], "k"] = np.nan
    fit = smf.logit(f"y ~ {RHS}", df).fit(disp=0)
    m = Margins.response_scale(fit, seed=0)
    assert len(m.adapter.data) == len(df) - 4 == fit.nobs
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.predict()), rel=1e-14, abs=0)
    ref = _margeff(fit)
    np.testing.assert_allclose(m.dydx(NUMERIC).estimate, ref.loc[NUMERIC, "dy/dx"], rtol=1e-8)


def test_array_fit_on_cleaned_rows_matches_the_uncleaned_frame(glm_frame):
    df = glm_frame.copy()
    df.loc[[3, 30, 300], "x2"] = np.nan
    clean = df.dropna(subset=["x2"])
    fit = sm.Probit(clean["y"], sm.add_constant(clean[["x1", "x2"]])).fit(disp=0)
    # the uncleaned frame: the rows with missing values in the model's columns are dropped
    ad = StatsmodelsDiscreteAdapter(fit, training_data=df)
    assert len(ad.data) == len(clean)
    ref = _margeff(fit)
    res = Margins(fit, adapter=ad, seed=0).dydx(["x1", "x2"])
    np.testing.assert_allclose(res.estimate, ref["dy/dx"], rtol=1e-9)
    # missing="drop" on the model: statsmodels records the rows it dropped
    fit_drop = sm.Probit(df["y"], sm.add_constant(df[["x1", "x2"]]), missing="drop").fit(disp=0)
    ad_drop = StatsmodelsDiscreteAdapter(fit_drop, training_data=df)
    np.testing.assert_allclose(ad_drop.design(ad_drop.data), fit_drop.model.exog, rtol=1e-15)


def test_rows_that_are_not_the_fits_rows_are_refused(glm_frame):
    df = glm_frame.copy()
    df.loc[[3, 30, 300], "x2"] = np.nan
    clean = df.dropna(subset=["x2"])
    fit = sm.Probit(clean["y"], sm.add_constant(clean[["x1", "x2"]])).fit(disp=0)
    shuffled = clean.sample(frac=1.0, random_state=0)
    with pytest.raises(
        MarginsValueError,
        match=re.escape("training_data: these rows are not the rows the Probit was fitted on"),
    ) as err:
        StatsmodelsDiscreteAdapter(fit, training_data=shuffled)
    assert "in the same order" in str(err.value)
    other = df.iloc[:1000]
    with pytest.raises(MarginsValueError) as err:
        StatsmodelsDiscreteAdapter(fit, training_data=other)
    assert str(err.value).startswith(
        f"training_data: training_data has 1000 rows but the fit used {len(clean)}"
    )
    assert (
        "dropping the rows with missing values in the model's columns ['x1', 'x2', 'y'] "
        "leaves 997 rows, which does not match either" in str(err.value)
    )


# 20 replicates only: their SE may stray from the delta SE beyond the warning's threshold
@pytest.mark.filterwarnings("ignore::simmargins.DeltaMethodWarning")
def test_bootstrap_refits_are_quiet(glm_frame, capsys):
    # discrete models print their optimiser's progress on every fit unless disp=0
    fit = smf.poisson("c ~ x1", glm_frame.iloc[:300]).fit(disp=0)
    res = Margins(fit, method="bootstrap", n_boot=20, seed=1, n_jobs=1).dydx("x1")
    assert np.all(np.isfinite(res.std_err))
    assert capsys.readouterr().out == ""


def test_at_mean_matches_get_margeff_at_mean(discrete_fit):
    # statsmodels' at="mean" evaluates at the exog column means — our design means
    ref = discrete_fit.get_margeff(at="mean", method="dydx").summary_frame()
    res = Margins.response_scale(discrete_fit, at="mean", seed=0).dydx(NUMERIC)
    np.testing.assert_allclose(res.estimate, ref.loc[NUMERIC, "dy/dx"], rtol=3e-8)
    np.testing.assert_allclose(res.delta_std_err, ref.loc[NUMERIC, "Std. Err."], rtol=3e-8)


def test_at_dict_on_the_response_scale(glm_frame):
    fit = smf.logit(f"y ~ {RHS}", glm_frame).fit(disp=0)
    res = Margins.response_scale(fit, at={"x2": 1.0, "d": 0}, seed=0).dydx("x1")
    b = fit.params
    eta = b["Intercept"] + b["x1"] * glm_frame["x1"] + b["x2"] * 1.0 + b["k"] * glm_frame["k"]
    p = 1 / (1 + np.exp(-eta))
    assert res.estimate[0] == pytest.approx(np.mean(b["x1"] * p * (1 - p)), rel=3e-10)
