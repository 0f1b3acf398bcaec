"""Satterthwaite and Kenward–Roger df against lmerTest / pbkrtest / emmeans.

The reference values come from ``validation/r_reference_df.R`` (stored in
``data/lmm_df_reference.json``, so no R is needed here). Each model is refitted with
statsmodels; the df and SEs must agree within 1e-4 relative (issue 14). Evaluated at lme4's
own variance estimates the formulas agree far more closely, which separates the formulas
from the two optimisers' differences.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

import simmargins
from simmargins import Margins, pairwise
from simmargins._errors import MarginsValueError
from simmargins.adapters import StatsmodelsMixedLMAdapter
from simmargins.adapters.lmm_df import (
    _kenward_roger,
    _pieces,
    _satterthwaite,
    kenward_roger,
    satterthwaite,
    small_sample_df,
    t_scaled_draws,
)

REF = json.loads((Path(__file__).parent / "data" / "lmm_df_reference.json").read_text())
MODELS = {m["name"]: m for m in REF["models"]}


def _unbalanced() -> pd.DataFrame:
    ss = simmargins.sleepstudy_data()
    subjects = sorted(ss["Subject"].unique())
    s_index = ss["Subject"].map({s: i for i, s in enumerate(subjects)})
    ub = ss[ss["Days"] < 3 + (s_index % 8)].copy()
    ub["late"] = (ub["Days"] >= 5).astype(float)
    return ub


# name → (data, formula, MixedLM keywords, REML)
SPECS: dict[str, tuple[Any, str, dict[str, Any], bool]] = {
    "ss_rs_reml": (simmargins.sleepstudy_data, "Reaction ~ Days", {"re_formula": "~Days"}, True),
    "ss_rs_ml": (simmargins.sleepstudy_data, "Reaction ~ Days", {"re_formula": "~Days"}, False),
    "ss_diag_reml": (
        simmargins.sleepstudy_data,
        "Reaction ~ Days",
        {"re_formula": "1", "vc_formula": {"Days": "0 + Days"}},
        True,
    ),
    "ub_ri_reml": (_unbalanced, "Reaction ~ Days + late", {}, True),
    "ub_ri_ml": (_unbalanced, "Reaction ~ Days + late", {}, False),
    "ub_rs_reml": (_unbalanced, "Reaction ~ Days + late", {"re_formula": "~Days"}, True),
}


@cache
def _fit(name: str) -> Any:
    data, formula, kw, reml = SPECS[name]
    return smf.mixedlm(formula, data(), groups="Subject", **kw).fit(reml=reml)


def _rows(name: str, key: str) -> np.ndarray:
    return np.array([r[key] for r in MODELS[name]["rows"]], dtype=float)


def _se(G: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("lk,kj,lj->l", G, cov, G))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def test_reference_covers_the_designs() -> None:
    assert set(MODELS) == set(SPECS)
    assert MODELS["ub_ri_reml"]["n"] == len(_unbalanced()) == 111


@pytest.mark.parametrize("name", sorted(SPECS))
def test_satterthwaite_matches_lmertest(name: str) -> None:
    fit = _fit(name)
    assert list(fit.fe_params.index) == [
        n.replace("(Intercept)", "Intercept") for n in MODELS[name]["coef_names"]
    ]
    L = _rows(name, "L")
    res = satterthwaite(fit, L)
    assert _rel(res.df, _rows(name, "df_satterthwaite")) < 1e-4
    assert _rel(_se(L, res.cov), _rows(name, "se_satterthwaite")) < 1e-4
    assert _rel(res.cov, np.array(MODELS[name]["vcov"])) < 1e-4


@pytest.mark.parametrize("name", sorted(n for n in SPECS if SPECS[n][3]))
def test_kenward_roger_matches_pbkrtest(name: str) -> None:
    fit = _fit(name)
    L = _rows(name, "L")
    res = kenward_roger(StatsmodelsMixedLMAdapter(fit), L)
    assert _rel(res.df, _rows(name, "df_kenward_roger")) < 1e-4
    assert _rel(_se(L, res.cov), _rows(name, "se_kenward_roger")) < 1e-4
    assert _rel(res.cov, np.array(MODELS[name]["vcov_kenward_roger"])) < 1e-4
    em = MODELS[name]["emmeans_kenward_roger"]  # emmeans: a second route to the same numbers
    at = em["at"]
    row = np.array([1.0, at["Days"]] + ([at["late"]] if "late" in at else []))
    assert _rel(_se(row[None], res.cov), np.array([em["se"]])) < 1e-4
    assert _rel(_kr_df_row(fit, row), np.array([em["df"]])) < 1e-4


def _kr_df_row(fit: Any, row: np.ndarray) -> np.ndarray:
    return kenward_roger(fit, row[None]).df


@pytest.mark.parametrize("name", sorted(SPECS))
def test_formulas_at_lme4_estimates(name: str) -> None:
    """At lme4's own (θ, σ) the only differences left are numerical: far below 1e-4."""
    m = MODELS[name]
    pc = dataclasses.replace(
        _pieces(_fit(name)), phi=np.array([*np.atleast_1d(m["theta"]), m["sigma"]])
    )
    L = _rows(name, "L")
    s = _satterthwaite(pc, L)
    assert _rel(s.cov, np.array(m["vcov"])) < 1e-8
    assert _rel(s.df, _rows(name, "df_satterthwaite")) < 2e-6  # lmerTest's numDeriv noise
    if SPECS[name][3]:
        k = _kenward_roger(pc, L)
        assert _rel(k.df, _rows(name, "df_kenward_roger")) < 1e-7
        assert _rel(_se(L, k.cov), _rows(name, "se_kenward_roger")) < 1e-8


def test_balanced_random_slope_gives_groups_minus_one() -> None:
    """Balanced sleepstudy with (Days | Subject): every df is exactly 18 − 1 (theory)."""
    fit = _fit("ss_rs_reml")
    G = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 4.5]])
    np.testing.assert_allclose(satterthwaite(fit, G).df, 17.0, rtol=2e-5)
    np.testing.assert_allclose(kenward_roger(fit, G).df, 17.0, rtol=1e-10)


def test_margins_gradients_are_the_reference_combinations() -> None:
    """The session's G rows (margins at values, overall, AME, contrast) feed straight in."""
    fit = _fit("ss_rs_reml")
    m = Margins(fit, method="delta")
    parts = [
        m.predict(atexog={"Days": [0, 9]}),
        m.predict(),
        m.dydx("Days"),
        m.contrasts(*pairwise("Days", [8, 1])),
    ]
    G = np.vstack([p.to_dataset()["gradient"].to_numpy() for p in parts])
    ref = {r["label"]: r for r in MODELS["ss_rs_reml"]["rows"]}
    order = ["margin Days=0", "margin Days=9", "margin overall", "Days", "contrast Days 8 vs 1"]
    np.testing.assert_allclose(G, [ref[k]["L"] for k in order], atol=1e-9)
    df, cov = small_sample_df(fit, G, "satterthwaite")
    assert _rel(df, np.array([ref[k]["df_satterthwaite"] for k in order])) < 1e-4
    df, cov = small_sample_df(fit, G, "kenward-roger")
    assert _rel(df, np.array([ref[k]["df_kenward_roger"] for k in order])) < 1e-4
    assert _rel(_se(G, cov), np.array([ref[k]["se_kenward_roger"] for k in order])) < 1e-4


def test_kenward_roger_refuses_ml() -> None:
    with pytest.raises(MarginsValueError, match=r"df='kenward-roger'.*REML"):
        small_sample_df(_fit("ub_ri_ml"), np.array([[0.0, 1.0, 0.0]]), "kenward-roger")


def test_asymptotic_and_bad_arguments() -> None:
    fit = _fit("ss_rs_reml")
    adapter = StatsmodelsMixedLMAdapter(fit)
    df, cov = small_sample_df(adapter, np.eye(2), "asymptotic")
    assert np.all(np.isinf(df))
    np.testing.assert_array_equal(cov, adapter.cov)
    with pytest.raises(MarginsValueError, match="df: expected one of"):
        small_sample_df(fit, np.eye(2), "satterwaite")
    with pytest.raises(MarginsValueError, match="2 columns"):
        small_sample_df(fit, np.eye(3), "satterthwaite")
    ols = smf.ols("Reaction ~ Days", simmargins.sleepstudy_data()).fit()
    with pytest.raises(TypeError, match="linear mixed models"):
        small_sample_df(ols, np.eye(2), "satterthwaite")


def test_t_scaled_draws_have_t_marginals() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200_000, 1)) @ np.array([[1.0, 2.0, 0.5]])  # comonotone labels
    nu = np.array([4.0, 17.0, np.inf])
    t = t_scaled_draws(z, nu, np.random.default_rng(2))
    for j, scale in enumerate([1.0, 2.0, 0.5]):
        q = np.quantile(t[:, j] / scale, [0.025, 0.5, 0.975])
        expect = (
            stats.t.ppf([0.025, 0.5, 0.975], nu[j])
            if np.isfinite(nu[j])
            else stats.norm.ppf([0.025, 0.5, 0.975])
        )
        np.testing.assert_allclose(q, expect, atol=0.03)
    np.testing.assert_array_equal(t[:, 2], z[:, 2])  # infinite df leaves a label normal


def test_a_singular_fit_whose_hessian_has_a_negative_eigenvalue_gets_lmertests_df():
    """Replication 79 of the coverage study's 10-cluster design: the REML optimum has a zero
    random-intercept variance and the deviance's Hessian a negative eigenvalue. lmerTest
    (3.1-3, ``contest1D``, which warns 'Model failed to converge with 1 negative
    eigenvalue') inverts the Hessian on its positive eigenvalues only and gives the OLS-like
    n − p = 93 df; a pseudo-inverse that kept the negative one gave df of −21 and −50."""
    import itertools
    import warnings

    from simmargins import CovarianceWarning
    from validation.coverage import designs
    from validation.coverage_lmm import study_stream

    design = designs()["lmm_ri_10x10"]
    frame, stream = study_stream("lmm_ri_10x10")
    y, _u, _u_new = next(itertools.islice(stream, 79, None))  # replication 79
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter on the boundary
        fit = design.fit(frame.assign(y=y))
    with pytest.warns(CovarianceWarning, match="positive eigenvalues only"):
        res = Margins(fit, method="delta", df="satterthwaite").predict(atexog={"treated": [0, 1]})
    out = res.to_frame()
    # lme4 1.1-31 / lmerTest 3.1-3 on the same data (REML log-likelihood -309.5136121)
    np.testing.assert_allclose(out["std_err"], [0.76215261, 0.89784573], rtol=1e-6)
    np.testing.assert_allclose(out["df"], [93.0, 93.0], rtol=1e-5)
