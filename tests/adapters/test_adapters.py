"""Adapters: names, β̂/V̂ by name, data recovery, and designs through the fit's own spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula
import statsmodels.formula.api as smf
from packaging.version import Version

from simmargins import Margins, MarginsTypeError, MarginsValueError, pairwise
from simmargins.adapters import (
    ModelAdapter,
    StatsmodelsMixedLMAdapter,
    StatsmodelsOLSAdapter,
    adapter_for,
    supported_models,
)


def _fd_ame_by_predict(fit, df: pd.DataFrame, var: str, h: float, clip: bool = False) -> float:
    """AME through statsmodels' own predict on shifted frames (an independent route).

    ``clip`` keeps shifted values inside the observed range (bs() cannot extrapolate);
    each row then divides by its own step.
    """
    x = df[var].astype(float)
    lo, hi = (x.min(), x.max()) if clip else (-np.inf, np.inf)
    up, dn = df.copy(), df.copy()
    up[var] = np.clip(x + h, lo, hi)
    dn[var] = np.clip(x - h, lo, hi)
    diff = np.asarray(fit.predict(up)) - np.asarray(fit.predict(dn))
    return float(np.mean(diff / (up[var] - dn[var]).to_numpy()))


def test_every_adapter_satisfies_the_protocol(lmm_ri, ols_fit):
    for fit in (lmm_ri, ols_fit):
        ad = adapter_for(fit)
        assert isinstance(ad, ModelAdapter)
        assert ad.params.dtype == np.float64 and ad.cov.dtype == np.float64
        assert ad.cov.shape == (len(ad.coef_names),) * 2
        X = ad.design(ad.data)
        np.testing.assert_allclose(X, np.asarray(fit.model.exog), rtol=1e-14)


def test_mixedlm_covariance_is_the_fixed_effect_block_by_name(lmm_rs):
    ad = adapter_for(lmm_rs)
    cov = lmm_rs.cov_params()
    assert "student Var" in cov.index  # the variance parameters are in there too
    names = list(lmm_rs.fe_params.index)
    # symmetrised, so equal up to the asymmetry statsmodels leaves in cov_params()
    np.testing.assert_allclose(ad.cov, cov.loc[names, names].to_numpy(), rtol=1e-10, atol=1e-14)
    assert ad.coef_names == tuple(names)


def test_cov_alignment_is_by_name_not_position(ols_fit):
    class Shuffled:
        model = ols_fit.model
        params = ols_fit.params

        def cov_params(self):
            c = ols_fit.cov_params()
            order = list(reversed(c.index))
            return c.loc[order, order]

    ad = StatsmodelsOLSAdapter(Shuffled())
    np.testing.assert_allclose(ad.cov, ols_fit.cov_params().to_numpy(), rtol=1e-14)


def test_splines_and_stateful_transforms_match_statsmodels_predict(ols_frame):
    fit = smf.ols(
        "y ~ bs(x, df=4) + cr(z, df=3, constraints='center') + center(k) + C(g)", ols_frame
    ).fit()
    m = Margins.linear_scale(fit, seed=0)
    pred = m.predict(atexog={"g": ["lo", "hi"]})
    for j, g in enumerate(["lo", "hi"]):
        cf = ols_frame.assign(g=g)
        assert pred.estimate[j] == pytest.approx(np.mean(fit.predict(cf)), rel=1e-13, abs=0)
    ame = m.dydx(["x", "z", "k"])
    for j, v in enumerate(["x", "z", "k"]):
        assert ame.estimate[j] == pytest.approx(
            _fd_ame_by_predict(fit, ols_frame, v, 1e-4, clip=(v == "x")), rel=3e-7
        )
    # center(k) enters linearly, so its AME is its coefficient exactly
    assert ame.estimate[2] == pytest.approx(fit.params["center(k)"], rel=3e-10)


def test_interactions_and_I_transforms(ols_frame, ols_fit):
    m = Margins.linear_scale(ols_fit, seed=0)
    ame = m.dydx(["x", "z", "b"])
    p = ols_fit.params
    share_mid = np.mean(ols_frame["g"] == "mid")
    share_hi = np.mean(ols_frame["g"] == "hi")
    expected_x = (
        p["x"] + p["x:C(g)[T.mid]"] * share_mid + p["x:C(g)[T.lo]"] * (1 - share_mid - share_hi)
    )
    assert ame.estimate[0] == pytest.approx(expected_x, rel=3e-10)
    assert ame.estimate[1] == pytest.approx(
        p["z"] + 2 * p["I(z ** 2)"] * ols_frame["z"].mean(), rel=1e-10
    )
    assert ame.labels[2] == "b=True - b=False"
    assert ame.estimate[2] == pytest.approx(p["b[T.True]"], rel=3e-14, abs=0)


@pytest.fixture
def formulaic_engine():
    old = statsmodels.formula.options.formula_engine
    statsmodels.formula.options.formula_engine = "formulaic"
    yield
    statsmodels.formula.options.formula_engine = old


@pytest.mark.skipif(
    Version(statsmodels.__version__).release < (0, 15),
    reason="statsmodels < 0.15 has no formulaic engine (statsmodels.formula.options."
    f"formula_engine); installed: {statsmodels.__version__}",
)
def test_formulaic_engine_gives_the_same_margins(ols_frame, formulaic_engine):
    # statsmodels' own predict reads the global engine option, so it stays set throughout
    fit_f = smf.ols("y ~ x * C(g) + z + I(z**2) + k + b", ols_frame).fit()
    assert type(fit_f.model.data.model_spec).__module__.startswith("formulaic")
    m = Margins.linear_scale(fit_f, seed=0)
    pred = m.predict(atexog={"g": ["lo", "mid", "hi"], "b": [False, True]})
    for j, (g, b) in enumerate([(g, b) for g in ["lo", "mid", "hi"] for b in [False, True]]):
        expected = np.mean(fit_f.predict(ols_frame.assign(g=g, b=b)))
        assert pred.estimate[j] == pytest.approx(expected, rel=3e-14, abs=0)
    assert m.adapter.variables["g"].categorical and not m.adapter.variables["x"].categorical
    assert m.dydx("x").estimate[0] == pytest.approx(
        _fd_ame_by_predict(fit_f, ols_frame, "x", 1e-4), rel=1e-10
    )


def test_rows_dropped_by_the_fit_are_dropped_here(ols_frame):
    df = ols_frame.copy()
    df.loc[[3, 50, 200], "x"] = np.nan
    fit = smf.ols("y ~ x + C(g)", df).fit()
    m = Margins.linear_scale(fit, seed=0)
    assert len(m.adapter.data) == len(df) - 3
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.fittedvalues), rel=3e-14, abs=0)


def test_array_interface_mixedlm(classroom):
    X = sm.add_constant(classroom[["age", "female", "treated"]])
    fit = sm.MixedLM(classroom["score"], X, groups=classroom["student"]).fit()
    ad = StatsmodelsMixedLMAdapter(fit, training_data=classroom)
    m = Margins.linear_scale(fit, adapter=ad, seed=0)
    scen, w = pairwise("treated", [1, 0])
    res = m.contrasts(scenarios=scen, contrasts=w)
    assert res.estimate[0] == pytest.approx(fit.fe_params["treated"], rel=3e-14, abs=0)
    assert res.delta_std_err[0] == pytest.approx(fit.bse_fe["treated"], rel=1e-14, abs=0)
    assert m.dydx("age").estimate[0] == pytest.approx(fit.fe_params["age"], rel=1e-9)


def test_array_interface_needs_training_data(classroom):
    X = sm.add_constant(classroom[["age"]])
    fit = sm.MixedLM(classroom["score"], X, groups=classroom["student"]).fit()
    with pytest.raises(MarginsValueError, match="training_data"):
        Margins.linear_scale(fit)
    with pytest.raises(MarginsValueError, match=r"\['age'\] are not columns of training_data"):
        StatsmodelsMixedLMAdapter(fit, training_data=classroom.drop(columns="age"))
    with pytest.raises(MarginsValueError, match="has 10 rows but the fit used 400"):
        StatsmodelsMixedLMAdapter(fit, training_data=classroom.head(10))


def test_wls_and_robust_covariance(ols_frame):
    fit = smf.wls("y ~ x + z", ols_frame, weights=ols_frame["w"]).fit(cov_type="HC1")
    res = Margins.linear_scale(fit, seed=0).dydx("x")
    assert res.estimate[0] == pytest.approx(fit.params["x"], rel=3e-10)
    assert res.delta_std_err[0] == pytest.approx(fit.bse["x"], rel=3e-10)


def test_unsupported_and_unfitted_models(ols_frame):
    with pytest.raises(MarginsTypeError, match=r"call \.fit"):
        Margins(smf.ols("y ~ x", ols_frame))
    qr = smf.quantreg("y ~ x", ols_frame).fit()
    with pytest.raises(MarginsTypeError) as err:
        Margins(qr)
    assert "QuantReg models are not supported" in str(err.value)
    for name in supported_models():
        assert name in str(err.value)
    assert isinstance(err.value, TypeError)


def test_the_fits_exog_is_the_base_design_when_the_rebuild_equals_it(ols_frame, monkeypatch):
    """The rebuild check runs in blocks of rows; when every block equals exog bit for bit,
    the margins take exog as the base design (no second N × K copy), read-only, and the
    margins equal those from a rebuilt base design."""
    import simmargins.adapters._base as base_mod

    monkeypatch.setattr(base_mod, "_CHECK_ROWS", 64)  # several blocks on 300 rows
    fit = smf.ols("y ~ x * C(g) + bs(z, df=4)", ols_frame).fit()
    m = Margins(fit, seed=0, n_sims=50)
    X0 = m._cf.base_design()[0]
    assert np.shares_memory(X0, fit.model.exog) and not X0.flags.writeable
    np.testing.assert_array_equal(X0, m.adapter.design(m.adapter.data))
    got = m.dydx(["x", "z"]).estimate
    m2 = Margins(fit, seed=0, n_sims=50)
    monkeypatch.setattr(type(m2.adapter), "fitted_design", lambda self: None)
    m2._cf.base_values = {}  # drop the cached base: it is rebuilt through the spec
    assert not np.shares_memory(m2._cf.base_design()[0], fit.model.exog)
    np.testing.assert_array_equal(got, m2.dydx(["x", "z"]).estimate)
    # with at= values the base design is a rebuild of the rows with those values
    m3 = Margins(fit, seed=0, n_sims=50, at={"z": 1.0})
    assert not np.shares_memory(m3._cf.base_design()[0], fit.model.exog)


def test_rows_that_differ_in_a_later_block_are_named(ols_frame, monkeypatch):
    import simmargins.adapters._base as base_mod

    monkeypatch.setattr(base_mod, "_CHECK_ROWS", 64)
    fit = smf.ols("y ~ x + C(g)", ols_frame).fit()
    rows = ols_frame.copy()
    rows.loc[200, "x"] += 1.0
    with pytest.raises(MarginsValueError, match=r"not the rows the OLS was fitted on: row 200 "):
        Margins(fit, training_data=rows)
