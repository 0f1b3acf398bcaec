"""Counterfactual designs: the finite-difference step comes from the fitted data (item 8)."""

from __future__ import annotations

import numpy as np
import pytest

from simmargins import Margins


@pytest.mark.filterwarnings("ignore::simmargins.DeltaMethodWarning")  # κ is large out at x=7
@pytest.mark.parametrize("value", [-3.7, -1.0, 0.0, 1e-3, 0.1, 1.0, 2.3, 7.25, 40.0])
def test_slope_at_a_fixed_value_is_the_analytic_derivative(logit_xz, value):
    """at={"x": v}: dydx is mean p(1-p)·β_x with x = v in every row.

    On today's main v = 2.3 gave 1409.98 (SE 2095) and v = 1e-3 gave -7.3e6: the step came
    from the spread of the constant counterfactual column (~1e-16)."""
    d, fit = logit_xz
    b = fit.params
    eta = b["Intercept"] + b["x"] * value + b["z"] * d["z"].to_numpy()
    p = 1.0 / (1.0 + np.exp(-eta))
    truth = float(np.mean(p * (1 - p)) * b["x"])
    grad_truth = np.column_stack([np.ones(100), np.full(100, value), d["z"]])
    # the delta SE from the analytic gradient of mean p(1-p)·β_x
    dp = (p * (1 - p) * (1 - 2 * p))[:, None] * grad_truth * b["x"]
    g = dp.mean(axis=0)
    g[1] += float(np.mean(p * (1 - p)))
    se_truth = float(np.sqrt(g @ fit.cov_params().to_numpy() @ g))
    res = Margins(fit, at={"x": value}, method="delta").dydx("x")
    # central differences with ε = 1e-5·sd(x): measured ≤ 1.7e-10 (SE 2.7e-10) relative; at
    # x = 40 (p within 2e-9 of 1) differences of p near 1 lose digits to its spacing
    # (1.1e-16): 7.5e-12 absolute on a slope of 7.6e-8, hence the absolute floor
    assert res.estimate[0] == pytest.approx(truth, rel=2e-9, abs=1e-10)
    assert res.delta_std_err[0] == pytest.approx(se_truth, rel=3e-9, abs=1e-10)
