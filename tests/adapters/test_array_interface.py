"""Array-interface fits (``sm.Logit(y, X)``, ``sm.GLM(y, X, family)``…) get the adapter of
their model class, never the link-less base: ``Margins(fit, training_data=df)`` and
``StatsmodelsAdapter(fit, training_data=df)`` both give response-scale answers that match
statsmodels' own ``get_margeff`` and ``predict`` (issue 10, item 1)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.genmod.families import links

import simmargins
from simmargins import Margins, MarginsTypeError, MarginsValueError
from simmargins.adapters import (
    StatsmodelsAdapter,
    StatsmodelsDiscreteAdapter,
    StatsmodelsGLMAdapter,
    StatsmodelsMixedLMAdapter,
    StatsmodelsOLSAdapter,
    supported_models,
)


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    """statsmodels' ``fair`` data (Fair 1978), with a binary affair indicator."""
    df = sm.datasets.fair.load_pandas().data.copy()
    df["affair"] = (df["affairs"] > 0).astype(float)
    df["n_affairs"] = np.round(df["affairs"] * 2.0)  # a count outcome for Poisson/NB
    return df


@pytest.fixture(scope="module")
def logit_array(fair):
    return sm.Logit(fair["affair"], sm.add_constant(fair[["age", "educ"]])).fit(disp=0)


def test_base_adapter_built_directly_dispatches_on_the_model_class(fair, logit_array):
    # the reproduction: today's main averaged the log-odds (AME 0.0457, mean -0.763)
    ad = StatsmodelsAdapter(logit_array, training_data=fair)
    assert type(ad) is StatsmodelsDiscreteAdapter
    m = Margins(logit_array, adapter=ad, method="delta", seed=0)
    ame = logit_array.get_margeff().margeff
    # tolerances are ~10x the agreement measured: AMEs 2e-10..3e-9 relative (finite
    # differences against get_margeff's analytic derivative), SEs <1.4e-9, means <1e-15
    np.testing.assert_allclose(m.dydx(["age", "educ"]).estimate, ame, rtol=1e-8)
    assert m.predict().estimate[0] == pytest.approx(np.mean(logit_array.predict()), rel=1e-14)


def test_margins_takes_training_data(fair, logit_array):
    m = Margins(logit_array, training_data=fair, method="delta", seed=0)
    assert isinstance(m.adapter, StatsmodelsDiscreteAdapter)
    res = m.dydx("age")
    mfx = logit_array.get_margeff()
    assert res.estimate[0] == pytest.approx(mfx.margeff[0], rel=1e-8)
    assert res.delta_std_err[0] == pytest.approx(mfx.margeff_se[0], rel=1e-8)
    with pytest.raises(MarginsValueError, match="training_data: give it to the adapter or"):
        Margins(logit_array, adapter=m.adapter, training_data=fair)


def _discrete(kind: str, fair: pd.DataFrame):
    X = sm.add_constant(fair[["age", "educ", "yrs_married"]])
    y = fair["affair"] if kind in ("Logit", "Probit") else fair["n_affairs"]
    model = getattr(sm, kind)(y, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(disp=0, maxiter=200)


@pytest.mark.parametrize("kind", ["Logit", "Probit", "Poisson", "NegativeBinomial"])
def test_every_discrete_array_fit_matches_get_margeff(fair, kind):
    fit = _discrete(kind, fair)
    m = Margins(fit, training_data=fair, method="delta", seed=0)
    assert m.adapter.link.name == (
        "logit" if kind == "Logit" else "probit" if kind == "Probit" else "log"
    )
    res = m.dydx(["age", "educ", "yrs_married"])
    np.testing.assert_allclose(res.estimate, fit.get_margeff().margeff, rtol=1e-8)
    np.testing.assert_allclose(res.delta_std_err, fit.get_margeff().margeff_se, rtol=3e-8)
    np.testing.assert_allclose(m.predict().estimate[0], np.mean(fit.predict()), rtol=1e-14)


@pytest.mark.parametrize(
    "family",
    [
        sm.families.Binomial(),
        sm.families.Binomial(links.Probit()),
        sm.families.Binomial(links.CLogLog()),
        sm.families.Poisson(),
        sm.families.Gaussian(links.Log()),
        sm.families.Gamma(links.Log()),
    ],
    ids=[
        "binomial-logit",
        "binomial-probit",
        "binomial-cloglog",
        "poisson",
        "gaussian-log",
        "gamma-log",
    ],
)
def test_every_glm_array_fit_matches_get_margeff(fair, family):
    if isinstance(family, sm.families.Binomial):
        y = fair["affair"]
    elif isinstance(family, sm.families.Poisson):
        y = fair["n_affairs"]
    else:
        y = fair["rate_marriage"]  # positive, for the log-link Gaussian and Gamma
    fit = sm.GLM(y, sm.add_constant(fair[["age", "educ"]]), family=family).fit()
    m = Margins(fit, training_data=fair, method="delta", seed=0)
    assert isinstance(m.adapter, StatsmodelsGLMAdapter)
    np.testing.assert_allclose(
        m.dydx(["age", "educ"]).estimate, fit.get_margeff().margeff, rtol=3e-8
    )
    np.testing.assert_allclose(m.predict().estimate[0], np.mean(fit.predict()), rtol=1e-14)


def test_ols_wls_and_mixedlm_array_fits(fair):
    X = sm.add_constant(fair[["age", "educ"]])
    for fit, cls in (
        (sm.OLS(fair["rate_marriage"], X).fit(), StatsmodelsOLSAdapter),
        (
            sm.WLS(fair["rate_marriage"], X, weights=fair["children"] + 1).fit(),
            StatsmodelsOLSAdapter,
        ),
    ):
        m = Margins(fit, training_data=fair, method="delta", seed=0)
        assert isinstance(m.adapter, cls)
        np.testing.assert_allclose(m.dydx("age").estimate[0], fit.params["age"], rtol=1e-8)
    sub = fair.iloc[:600].reset_index(drop=True)
    groups = sub["occupation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lmm = sm.MixedLM(
            sub["rate_marriage"], sm.add_constant(sub[["age", "educ"]]), groups=groups
        ).fit()
    m = Margins(lmm, training_data=sub, method="delta", seed=0)
    assert isinstance(m.adapter, StatsmodelsMixedLMAdapter)
    np.testing.assert_allclose(m.dydx("educ").estimate[0], lmm.fe_params["educ"], rtol=1e-9)


def test_unknown_model_class_is_refused_by_name(fair):
    fit = sm.QuantReg(fair["rate_marriage"], sm.add_constant(fair[["age"]])).fit()
    for make in (
        lambda: Margins(fit, training_data=fair),
        lambda: StatsmodelsAdapter(fit, training_data=fair),
        lambda: simmargins.adapters.adapter_for(fit),
    ):
        with pytest.raises(MarginsTypeError) as err:
            make()
        assert "QuantReg models are not supported" in str(err.value)
        for name in supported_models():
            assert name in str(err.value)
