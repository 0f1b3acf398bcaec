"""``Margins(fit, df=...)``: Satterthwaite and Kenward–Roger df and SEs end to end, against
the R reference values stored in tests/adapters/data (lmerTest, pbkrtest), with t-based
intervals and t-scaled draws (issue 14, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import statsmodels.formula.api as smf
from scipy import stats

import simmargins
from simmargins import Margins, MarginsValueError, pairwise

_MODELS = json.loads(
    (Path(__file__).parents[1] / "adapters" / "data" / "lmm_df_reference.json").read_text()
)["models"]
REF = next(m for m in _MODELS if m["name"] == "ss_rs_reml")["rows"]
ORDER = ["margin Days=0", "margin Days=9", "margin overall", "Days", "contrast Days 8 vs 1"]


@pytest.fixture(scope="module")
def sleep_rs():
    data = simmargins.sleepstudy_data()
    return smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="~Days").fit()


def _all(m):
    return [
        m.predict(atexog={"Days": [0, 9]}),
        m.predict(),
        m.dydx("Days"),
        m.contrasts(*pairwise("Days", [8, 1])),
    ]


@pytest.mark.parametrize(("method", "key"), [("satterthwaite", "satterthwaite"),
                                             ("kenward-roger", "kenward_roger")])
def test_session_df_and_se_match_r(sleep_rs, method, key):
    m = Margins(sleep_rs, method="delta", df=method, seed=1)
    parts = _all(m)
    df = np.concatenate([p.df for p in parts])
    se = np.concatenate([p.delta_std_err for p in parts])
    ref = {r["label"]: r for r in REF}
    np.testing.assert_allclose(df, [ref[k][f"df_{key}"] for k in ORDER], rtol=1e-4)
    np.testing.assert_allclose(se, [ref[k][f"se_{key}"] for k in ORDER], rtol=1e-4)
    # the delta interval is the t interval with those df
    res = parts[2]
    lo, hi = res.conf_int().T
    half = stats.t.ppf(0.975, res.df[0]) * res.delta_std_err[0]
    assert lo[0] == pytest.approx(res.estimate[0] - half, rel=1e-12)
    assert hi[0] == pytest.approx(res.estimate[0] + half, rel=1e-12)
    assert "df" in res.to_frame().columns
    assert res.attrs["df_method"] == method


def test_simulation_draws_follow_the_t(sleep_rs):
    """Draws of the AME of Days: SE of t with ν df is SE·√(ν/(ν−2)); S = 20,000 draws give
    the draws' SD to about 1/√(2S) = 0.5% (more for a t's heavier tails: allow 4%)."""
    m = Margins(sleep_rs, df="satterthwaite", n_sims=20_000, seed=3)
    res = m.dydx("Days")
    nu, se = res.df[0], res.delta_std_err[0]
    assert res.draws_std_err[0] == pytest.approx(se * np.sqrt(nu / (nu - 2)), rel=0.04)
    again = Margins(sleep_rs, df="satterthwaite", n_sims=20_000, seed=3).dydx("Days")
    np.testing.assert_array_equal(res.draws.to_numpy(), again.draws.to_numpy())


def test_bad_df_arguments(sleep_rs):
    data = simmargins.sleepstudy_data()
    with pytest.raises(MarginsValueError, match="df: got 'containment'; accepted values are"):
        Margins(sleep_rs, df="containment")
    ols = smf.ols("Reaction ~ Days", data).fit()
    with pytest.raises(MarginsValueError, match="df: 'satterthwaite' degrees of freedom are for"):
        Margins(ols, df="satterthwaite")
    ml = smf.mixedlm("Reaction ~ Days", data, groups="Subject").fit(reml=False)
    with pytest.raises(MarginsValueError, match="kenward-roger"):
        Margins(ml, df="kenward-roger")
    with pytest.raises(MarginsValueError, match="df: 'satterthwaite' applies to the delta"):
        Margins(sleep_rs, df="satterthwaite", method="bootstrap")


def test_summary_says_t_and_compares_draws_with_the_t_sd(sleep_rs):
    res = Margins(sleep_rs, method="delta", n_sims=1000, df="kenward-roger", seed=1).dydx(
        "Days"
    )
    text = res.summary()
    assert "P>|t|" in text and "Degrees of freedom: kenward-roger" in text
    # the draws are t: their SD is compared with SE·√(ν/(ν−2)), not SE (which would be
    # 6% off at ν = 17 and flag the delta method falsely)
    nu = res.df[0]
    expected = res.delta_std_err[0] * np.sqrt(nu / (nu - 2))
    assert res.disagreement[0] == pytest.approx(abs(res.draws_std_err[0] / expected - 1))
    assert res.delta_trustworthy()
