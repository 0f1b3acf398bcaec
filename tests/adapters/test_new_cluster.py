"""random_effects='new': a new cluster's margins, checked against closed forms and brute force."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from simmargins import Margins, MarginsValueError, pairwise, sleepstudy_data
from simmargins.adapters import adapter_for
from simmargins.adapters.new_cluster import StatsmodelsNewClusterAdapter


@pytest.fixture(scope="module")
def sleep():
    df = sleepstudy_data()
    fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()
    return df, fit


def test_estimates_equal_zero_and_variances_add_the_random_effects(sleep):
    """predict at Days = d: x̄ = z̄ = (1, d), so SE² = x̄V̂x̄ᵀ + z̄Ψ̂z̄ᵀ; the AME of Days
    (a random slope) has SE² = V̂_Days + Ψ̂_Days; a contrast 5 − 0 has z̄ = (0, 5)."""
    _, fit = sleep
    new = Margins(fit, random_effects="new", method="delta")
    zero = Margins(fit, method="delta")
    psi = np.asarray(fit.cov_re)
    V = adapter_for(fit).cov
    for res_new, res_zero, zbar in (
        (new.predict(atexog={"Days": [0, 5]}), zero.predict(atexog={"Days": [0, 5]}),
         [np.array([1.0, 0.0]), np.array([1.0, 5.0])]),
        (new.dydx("Days"), zero.dydx("Days"), [np.array([0.0, 1.0])]),
        (new.contrasts(*pairwise("Days", [5, 0])), zero.contrasts(*pairwise("Days", [5, 0])),
         [np.array([0.0, 5.0])]),
    ):  # fmt: skip
        # the AME is a central difference on both sides (agrees with the derivative to ~1e-9)
        np.testing.assert_allclose(res_new.estimate, res_zero.estimate, rtol=1e-8)
        want = np.sqrt([res_zero.delta_std_err[i] ** 2 + z @ psi @ z for i, z in enumerate(zbar)])
        np.testing.assert_allclose(res_new.delta_std_err, want, rtol=1e-8)
    # the closed form of the AME's variance, without the session's gradient
    ame = new.dydx("Days")
    assert ame.delta_std_err[0] ** 2 == pytest.approx(V[1, 1] + psi[1, 1], rel=1e-8)
    assert ame.attrs["random_effects"] == "new"
    assert ame.attrs["residual_variance"] == pytest.approx(fit.scale)
    text = ame.summary()
    assert "Random effects: new (a new cluster" in text and "Residual variance" in text


def test_draws_equal_a_brute_force_new_cluster_simulation(sleep):
    """Brute force: draw β ~ N(β̂, V̂) and one u_new ~ N(0, Ψ̂) per draw, predict every row
    of the data in that cluster and average. Same distribution as the session's draws: the
    SDs agree within Monte-Carlo error (relative SE of an SD from S draws 1/√(2(S−1)))."""
    _, fit = sleep
    S = 4000
    res = Margins(fit, random_effects="new", n_sims=S, seed=3).predict()
    rng = np.random.default_rng(11)
    beta = rng.multivariate_normal(np.asarray(fit.fe_params), adapter_for(fit).cov, S)
    u = rng.multivariate_normal(np.zeros(2), np.asarray(fit.cov_re), S)
    X = np.asarray(fit.model.exog)
    Z = np.asarray(fit.model.exog_re)
    brute = np.array([np.mean(X @ b + Z @ v) for b, v in zip(beta, u, strict=True)])
    noise = np.sqrt(2.0) / np.sqrt(2 * (S - 1))  # two independent SD estimates
    assert res.draws_std_err[0] / brute.std(ddof=1) == pytest.approx(1.0, abs=3.5 * noise)
    assert res.delta_std_err[0] / brute.std(ddof=1) == pytest.approx(1.0, abs=3.5 / np.sqrt(
        2 * (S - 1)))  # fmt: skip
    # and the brute-force mean sits at the estimate (MC SE = SD/√S)
    assert abs(brute.mean() - res.estimate[0]) < 4 * brute.std() / np.sqrt(S)


def test_newdata_rows_all_belong_to_the_new_cluster(sleep):
    """A new subject observed on days 0..3 only: x̄ = z̄ = (1, 1.5)."""
    df, fit = sleep
    nd = df[df["Subject"] == df["Subject"].iloc[0]].iloc[:4].drop(columns="Subject")
    res = Margins(fit, random_effects="new", method="delta").predict(newdata=nd)
    xbar = np.array([1.0, 1.5])
    V, psi = adapter_for(fit).cov, np.asarray(fit.cov_re)
    assert res.estimate[0] == pytest.approx(xbar @ np.asarray(fit.fe_params), rel=1e-12)
    assert res.delta_std_err[0] ** 2 == pytest.approx(xbar @ V @ xbar + xbar @ psi @ xbar,
                                                      rel=1e-12)  # fmt: skip


def test_refusals(sleep):
    df, fit = sleep
    with pytest.raises(MarginsValueError, match=re.escape("random_effects: 'new' takes")):
        Margins(fit, random_effects="new", method="bootstrap")
    with pytest.raises(MarginsValueError, match=re.escape("with 'new' use df='satterthwaite'")):
        Margins(fit, random_effects="new", df="kenward-roger")
    ols = smf.ols("Reaction ~ Days", df).fit()
    with pytest.raises(MarginsValueError, match=r"random_effects: 'new' is for .*mixed models"):
        Margins(ols, random_effects="new")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vc = smf.mixedlm("Reaction ~ Days", df.assign(half=df["Days"] // 5), groups="Subject",
                         vc_formula={"half": "0 + C(half)"}).fit()  # fmt: skip
    with pytest.raises(MarginsValueError, match="variance components"):
        Margins(vc, random_effects="new")
    ad = StatsmodelsNewClusterAdapter(adapter_for(fit))
    with pytest.raises(MarginsValueError, match=re.escape("pass random_effects='new'")):
        Margins(fit, adapter=ad)
    assert Margins(fit, adapter=ad, random_effects="new").adapter is ad


def test_satterthwaite_df_of_a_new_group_equal_the_classical_anova_formula(one_way):
    """Balanced one-way design, J groups × n: REML equals the ANOVA estimators, and a new
    group's mean μ + u_new has variance MSB(1/n + 1/(Jn)) − MSW/n, whose classical
    Satterthwaite df are v² / ((a₁MSB)²/(J−1) + (a₂MSW)²/(J(n−1)))."""
    J, n, fit, msb, msw = one_way.J, one_way.n, one_way.fit, one_way.msb, one_way.msw
    a1, a2 = 1 / n + 1 / (J * n), -1 / n
    var = a1 * msb + a2 * msw
    nu = var**2 / ((a1 * msb) ** 2 / (J - 1) + (a2 * msw) ** 2 / (J * (n - 1)))
    res = Margins(fit, method="delta", random_effects="new", df="satterthwaite").predict()
    row = res.to_frame().iloc[0]
    assert row["std_err"] == pytest.approx(np.sqrt(var), rel=1e-6)
    assert row["df"] == pytest.approx(nu, rel=1e-5)  # numerical derivatives in φ
    half = stats.t.ppf(0.975, nu) * np.sqrt(var)
    assert res.conf_int()[0] == pytest.approx([row["estimate"] - half, row["estimate"] + half])
    # the fixed part alone: the grand mean's variance MSB/(Jn) on J − 1 df
    fixed = Margins(fit, method="delta", df="satterthwaite").predict().to_frame().iloc[0]
    assert fixed["std_err"] == pytest.approx(np.sqrt(msb / (J * n)), rel=1e-6)
    assert fixed["df"] == pytest.approx(J - 1, rel=1e-5)


def test_satterthwaite_new_cluster_draws_are_t_with_its_df(sleep):
    _, fit = sleep
    m = Margins(fit, random_effects="new", df="satterthwaite", n_sims=4000, seed=2)
    res = m.predict(atexog={"Days": [0, 9]})
    frame = res.to_frame()
    assert (frame["df"] > 1).all() and np.isfinite(frame["df"]).all()
    draws = res.to_dataset()["draws"].values  # (draw, label)
    est = frame["estimate"].to_numpy()
    se = res.to_dataset()["delta_std_err"].values
    # each label's standardized draws are t with its df: compare the 97.5% quantile, whose
    # Monte-Carlo SE at 4,000 draws is about 3% of it for these df
    q = np.quantile((draws - est) / se, 0.975, axis=0)
    assert q == pytest.approx(stats.t.ppf(0.975, frame["df"].to_numpy()), rel=0.1)
