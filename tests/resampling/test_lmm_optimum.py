"""The check that a MixedLM fit reached its (RE)ML optimum, against statsmodels' own Powell
fit of the same model and a dense computation of the fixed effects' standard errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import ConvergenceWarning, Margins, sleepstudy_data
from simmargins.adapters import adapter_for
from simmargins.resampling.lmm_optimum import GAP_TOL, check_optimum


def _quiet_fit(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**kwargs)


@pytest.fixture(scope="module")
def near_boundary():
    """10 clusters × 10 rows, ICC 0.02: statsmodels' default fit stops short of the REML
    optimum (a random-intercept variance of 0.118 where the optimum has 0.0155), Powell's
    reaches it."""
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=100), "g": np.repeat(np.arange(10), 10)})
    df["y"] = 1 + 0.5 * df["x"] + 0.3 * rng.normal(size=10)[df["g"]] + 2 * rng.normal(size=100)
    model = smf.mixedlm("y ~ x", df, groups="g")
    short, powell = _quiet_fit(model), _quiet_fit(model, method=["powell"])
    # the premise of the tests below, checked rather than assumed
    assert powell.llf > short.llf + 0.05, (short.llf, powell.llf)
    return df, short, powell


def _dense_se(fit) -> np.ndarray:
    """SEs of (XᵀV⁻¹X)⁻¹σ̂² at the fit's variance parameters, V = I + ZΨZᵀ (REML σ̂²)."""
    model = fit.model
    X, y = np.asarray(model.exog), np.asarray(model.endog)
    psi = np.asarray(fit.params_object.cov_re)  # relative to σ²
    n, p = X.shape
    V = np.eye(n)
    for label in model.group_labels:
        rows = np.asarray(model.row_indices[label])
        Z = np.asarray(model.exog_re)[rows]
        V[np.ix_(rows, rows)] += Z @ psi @ Z.T
    Vi = np.linalg.inv(V)
    P = X.T @ Vi @ X
    beta = np.linalg.solve(P, X.T @ Vi @ y)
    r = y - X @ beta
    scale = r @ Vi @ r / (n - p)
    return np.sqrt(np.diag(np.linalg.inv(P)) * scale)


def test_a_fit_short_of_its_optimum_is_found_with_the_gap_powell_closes(near_boundary):
    _, short, powell = near_boundary
    found = check_optimum(adapter_for(short).refit_problem(None))
    assert found is not None and found.reml and found.short
    assert found.llf_fit == pytest.approx(short.llf, abs=1e-8)  # statsmodels' own criterion
    assert found.llf_opt == pytest.approx(powell.llf, abs=1e-6)
    assert found.cov_re_fit[0, 0] == pytest.approx(float(short.cov_re.iloc[0, 0]), rel=1e-8)
    assert found.cov_re_opt[0, 0] == pytest.approx(float(powell.cov_re.iloc[0, 0]), rel=1e-3)
    change = np.max(np.abs(_dense_se(powell) / _dense_se(short) - 1))
    assert found.se_change == pytest.approx(change, abs=1e-5)


def test_a_fit_at_its_optimum_is_left_alone(near_boundary):
    _, _, powell = near_boundary
    found = check_optimum(adapter_for(powell).refit_problem(None))
    assert found is not None and not found.short
    assert abs(found.gap) <= GAP_TOL and found.llf_fit == pytest.approx(powell.llf, abs=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Margins(powell, method="delta", df="kenward-roger")


def test_random_slopes_and_ml_fits_are_checked_too():
    df = sleepstudy_data()
    for reml in (True, False):
        # one model per fit: a MixedLMResults computes llf lazily with its model's last reml
        model = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days")
        fit = model.fit(reml=reml)
        found = check_optimum(adapter_for(fit).refit_problem(None))
        assert found is not None and found.reml == fit.reml and not found.short
        assert found.llf_fit == pytest.approx(fit.llf, abs=1e-8)


def test_the_session_warns_at_the_callers_line_with_what_to_do(near_boundary):
    _, short, powell = near_boundary
    for kwargs in ({}, {"random_effects": "blup"}):  # the BLUP adapter wraps the fit's
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            Margins(short, method="delta", **kwargs)
        (w,) = [r for r in record if issubclass(r.category, ConvergenceWarning)]
        assert w.filename == __file__
        text = str(w.message)
        assert "short of its REML optimum" in text and "method=['powell']" in text
        assert f"{powell.llf:.6g}" in text  # the criterion the refit should reach
        assert "reported no convergence" in text  # statsmodels' own word, for the record


def test_variance_components_are_not_checked_and_fall_back_to_statsmodels_word():
    rng = np.random.default_rng(3)
    g, cls = np.repeat(np.arange(8), 9), np.tile(np.repeat([0, 1, 2], 3), 8)
    df = pd.DataFrame({"g": g, "cls": cls, "x": rng.normal(size=72)})
    df["y"] = (
        df["x"] + rng.normal(size=8)[g] + rng.normal(size=(8, 3))[g, cls] + rng.normal(size=72)
    )
    fit = _quiet_fit(smf.mixedlm("y ~ x", df, groups="g", vc_formula={"cls": "0 + C(cls)"}))
    assert check_optimum(adapter_for(fit).refit_problem(None)) is None
