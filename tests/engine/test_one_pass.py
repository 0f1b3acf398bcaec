"""Every setting from one base design (``engine.one_pass``, issue 12 item 3).

The delta moments of a setting come from the base rows (H₀ = Σ bᵢxᵢxᵢᵀ at the setting's
own η, then Tᵀ(·)T for the changed columns) and its draws from the multi-scenario kernel;
both are held to the straightforward route on each setting's full rebuild through the
fit's spec: ``delta.scenario_moments`` (numpy) and ``kernels.margin_draws``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins.adapters import adapter_for
from simmargins.engine.delta import scenario_moments
from simmargins.engine.design import CounterfactualData, Setting
from simmargins.engine.kernels import margin_draws
from simmargins.engine.links import IDENTITY_LINK, LOG_LINK, LOGIT_LINK
from simmargins.engine.one_pass import one_pass

FORMULAS = [
    "~ x * C(g) + z:x + I(x**2) + center(z) + h",
    "~ x + standardize(z) + C(g, Sum) * C(k) + h",
    "~ cr(z, df=4, constraints='center') + x:C(k) + x + h",
]

SETTINGS = [
    Setting(),
    Setting(perturb=("x", 1e-3)),
    Setting(perturb=("x", -1e-3)),
    Setting(perturb=("z", 2e-3)),
    Setting((("x", 0.5),)),
    Setting((("x", 0.5), ("h", True))),
    Setting((("g", "mid"),)),
    Setting((("g", "lo"),), perturb=("x", 1e-3)),
    Setting((("k", "q2"), ("g", "hi"))),
    Setting((("k", "q1"),), perturb=("z", -1e-3)),
    Setting((("h", False), ("z", 1.25))),
]


@pytest.fixture(scope="module")
def frame(ols_frame) -> pd.DataFrame:
    df = ols_frame.rename(columns={"k": "count", "b": "h"})
    df["k"] = np.array(["q1", "q2", "q3"])[df["count"].to_numpy() % 3]
    df["yb"] = (df["y"] > df["y"].median()).astype(float)
    # a noisier 0/1 outcome: probit and cloglog fits of yb come out (nearly) separated
    eta = 0.3 * (df["x"] - df["x"].mean()) - 0.2 * df["z"]
    df["yn"] = (np.random.default_rng(6).random(len(df)) < 1 / (1 + np.exp(-eta))).astype(float)
    return df


def _fit(kind: str, rhs: str, df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "identity":
            return smf.ols("y" + rhs, df).fit(), IDENTITY_LINK
        if kind == "logit":
            return smf.glm("yb" + rhs, df, family=sm.families.Binomial()).fit(), LOGIT_LINK
        if kind in ("probit", "cloglog"):
            lk = sm.families.links.Probit() if kind == "probit" else sm.families.links.CLogLog()
            fit = smf.glm("yn" + rhs, df, family=sm.families.Binomial(link=lk)).fit()
            return fit, adapter_for(fit).link
        return smf.glm("count" + rhs, df, family=sm.families.Poisson()).fit(), LOG_LINK


@pytest.mark.parametrize("kind", ["identity", "logit", "log", "probit", "cloglog"])
@pytest.mark.parametrize("rhs", FORMULAS)
@pytest.mark.parametrize("at", [{}, {"z": 0.75}, {"x": 1.5}])
def test_moments_and_draws_equal_each_settings_full_design(frame, kind, rhs, at):
    fit, link = _fit(kind, rhs, frame)
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    cf.base_values = at
    beta = fit.params.to_numpy()
    rng = np.random.default_rng(9)
    B = beta + rng.normal(0.0, 0.05, (11, beta.size))
    w = rng.uniform(0.5, 2.0, len(frame))
    settings = [
        st for st in SETTINGS
        if all(n in cf.variables for n, _ in st.values)
        and (st.perturb is None or st.perturb[0] in cf.variables)
    ]  # fmt: skip
    got = one_pass(cf, settings, w, link, beta, B)
    assert got is not None and got.moments is not None
    for j, setting in enumerate(settings):
        X, off = cf.full_design(setting)
        off = np.zeros(X.shape[0]) if off is None else off
        want = scenario_moments(X, off, w, beta, link, on_numba=False)
        mom = got.moments[j]
        assert mom.value == pytest.approx(want.value, rel=1e-13, abs=1e-15), setting
        scale = np.abs(want.grad).max()
        np.testing.assert_allclose(mom.grad, want.grad, rtol=1e-12, atol=1e-13 * scale)
        if want.hess is None:
            assert mom.hess is None
        else:
            assert mom.hess is not None
            np.testing.assert_allclose(
                mom.hess, want.hess, rtol=1e-11, atol=1e-12 * np.abs(want.hess).max()
            )
        if link.is_identity:
            assert got.draws is None  # the identity link's draws are θ = gβ: no pass over rows
        else:
            assert got.draws is not None
            np.testing.assert_allclose(
                got.draws[j],
                margin_draws(X, off, w, B, link.code, link.power),
                rtol=1e-13,
                atol=1e-15,
            )


def test_offset_settings_and_clipped_steps_take_the_other_route(frame):
    fit, link = _fit("log", FORMULAS[0], frame)
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    w = np.ones(len(frame))
    beta = fit.params.to_numpy()
    assert one_pass(cf, [Setting(perturb=("x", 1e-3), clip=True)], w, link, beta, None) is None


@pytest.mark.parametrize("kind", ["logit", "log"])
def test_combined_quantities_equal_the_weighted_sum_of_full_designs(frame, kind):
    """An AME's two steps and a factor level against the reference take one weighted pass
    (combined_moments): ∇ and H of Σ W_s μ_s equal Σ W_s of each setting's own moments on
    its full rebuild; quantities it cannot combine (Sum-coded levels, a grid point alone,
    row-varying columns) keep per-setting moments."""
    fit, link = _fit(kind, "~ x + z * h + C(g) + C(k, Sum)", frame)
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    beta = fit.params.to_numpy()
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(frame))
    eps = 1e-4
    settings = [
        Setting(perturb=("x", eps)),
        Setting(perturb=("x", -eps)),
        Setting((("g", "hi"),)),  # the reference level of g
        Setting((("g", "lo"),)),
        Setting((("g", "mid"),)),
        Setting((("k", "q1"),)),
        Setting((("k", "q3"),)),
        Setting(perturb=("z", eps)),  # z:h varies by row
        Setting(perturb=("z", -eps)),
    ]
    W = np.zeros((5, len(settings)))
    W[0, :2] = [1 / (2 * eps), -1 / (2 * eps)]  # AME of x: combined
    W[1, [3, 2]] = [1, -1]  # lo − hi: combined (one indicator column differs)
    W[2, [4, 2]] = [1, -1]
    W[3, [6, 5]] = [1, -1]  # Sum coding: every level sets both columns → per setting
    W[4, 7:] = [1 / (2 * eps), -1 / (2 * eps)]  # row-varying columns → per setting
    got = one_pass(cf, settings, w, link, beta, None, W=W)
    assert got is not None and got.moments is not None
    assert sorted(got.quantities) == [0, 1, 2]
    full = []
    for setting in settings:
        X, off = cf.full_design(setting)
        off = np.zeros(X.shape[0]) if off is None else off
        full.append(scenario_moments(X, off, w, beta, link, on_numba=False))
    for j, mom in enumerate(got.moments):
        assert mom.value == pytest.approx(full[j].value, rel=1e-13)
    for r in range(W.shape[0]):
        used = np.flatnonzero(W[r])
        g_want = sum(W[r, j] * full[j].grad for j in used)
        h_want = sum(W[r, j] * full[j].hess for j in used)
        if r in got.quantities:
            g_got, h_got = got.quantities[r]
        else:
            g_got = sum(W[r, j] * got.moments[j].grad for j in used)
            h_got = sum(W[r, j] * got.moments[j].hess for j in used)
        # an AME's ∇ and H are differences over 2ε: a few ulps of the settings' own
        scale = max(abs(W[r, j]) for j in used)
        g_tol = 1e-14 * scale * max(np.abs(full[j].grad).max() for j in used)
        h_tol = 1e-14 * scale * max(np.abs(full[j].hess).max() for j in used)
        np.testing.assert_allclose(g_got, g_want, rtol=1e-9, atol=g_tol)
        np.testing.assert_allclose(h_got, h_want, rtol=1e-9, atol=h_tol)
