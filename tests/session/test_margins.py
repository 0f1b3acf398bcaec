"""Margins on identity-link models, checked against closed forms computed here with patsy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from simmargins import Margins, pairwise, reference

RHS = "age + female + treated + C(school)"


def _fe(fit):
    names = list(fit.fe_params.index)
    return fit.fe_params.to_numpy(), fit.cov_params().loc[names, names].to_numpy(), names


def _xbar(df: pd.DataFrame, **settings) -> np.ndarray:
    """Column means of the counterfactual design, built afresh from the formula text."""
    cf = df.copy()
    for k, v in settings.items():
        cf[k] = v
    # the reference levels are listed so a one-level counterfactual keeps all columns
    X = patsy.dmatrix("age + female + treated + C(school, levels=['A', 'B', 'C', 'D'])", cf)
    return np.asarray(X).mean(axis=0)


@pytest.fixture(scope="module", params=["ri", "rs"])
def lmm(request, lmm_ri, lmm_rs):
    return lmm_ri if request.param == "ri" else lmm_rs


def test_ame_of_linear_variable_is_its_coefficient(lmm):
    beta, V, names = _fe(lmm)
    res = Margins.linear_scale(lmm, seed=1).dydx("age")
    k = names.index("age")
    np.testing.assert_allclose(res.estimate, [beta[k]], rtol=1e-8)
    np.testing.assert_allclose(res.delta_std_err, [np.sqrt(V[k, k])], rtol=1e-8)
    np.testing.assert_allclose(res.kappa, [0.0])


@pytest.mark.parametrize("at", ["overall", "mean"])
def test_predictive_margins_are_mean_design_times_beta(lmm, classroom, at):
    beta, V, _ = _fe(lmm)
    res = Margins.linear_scale(lmm, at=at, seed=1).predict(atexog={"treated": [0, 1]})
    for j, t in enumerate([0, 1]):
        g = _xbar(classroom, treated=t)
        assert res.estimate[j] == pytest.approx(g @ beta, rel=1e-10)
        assert res.delta_std_err[j] == pytest.approx(np.sqrt(g @ V @ g), rel=1e-10)
    frame = res.to_frame()
    assert frame["treated"].tolist() == [0, 1]
    assert frame["label"].tolist() == ["treated=0", "treated=1"]


def test_predict_alone_is_the_average_fitted_mean(lmm, classroom):
    beta, _, _ = _fe(lmm)
    res = Margins.linear_scale(lmm, seed=1).predict()
    X = np.asarray(lmm.model.exog)
    assert res.estimate[0] == pytest.approx(X.mean(axis=0) @ beta, rel=1e-12)
    assert res.labels == ["overall"]


def test_treated_contrast_equals_its_coefficient(lmm):
    beta, V, names = _fe(lmm)
    k = names.index("treated")
    scen, w = pairwise("treated", [1, 0])
    res = Margins.linear_scale(lmm, seed=1).contrasts(scenarios=scen, contrasts=w)
    assert res.estimate[0] == pytest.approx(beta[k], rel=1e-10)
    assert res.delta_std_err[0] == pytest.approx(np.sqrt(V[k, k]), rel=1e-10)
    assert res.labels == ["treated=1 - treated=0"]


def test_school_reference_contrasts_and_categorical_dydx(lmm):
    beta, V, names = _fe(lmm)
    m = Margins.linear_scale(lmm, seed=1)
    scen, W = reference("school", ["A", "B", "C", "D"], ref_level="A")
    res = m.contrasts(scenarios=scen, contrasts=W)
    ame = m.dydx("school")
    idx = [names.index(f"C(school)[T.{s}]") for s in "BCD"]
    for r in (res, ame):
        np.testing.assert_allclose(r.estimate, beta[idx], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.delta_std_err, np.sqrt(np.diag(V)[idx]), rtol=1e-9)
    assert ame.labels == ["school=B - school=A", "school=C - school=A", "school=D - school=A"]


def test_at_dict_fixes_values_for_all_rows(lmm, classroom):
    beta, V, _ = _fe(lmm)
    res = Margins.linear_scale(lmm, at={"age": 30, "school": "C"}, seed=1).predict(
        atexog={"female": [0, 1]}
    )
    for j, f in enumerate([0, 1]):
        g = _xbar(classroom, age=30, school="C", female=f)
        assert res.estimate[j] == pytest.approx(g @ beta, rel=1e-10)
        assert res.delta_std_err[j] == pytest.approx(np.sqrt(g @ V @ g), rel=1e-10)


def test_simulation_se_agrees_with_delta_within_monte_carlo_error(lmm):
    n_sims = 4000
    m = Margins.linear_scale(lmm, n_sims=n_sims, seed=11)
    res = m.predict(atexog={"age": [20, 45, 70], "female": [0, 1]})
    tol = 4.0 / np.sqrt(2 * n_sims)  # relative MC error of an SD is 1/sqrt(2S); allow 4 of them
    np.testing.assert_allclose(res.draws_std_err, res.delta_std_err, rtol=tol)
    assert np.all(res.disagreement < tol)


def test_percentile_interval_and_headline_choice(lmm_ri):
    sim = Margins.linear_scale(lmm_ri, seed=3).dydx("age")
    q = np.quantile(sim.draws.to_numpy()[:, 0], [0.025, 0.975])
    np.testing.assert_allclose(sim.conf_int()[0], q, rtol=1e-12)
    assert sim.std_err[0] == pytest.approx(np.std(sim.draws.to_numpy()[:, 0], ddof=1))

    delta = Margins.linear_scale(lmm_ri, method="delta", seed=3, level=0.9).dydx("age")
    se = lmm_ri.bse_fe["age"]
    lo, hi = delta.conf_int()[0]
    assert lo == pytest.approx(lmm_ri.fe_params["age"] - 1.6448536269514722 * se, rel=1e-8)
    assert hi == pytest.approx(lmm_ri.fe_params["age"] + 1.6448536269514722 * se, rel=1e-8)
    assert delta.std_err[0] == pytest.approx(se, rel=1e-8)
    assert delta.statistic()[0] == pytest.approx(lmm_ri.tvalues["age"], rel=1e-8)


def test_same_seed_same_draws_and_draws_are_reused(lmm_ri):
    a = Margins.linear_scale(lmm_ri, seed=5, n_sims=50)
    b = Margins.linear_scale(lmm_ri, seed=5, n_sims=50)
    c = Margins.linear_scale(lmm_ri, seed=6, n_sims=50)
    np.testing.assert_array_equal(a.coefficient_draws, b.coefficient_draws)
    assert not np.array_equal(a.coefficient_draws, c.coefficient_draws)
    np.testing.assert_array_equal(a.dydx("age").draws, b.dydx("age").draws)
    assert a.coefficient_draws.dims == ("draw", "coef")
    assert list(a.coefficient_draws.coef.values) == list(lmm_ri.fe_params.index)


def test_draws_follow_the_coefficient_covariance(lmm_ri):
    m = Margins.linear_scale(lmm_ri, seed=8, n_sims=20000)
    draws = m.coefficient_draws.to_numpy()
    _, V, _ = _fe(lmm_ri)
    sd = np.sqrt(np.diag(V))
    emp = np.cov(draws, rowvar=False)
    # correlation entries have MC SE ≈ 1/sqrt(S) ≈ 0.007; five of them is a safe bound
    np.testing.assert_allclose(emp / np.outer(sd, sd), V / np.outer(sd, sd), atol=0.035)


def test_frame_summary_and_dataset(lmm_ri):
    res = Margins.linear_scale(lmm_ri, seed=2).predict(atexog={"age": [20, 40], "female": [0, 1]})
    frame = res.to_frame()
    assert list(frame.columns) == [
        "age", "female", "label", "estimate", "std_err", "statistic", "p_value",
        "ci_lower", "ci_upper", "delta_std_err", "draws_std_err", "kappa", "disagreement",
    ]  # fmt: skip
    assert frame[["age", "female"]].to_numpy().tolist() == [[20, 0], [20, 1], [40, 0], [40, 1]]
    assert res.draws.dims == ("draw", "label")
    text = res.summary()
    assert "Margins Result (simulation, level=0.95)" in text
    assert "n = 400" in text and "κ: max=0.000" in text and "seed = 2" in text
    assert "Monte-Carlo noise" in text
    ds = res.to_dataset()
    for key in ("method", "level", "seed", "n_sims", "model_class", "formula", "versions"):
        assert key in ds.attrs
    assert ds.attrs["model_class"] == "MixedLM"
    assert "statsmodels=" in ds.attrs["versions"]


def test_with_level_changes_only_the_intervals(lmm_ri):
    res = Margins.linear_scale(lmm_ri, seed=2).dydx("age")
    wide = res.with_level(0.99)
    assert wide.level == 0.99
    assert wide.conf_int()[0, 0] < res.conf_int()[0, 0]
    np.testing.assert_array_equal(wide.estimate, res.estimate)


def test_multiple_variables_in_dydx(lmm_ri):
    beta, _, names = _fe(lmm_ri)
    res = Margins.linear_scale(lmm_ri, seed=2).dydx(["age", "female", "school"])
    assert res.labels[:2] == ["age", "female"]
    np.testing.assert_allclose(
        res.estimate[:2], [beta[names.index("age")], beta[names.index("female")]], rtol=1e-8
    )
    assert res.to_frame()["term"].tolist() == ["age", "female", "school", "school", "school"]


def test_ame_at_a_fixed_value_is_the_slope_there(ols_frame, ols_fit):
    # y ~ ... + z + I(z**2): dμ/dz at z = 1 is b_z + 2·b_zz·1
    res = Margins.linear_scale(ols_fit, at={"z": 1.0}, seed=0).dydx("z")
    expected = ols_fit.params["z"] + 2 * ols_fit.params["I(z ** 2)"]
    assert res.estimate[0] == pytest.approx(expected, rel=1e-7)


def test_weights_average_with_analysis_weights(ols_frame, ols_fit):
    res = Margins.linear_scale(ols_fit, weights="w", seed=0).predict()
    expected = np.average(ols_fit.fittedvalues, weights=ols_frame["w"])
    assert res.estimate[0] == pytest.approx(expected, rel=1e-12)
