"""Cluster-specific predictions (``random_effects="blup"``) against statsmodels and a
brute-force solution of Henderson's mixed-model equations built here with numpy.

θ = (β, u_1, …, u_G); the predictions must be statsmodels' fixed part plus its
``random_effects``, and their SEs √(lᵀ σ²C⁻¹ l) with C the mixed-model equations'
coefficient matrix, formed densely here (the adapter uses a blockwise Schur complement).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import simmargins
from simmargins import Margins
from simmargins._errors import MarginsTypeError, MarginsValueError
from simmargins.adapters import StatsmodelsBLUPAdapter, adapter_for
from simmargins.adapters import blup as blup_module


@cache
def _sleep() -> tuple[pd.DataFrame, Any]:
    df = simmargins.sleepstudy_data()
    fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit(
        reml=True
    )
    return df, fit


def _mme(fit: Any) -> dict[str, np.ndarray]:
    """Henderson's equations, dense: C, its inverse times σ², and their solution."""
    model = fit.model
    X = np.asarray(model.exog, dtype=float)
    Zr = np.asarray(model.exog_re, dtype=float)
    y = np.asarray(model.endog, dtype=float)
    labels = list(model.group_labels)
    q, n_groups = Zr.shape[1], len(labels)
    Z = np.zeros((len(y), n_groups * q))
    for g, label in enumerate(labels):
        rows = np.asarray(model.row_indices[label])
        Z[rows, g * q : (g + 1) * q] = Zr[rows]
    psi = np.asarray(fit.cov_re, dtype=float)
    sig2 = float(fit.scale)
    G_inv = np.kron(np.eye(n_groups), np.linalg.inv(psi))
    C = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + sig2 * G_inv]])
    sol = np.linalg.solve(C, np.concatenate([X.T @ y, Z.T @ y]))
    K = X.shape[1]
    cond_u = sig2 * np.linalg.inv(Z.T @ Z + sig2 * G_inv)  # condVar: u-block given β̂
    return {"X": X, "Z": Z, "cov": sig2 * np.linalg.inv(C), "beta": sol[:K], "u": sol[K:],
            "cond_u": cond_u}  # fmt: skip


def test_statsmodels_blups_are_the_mixed_model_equations_solution() -> None:
    _, fit = _sleep()
    mme = _mme(fit)
    u_sm = np.concatenate([np.asarray(fit.random_effects[g]) for g in fit.model.group_labels])
    np.testing.assert_allclose(mme["beta"], np.asarray(fit.fe_params), rtol=1e-8)
    np.testing.assert_allclose(mme["u"], u_sm, rtol=1e-7, atol=1e-8)
    ad = StatsmodelsBLUPAdapter(adapter_for(fit))
    np.testing.assert_allclose(ad.params, np.concatenate([mme["beta"], mme["u"]]), atol=1e-7)
    np.testing.assert_allclose(ad.cov, mme["cov"], rtol=1e-9, atol=1e-10)
    # the β-block is lme4's σ²(XᵀV⁻¹X)⁻¹ (equal to cov_params() on balanced sleepstudy)
    fe = np.asarray(fit.cov_params())[:2, :2]
    np.testing.assert_allclose(ad.cov[:2, :2], fe, rtol=1e-6)
    assert ad.coef_names[:4] == ("Intercept", "Days", "Subject[308]:Intercept", "Subject[308]:Days")


def test_row_predictions_equal_statsmodels_fitted_values() -> None:
    _, fit = _sleep()
    ad = StatsmodelsBLUPAdapter(adapter_for(fit))
    X = ad.design(ad.data)
    assert X.shape == (180, 2 + 18 * 2)
    np.testing.assert_allclose(X @ ad.params, np.asarray(fit.fittedvalues), rtol=0, atol=1e-8)


def test_by_cluster_equals_group_mean_fitted_value_with_henderson_ses() -> None:
    df, fit = _sleep()
    m = Margins(fit, random_effects="blup", method="delta", seed=3)
    res = m.predict(by="Subject")
    frame = res.to_frame()
    assert len(frame) == 18
    means = pd.Series(np.asarray(fit.fittedvalues), index=df.index).groupby(df["Subject"]).mean()
    np.testing.assert_allclose(frame["estimate"], means.loc[frame["Subject"]].to_numpy(), atol=1e-8)
    # brute force: l = (x̄_g, z̄_g in g's block), SE = √(lᵀ σ²C⁻¹ l)
    mme = _mme(fit)
    codes = pd.Index(fit.model.group_labels).get_indexer(df["Subject"])
    L = np.vstack([np.hstack([mme["X"], mme["Z"]])[codes == g].mean(axis=0) for g in range(18)])
    order = pd.Index(fit.model.group_labels).get_indexer(frame["Subject"])
    L = L[order]
    se = np.sqrt(np.einsum("ik,kl,il->i", L, mme["cov"], L))
    np.testing.assert_allclose(res.delta_std_err, se, rtol=1e-9)
    # condVar alone (u given β̂) omits the fixed effects' uncertainty and is smaller
    # (here barely: a cluster's mean is mostly its own data, so the excess is small)
    Lx, Lz = L[:, :2], L[:, 2:]
    se_cond = np.sqrt(np.einsum("ik,kl,il->i", Lz, mme["cond_u"], Lz))
    assert np.all(se > se_cond * (1 + 1e-4))
    # the excess is (x̄ − E z̄)ᵀ V_β (x̄ − E z̄), E = XᵀZ(ZᵀZ + σ²G⁻¹)⁻¹, V_β the β-block
    E = mme["X"].T @ mme["Z"] @ mme["cond_u"] / float(fit.scale)
    R = Lx - Lz @ E.T
    excess = np.einsum("ik,kl,il->i", R, mme["cov"][:2, :2], R)
    np.testing.assert_allclose(se**2 - se_cond**2, excess, rtol=1e-7)
    # the population-average route's SE of the same x̄ differs: it has no cluster terms
    zero = Margins(fit, method="delta").predict(by="Subject")
    assert not np.allclose(zero.delta_std_err, se)


def test_predictions_at_days_for_each_cluster() -> None:
    _, fit = _sleep()
    m = Margins(fit, random_effects="blup", seed=0)
    frame = m.predict(atexog={"Days": [0, 9]}, by="Subject").to_frame()
    b = np.asarray(fit.fe_params)
    want = [
        b[0] + fit.random_effects[s].iloc[0] + d * (b[1] + fit.random_effects[s].iloc[1])
        for d, s in zip(frame["Days"], frame["Subject"], strict=True)
    ]
    np.testing.assert_allclose(frame["estimate"], want, atol=1e-8)
    # the draws are N(θ̂, σ²C⁻¹): their SDs match the delta SEs up to Monte-Carlo noise
    np.testing.assert_allclose(frame["draws_std_err"], frame["delta_std_err"], rtol=0.15)
    assert m.coefficient_draws.sizes["coef"] == 38


def test_cluster_slopes_and_cluster_contrasts() -> None:
    _, fit = _sleep()
    m = Margins(fit, random_effects="blup", method="delta")
    slopes = m.dydx("Days", by="Subject").to_frame()
    want = [fit.fe_params["Days"] + fit.random_effects[s]["Days"] for s in slopes["Subject"]]
    np.testing.assert_allclose(slopes["estimate"], want, atol=1e-6)
    diff = m.dydx("Subject", atexog={"Days": 0}).to_frame()
    re = fit.random_effects
    first = diff.iloc[0]
    assert first["label"].startswith("Subject=309 - Subject=308")
    np.testing.assert_allclose(first["estimate"], re["309"].iloc[0] - re["308"].iloc[0], atol=1e-8)


def test_result_records_the_kind() -> None:
    _, fit = _sleep()
    res = Margins(fit, random_effects="blup", seed=1).predict()
    assert res.attrs["random_effects"] == "blup"
    assert "Random effects: blup (each row's cluster's predicted random effects)" in res.summary()
    plain = Margins(fit, seed=1).predict()
    assert plain.attrs["random_effects"] == "zero"
    assert "Random effects:" not in plain.summary()


def test_random_intercept_and_groups_not_in_the_data() -> None:
    df, _ = _sleep()
    fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject").fit()
    ad = StatsmodelsBLUPAdapter(adapter_for(fit))
    assert ad.cov.shape == (20, 20)
    np.testing.assert_allclose(ad.design(ad.data) @ ad.params, fit.fittedvalues, atol=1e-8)
    # groups given as an array that is no column of the data: a hidden column carries them
    codes = pd.factorize(df["Subject"])[0] * 7 + 1
    fit2 = smf.mixedlm("Reaction ~ Days", df, groups=codes, re_formula="~Days").fit()
    ad2 = StatsmodelsBLUPAdapter(adapter_for(fit2))
    assert ad2.group_column == blup_module.GROUP_COLUMN
    assert ad2.coef_names[2] == "Group[1]:Intercept"
    np.testing.assert_allclose(ad2.design(ad2.data) @ ad2.params, fit2.fittedvalues, atol=1e-8)
    res = Margins(fit2, random_effects="blup", method="delta").predict()
    np.testing.assert_allclose(res.estimate[0], np.mean(fit2.fittedvalues), atol=1e-8)


def test_newdata_rows_pick_their_cluster() -> None:
    _, fit = _sleep()
    m = Margins(fit, random_effects="blup", method="delta")
    new = pd.DataFrame({"Days": [2.5, 2.5], "Subject": ["308", "372"]})
    res = m.predict(newdata=new)
    b, re = fit.fe_params, fit.random_effects
    want = np.mean([b.iloc[0] + re[s].iloc[0] + 2.5 * (b.iloc[1] + re[s].iloc[1])
                    for s in ("308", "372")])  # fmt: skip
    np.testing.assert_allclose(res.estimate[0], want, atol=1e-8)
    with pytest.raises(MarginsValueError, match="never saw"):
        m.predict(newdata=pd.DataFrame({"Days": [1.0], "Subject": ["999"]}))
    with pytest.raises(MarginsValueError, match="Subject"):
        m.predict(newdata=pd.DataFrame({"Days": [1.0]}))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"random_effects": "blop"}, "random_effects"),
        ({"random_effects": "blup", "method": "bootstrap"}, "bootstrap"),
        ({"random_effects": "blup", "df": "kenward-roger"}, "use df='satterthwaite'"),
        ({"random_effects": "blup", "at": "median"}, "median"),
    ],
)
def test_refusals_on_a_mixed_model(kwargs: dict[str, Any], match: str) -> None:
    _, fit = _sleep()
    with pytest.raises(MarginsValueError, match=match):
        Margins(fit, **kwargs)


def test_refusals_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    df, fit = _sleep()
    ols = smf.ols("Reaction ~ Days", df).fit()
    with pytest.raises(MarginsValueError, match=r"is for mixed models .* this is a OLS"):
        Margins(ols, random_effects="blup")
    assert Margins(ols, random_effects="zero").random_effects == "zero"
    with pytest.raises(MarginsTypeError, match="MixedLM"):
        StatsmodelsBLUPAdapter(adapter_for(ols))
    vc = smf.mixedlm("Reaction ~ Days", df.assign(half=df["Days"] // 5), groups="Subject",
                     vc_formula={"half": "0 + C(half)"}).fit()  # fmt: skip
    with pytest.raises(MarginsValueError, match="variance components"):
        Margins(vc, random_effects="blup")
    monkeypatch.setattr(blup_module, "MAX_RANDOM_COEFS", 30)
    with pytest.raises(MarginsValueError, match="36 extra coefficients"):
        Margins(fit, random_effects="blup")
    monkeypatch.undo()
    ad = StatsmodelsBLUPAdapter(adapter_for(fit))
    with pytest.raises(MarginsValueError, match="random_effects='blup'"):
        Margins(fit, adapter=ad)
    assert Margins(fit, adapter=ad, random_effects="blup").adapter is ad
    with pytest.raises(MarginsValueError, match="bootstrap"):
        Margins(fit, adapter=ad, random_effects="blup", method="bootstrap")


def test_array_interface_fit() -> None:
    df, _ = _sleep()
    X = sm.add_constant(df[["Days"]])
    fit = sm.MixedLM(df["Reaction"], X, groups=df["Subject"], exog_re=X).fit()
    m = Margins(fit, training_data=df, random_effects="blup", method="delta")
    res = m.predict(by="Subject")
    means = pd.Series(np.asarray(fit.fittedvalues)).groupby(df["Subject"]).mean()
    np.testing.assert_allclose(res.estimate, means.to_numpy(), atol=1e-8)


def test_satterthwaite_df_of_a_cluster_mean_equal_the_balanced_one_way_closed_form(
    one_way: Any,
) -> None:
    """Balanced one-way design, J groups × n (REML = ANOVA estimators): the BLUP of group
    g's mean is ȳ.. + λ(ȳ_g − ȳ..), λ = σ_u²/(σ_u² + σ²/n), with prediction error variance

        PEV = (1−λ)² σ_u² (J−1)/J + (σ²/n)[((1−λ)/J + λ)² + (J−1)(1−λ)²/J²],

    a function of MSB and MSW through σ_u² = (MSB − MSW)/n and σ² = MSW. Its Satterthwaite
    df are 2 PEV² / Σ (∂PEV/∂MS)² · 2 MS²/df_MS (the mean squares' variances)."""
    from scipy import stats

    J, n, fit, msb, msw = one_way.J, one_way.n, one_way.fit, one_way.msb, one_way.msw

    def pev(msb: float, msw: float) -> float:
        a, s = (msb - msw) / n, msw / n
        lam = a / (a + s)
        return (1 - lam) ** 2 * a * (J - 1) / J + s * (
            ((1 - lam) / J + lam) ** 2 + (J - 1) * (1 - lam) ** 2 / J**2
        )

    h = 1e-6  # central differences of the closed form (relative steps)
    d_b = (pev(msb * (1 + h), msw) - pev(msb * (1 - h), msw)) / (2 * h * msb)
    d_w = (pev(msb, msw * (1 + h)) - pev(msb, msw * (1 - h))) / (2 * h * msw)
    var = pev(msb, msw)
    nu = 2 * var**2 / (d_b**2 * 2 * msb**2 / (J - 1) + d_w**2 * 2 * msw**2 / (J * (n - 1)))
    res = Margins(fit, method="delta", random_effects="blup", df="satterthwaite").predict(by="g")
    frame = res.to_frame()
    assert frame["std_err"].to_numpy() == pytest.approx(np.sqrt(var), rel=1e-7)
    assert frame["df"].to_numpy() == pytest.approx(nu, rel=1e-5)
    half = stats.t.ppf(0.975, nu) * np.sqrt(var)
    est = frame["estimate"].to_numpy()
    assert np.asarray(res.conf_int()) == pytest.approx(np.column_stack([est - half, est + half]))
